"""Prototypical loss with multiple-prototype and negative-prototype expansion.

Prototypes are the L2-normalised means of each class's (normalised) embeddings in the batch.
With ``tau = 0.07`` and similarities ``z_i . p / tau``:

* **plain** — cross-entropy of each embedding against the batch's class prototypes;
* **multiple-prototype expansion** (``n_sub_prototypes = M > 0``) — each class additionally gets M
  sub-prototypes, each the normalised mean of a random ``subset_ratio`` fraction of that class's
  samples (at least one). The loss takes the supervised-contrastive form over all prototypes:
  ``L_i = -mean_{p in P(y_i)} log( exp(z_i.p/tau) / sum_{all prototypes p'} exp(z_i.p'/tau) )``;
* **negative-prototype expansion** (``n_negatives = N > 0``) — for each anchor, N pseudo-anomalies
  ``normalise(lam * z_i + (1 - lam) * p_other)`` with ``lam ~ U[0.25, 0.5]`` and ``p_other`` a random
  prototype of another class join the denominator as negatives. They are detached (fixed negatives),
  so the anchor is pushed away from the region between itself and other classes, not from itself.

Only classes present in the batch form prototypes; with one class in the batch the plain loss is 0.
Randomness comes from the ``generator`` argument or the module's seeded generator.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .base import LOSSES, check_batch


class PrototypicalLoss(nn.Module):
    """Prototypical loss (see module docstring).

    Args:
        temperature: tau (0.07).
        n_sub_prototypes: M sub-prototypes per class (0 = off).
        subset_ratio: fraction of a class's samples behind each sub-prototype.
        n_negatives: pseudo-anomaly negatives per anchor (0 = off).
        neg_lambda: range of lam for the pseudo-anomalies.
        seed: seed of the module's generator (used when ``forward`` gets none).
    """

    def __init__(self, temperature: float = 0.07, n_sub_prototypes: int = 0, subset_ratio: float = 0.5,
                 n_negatives: int = 0, neg_lambda: tuple[float, float] = (0.25, 0.5), seed: int = 0,
                 emb_dim: int | None = None, n_classes: int | None = None):
        # emb_dim / n_classes are accepted (and unused) so every loss builds with the same arguments
        super().__init__()
        if temperature <= 0:
            raise ConfigError(f"temperature must be positive, got {temperature}")
        if not 0 < subset_ratio <= 1:
            raise ConfigError(f"subset_ratio must be in (0, 1], got {subset_ratio}")
        if n_sub_prototypes < 0 or n_negatives < 0:
            raise ConfigError("n_sub_prototypes and n_negatives must be >= 0")
        lo, hi = neg_lambda
        if not 0 <= lo <= hi <= 1:
            raise ConfigError(f"neg_lambda must satisfy 0 <= lo <= hi <= 1, got {neg_lambda}")
        self.temperature, self.n_sub_prototypes, self.subset_ratio = float(temperature), n_sub_prototypes, subset_ratio
        self.n_negatives, self.neg_lambda = n_negatives, (float(lo), float(hi))
        self.generator = torch.Generator().manual_seed(seed)

    def prototypes(self, emb: torch.Tensor, labels: torch.Tensor,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(prototypes [P, D], prototype_class [P], classes [C_present])``.

        The first ``C_present`` rows are the full class prototypes, sub-prototypes follow.
        """
        z = F.normalize(emb, dim=1)
        classes, inv = torch.unique(labels, return_inverse=True)
        c = classes.numel()
        sums = torch.zeros(c, z.shape[1], dtype=z.dtype, device=z.device).index_add(0, inv, z)
        protos = [F.normalize(sums, dim=1)]
        owner = [torch.arange(c, device=z.device)]
        if self.n_sub_prototypes:
            gen = generator or self.generator
            for ci in range(c):
                idx = (inv == ci).nonzero().flatten()
                n_take = max(1, int(round(self.subset_ratio * idx.numel())))
                for _ in range(self.n_sub_prototypes):
                    pick = idx[torch.randperm(idx.numel(), generator=gen)[:n_take].to(idx.device)]
                    protos.append(F.normalize(z[pick].mean(0, keepdim=True), dim=1))
                    owner.append(torch.tensor([ci], device=z.device))
        return torch.cat(protos), torch.cat(owner), classes

    def forward(self, emb: torch.Tensor, labels: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
        check_batch(emb, labels)
        if labels.dim() != 1 or labels.dtype.is_floating_point:
            raise ConfigError("the prototypical loss takes hard integer labels [B]")
        gen = generator or self.generator
        z = F.normalize(emb, dim=1)
        protos, owner, classes = self.prototypes(emb, labels, gen)
        inv = torch.searchsorted(classes, labels)
        sim = z @ protos.T / self.temperature  # [B, P]
        pos = (owner[None, :] == inv[:, None]).to(z.dtype)  # [B, P]
        denom_terms = [sim]
        c = classes.numel()
        if self.n_negatives and c > 1:
            b = z.shape[0]
            lo, hi = self.neg_lambda
            lam = lo + (hi - lo) * torch.rand(b, self.n_negatives, 1, generator=gen).to(z)
            # random other class per (anchor, negative): offset in [1, c-1] from the anchor's class
            off = torch.randint(1, c, (b, self.n_negatives), generator=gen).to(z.device)
            other = (inv[:, None] + off) % c
            p_other = protos[:c].detach()[other]  # [B, N, D]
            neg = F.normalize(lam * z.detach()[:, None, :] + (1 - lam) * p_other, dim=2)
            denom_terms.append((z[:, None, :] * neg).sum(2) / self.temperature)
        all_logits = torch.cat(denom_terms, dim=1)
        log_prob = sim - torch.logsumexp(all_logits, dim=1, keepdim=True)
        return -((pos * log_prob).sum(1) / pos.sum(1)).mean()


LOSSES.register("prototypical", defaults={"temperature": 0.07},
                description="Prototypical loss over batch class prototypes")(PrototypicalLoss)
LOSSES.register("prototypical_multi", defaults={"temperature": 0.07, "n_sub_prototypes": 4, "subset_ratio": 0.5},
                description="Prototypical loss with multiple-prototype expansion")(PrototypicalLoss)
LOSSES.register("prototypical_negative", defaults={"temperature": 0.07, "n_negatives": 4},
                description="Prototypical loss with negative-prototype (pseudo-anomaly) expansion")(PrototypicalLoss)
LOSSES.register("prototypical_robust",
                defaults={"temperature": 0.07, "n_sub_prototypes": 4, "subset_ratio": 0.5, "n_negatives": 4},
                description="Prototypical loss with both multiple- and negative-prototype expansion")(PrototypicalLoss)
