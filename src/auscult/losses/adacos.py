"""Sub-cluster AdaCos: an adaptive-scale cosine softmax with K sub-clusters per class.

Each class owns ``K`` centres (default 16). With cosines ``cos_ij`` between the normalised
embedding ``i`` and centre ``j`` (layout: centre ``j = c * K + k``), the sub-cluster probabilities are
``softmax(s * cos_i)`` and the class probability is the sum over the class's sub-clusters (computed
as a ``logsumexp`` of log-probabilities). The loss is the cross-entropy against hard ``[B]`` or soft
``[B, C]`` labels (soft labels come from mixup).

Adaptive scale. ``s`` starts at ``sqrt(2) * log(C*K - 1)`` and, in training mode, is re-estimated on
every batch before the logits are formed, as in AdaCos::

    s_new = log(B_avg) / cos(min(pi/4, theta_med))

where ``theta_med`` is the median over the batch of each sample's (label-weighted) mean angle to its
class's sub-clusters and ``B_avg`` the batch mean of ``sum_j exp(s * cos_ij)`` over the non-target
centres. Safeguards (the published version can overflow when ``B_avg`` is formed from shifted
exponentials and the scale feeds back on itself):

* ``log(B_avg)`` is computed in float64 as a ``logsumexp`` — it never under- or overflows;
* only non-target centres enter ``B_avg`` (all centres when every centre belongs to the target, i.e.
  one class);
* a non-finite estimate leaves the scale unchanged;
* the scale is clamped to ``[min_scale, max_scale]`` (default ``[1, 64]``), so it can neither blow up
  nor turn negative (a negative scale would flip every logit).

The scale is a buffer, so it is saved with the model's ``state_dict``.

``scale_rule="asdkit"`` instead re-estimates the scale exactly as the DCASE ASD toolkit's
``SCAdaCos(dynamic=True)`` codes it (``asdkit/losses/scadacos.py``; used by no config of that
toolkit, which trains with a fixed scale): ``s_new = (m + log(mean_b sum_j exp(s cos_bj - m))) /
(cos(min(pi/4, theta_med)) + 1e-7)`` with ``m = max(s cos)``, the sum over *all* centres (targets
included), and ``theta_med`` the median over the batch of ``sum_j y~_bj theta_bj`` where the labels
are tiled, ``y~_bj = y_b[j mod C]``, although centre ``j`` belongs to class ``j // K`` (so the
"class angle" sums 16 angles of mixed classes and ``min(pi/4, .)`` is pi/4 in practice). No clamp
to ``[min_scale, max_scale]``; a non-finite estimate still leaves the scale unchanged. The SSL4ASD
authors' TensorFlow layer computes the same up to the grouping of that (clipped) angle sum and to
where the 1e-7 is added.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .base import LOSSES, as_soft_labels, check_batch


#: adaptive-scale rules (module docstring)
SCALE_RULES = ("auscult", "asdkit")


@LOSSES.register("subcluster_adacos", defaults={"n_subclusters": 16},
                 description="Sub-cluster AdaCos with a safeguarded adaptive scale (hard or soft labels)")
class SubClusterAdaCos(nn.Module):
    """Sub-cluster AdaCos loss.

    Args:
        emb_dim: embedding size.
        n_classes: number of classes C.
        n_subclusters: centres per class K.
        trainable_centers: learn the centres (``nn.Parameter``) or keep the random initial ones fixed
            (a buffer).
        adaptive: re-estimate the scale on each training batch; else keep ``scale`` fixed.
        scale: initial (or fixed) scale; default ``sqrt(2) * log(C*K - 1)``.
        min_scale, max_scale: clamp for the adaptive scale.
        seed: seed for the centre initialisation (``None``: torch's global RNG).
        scale_rule: ``"auscult"`` (the safeguarded estimate above) or ``"asdkit"`` (module docstring).
    """

    def __init__(self, emb_dim: int = 128, n_classes: int = 2, n_subclusters: int = 16,
                 trainable_centers: bool = False, adaptive: bool = True, scale: float | None = None,
                 min_scale: float = 1.0, max_scale: float = 64.0, seed: int | None = None,
                 scale_rule: str = "auscult"):
        super().__init__()
        if scale_rule not in SCALE_RULES:
            raise ConfigError(f"sub-cluster AdaCos scale_rule must be one of {SCALE_RULES}, got {scale_rule!r}")
        self.scale_rule = scale_rule
        if n_classes < 1 or n_subclusters < 1 or n_classes * n_subclusters < 2:
            raise ConfigError(
                f"sub-cluster AdaCos needs C*K >= 2 centres, got n_classes={n_classes}, n_subclusters={n_subclusters}"
            )
        if not 0 < min_scale <= max_scale:
            raise ConfigError(f"need 0 < min_scale <= max_scale, got {min_scale}, {max_scale}")
        self.emb_dim, self.n_classes, self.n_subclusters = emb_dim, n_classes, n_subclusters
        self.adaptive, self.min_scale, self.max_scale = adaptive, float(min_scale), float(max_scale)
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        bound = math.sqrt(6.0 / (emb_dim + n_classes * n_subclusters))  # Glorot uniform
        w = (torch.rand(n_classes * n_subclusters, emb_dim, generator=gen) * 2 - 1) * bound
        if trainable_centers:
            self.centers = nn.Parameter(w)
        else:
            self.register_buffer("centers", w)
        s0 = self.initial_scale() if scale is None else float(scale)
        self.register_buffer("scale", torch.tensor(min(max(s0, self.min_scale), self.max_scale), dtype=torch.float32))

    def extra_repr(self) -> str:
        return (f"emb_dim={self.emb_dim}, n_classes={self.n_classes}, n_subclusters={self.n_subclusters}, "
                f"trainable_centers={isinstance(self.centers, nn.Parameter)}, adaptive={self.adaptive}, "
                f"scale={float(self.scale):.3f}, scale_range=[{self.min_scale}, {self.max_scale}]")

    def initial_scale(self) -> float:
        """``sqrt(2) * log(C*K - 1)`` (at least ``min_scale``)."""
        ck = self.n_classes * self.n_subclusters
        return max(math.sqrt(2.0) * math.log(ck - 1), self.min_scale) if ck > 2 else self.min_scale

    def cosine(self, emb: torch.Tensor) -> torch.Tensor:
        """Cosines to every centre, ``[B, C*K]`` (centre ``c*K + k``)."""
        check_batch(emb)
        # in the centres' dtype (float32 under autocast), so low-precision embeddings are safe
        return F.linear(F.normalize(emb.to(self.centers.dtype), dim=-1), F.normalize(self.centers, dim=-1)).clamp(-1.0, 1.0)

    @torch.no_grad()
    def estimate_scale(self, cos: torch.Tensor, y: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
        """The AdaCos scale estimate for one batch under ``scale_rule`` (does not change the module)."""
        if self.scale_rule == "asdkit":
            return self._estimate_scale_asdkit(cos, y, scale)
        cos = cos.detach().double()
        s = float(scale)
        y_rep = y.detach().double().repeat_interleave(self.n_subclusters, dim=1)
        theta = torch.acos(cos.clamp(-1 + 1e-7, 1 - 1e-7))
        w = y_rep.sum(1).clamp(min=1e-12)
        theta_i = (y_rep * theta).sum(1) / w
        theta_med = theta_i.median()
        nontarget = y_rep <= 0
        if not bool(nontarget.any()):
            nontarget = torch.ones_like(nontarget)
        z = torch.where(nontarget, s * cos, torch.full_like(cos, -math.inf))
        log_b_avg = torch.logsumexp(z.flatten(), 0) - math.log(cos.shape[0])
        s_new = log_b_avg / torch.cos(torch.clamp(theta_med, max=math.pi / 4))
        if not bool(torch.isfinite(s_new)):
            return torch.as_tensor(s, dtype=torch.float32, device=cos.device)
        return s_new.clamp(self.min_scale, self.max_scale).float()

    @torch.no_grad()
    def _estimate_scale_asdkit(self, cos: torch.Tensor, y: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
        cos = cos.detach().double()
        s = float(scale)
        eps = 1e-7
        theta = torch.acos(cos.clamp(-1 + eps, 1 - eps))
        top = (s * cos).max()
        log_b_avg = torch.log(torch.exp(s * cos - top).sum(1).mean())
        theta_class = (y.detach().double().repeat(1, self.n_subclusters) * theta).sum(1)  # tiled, as coded
        theta_med = theta_class.median()
        s_new = (top + log_b_avg) / (torch.cos(torch.clamp(theta_med, max=math.pi / 4)) + eps)
        if not bool(torch.isfinite(s_new)):
            return torch.as_tensor(s, dtype=torch.float32, device=cos.device)
        return s_new.float()

    def class_log_probs(self, emb: torch.Tensor, cos: torch.Tensor | None = None) -> torch.Tensor:
        """Log class probabilities ``[B, C]`` (sum over each class's sub-clusters)."""
        cos = self.cosine(emb) if cos is None else cos
        logp = F.log_softmax(self.scale * cos, dim=1)
        return torch.logsumexp(logp.view(-1, self.n_classes, self.n_subclusters), dim=2)

    def forward(self, emb: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_batch(emb, target)
        y = as_soft_labels(target, self.n_classes, dtype=self.centers.dtype)
        cos = self.cosine(emb)
        if self.training and self.adaptive and emb.shape[0] > 0:
            self.scale.copy_(self.estimate_scale(cos, y, self.scale))
        return -(y * self.class_log_probs(emb, cos)).sum(1).mean()
