"""Supervised contrastive loss (Khosla et al.) with soft-label positives for mixed samples.

For L2-normalised features ``z`` (one or several views per sample, all views pooled as anchors)
and anchor ``i``::

    L_i = -(tau / tau_base) * sum_{p != i} w_ip * log( exp(z_i.z_p / tau) / sum_{a != i} exp(z_i.z_a / tau) )

with ``w_ip`` the positive weights normalised to sum to 1 over ``p``. For hard labels ``w_ip`` is 1
for samples of the same class (the usual SupCon mask). For soft labels ``y`` (``[B, C]``, e.g. the
noisy labels of mixup-mixed samples) the pair weight is the label overlap ``<y_i, y_p>``, which
reduces to the hard mask for one-hot labels.

Anchors without any positive (``anchors``): ``"positive"`` (default) averages the loss over the
anchors that have a positive only; ``"all"`` averages over every anchor, those without a positive
contributing 0 -- what Khosla et al.'s reference code (and the OS-SCL code built on it) does, which
scales the loss by the share of anchors with a positive. ``reduction="sum"`` sums over the anchors
instead of averaging (the OS-SCL paper's Eq. (1) as written).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .base import LOSSES


#: how the loss is averaged over anchors (see the module docstring)
SUPCON_ANCHORS = ("positive", "all")


@LOSSES.register("supcon", defaults={"temperature": 0.07, "base_temperature": 0.07},
                 description="Supervised contrastive loss; hard or soft (mixed) labels")
class SupConLoss(nn.Module):
    """Supervised contrastive loss.

    ``forward(features, labels=None, mask=None)``:
        features: ``[B, D]`` or ``[B, V, D]`` (V views); normalised inside.
        labels: hard ``[B]`` or soft ``[B, C]``; ``None`` with ``mask=None`` gives SimCLR (views of the
            same sample are the only positives).
        mask: optional explicit ``[B, B]`` positive-weight matrix.

    ``anchors``: ``"positive"`` or ``"all"``, ``reduction``: ``"mean"`` or ``"sum"`` over them (see the
    module docstring). ``normalize=False`` takes
    features that are already L2-normalised as they are (same loss; the gradient w.r.t. the features
    then keeps its radial part, as in the SupCon/OS-SCL reference code).
    """

    def __init__(self, temperature: float = 0.07, base_temperature: float = 0.07,
                 emb_dim: int | None = None, n_classes: int | None = None, anchors: str = "positive",
                 normalize: bool = True, reduction: str = "mean"):
        # emb_dim / n_classes are accepted (and unused) so every loss builds with the same arguments
        super().__init__()
        if temperature <= 0 or base_temperature <= 0:
            raise ConfigError("supcon temperatures must be positive")
        if anchors not in SUPCON_ANCHORS:
            raise ConfigError(f"supcon anchors must be one of {SUPCON_ANCHORS}, got {anchors!r}")
        self.temperature, self.base_temperature = float(temperature), float(base_temperature)
        if reduction not in ("mean", "sum"):
            raise ConfigError(f"supcon reduction must be 'mean' or 'sum', got {reduction!r}")
        self.anchors = anchors
        self.normalize = bool(normalize)
        self.reduction = reduction

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        if features.dim() == 2:
            features = features.unsqueeze(1)
        if features.dim() != 3:
            raise ConfigError(f"supcon features must be [B, D] or [B, V, D], got {tuple(features.shape)}")
        b, v, _ = features.shape
        if labels is not None and mask is not None:
            raise ConfigError("give supcon either labels or mask, not both")
        if mask is None:
            if labels is None:
                mask = torch.eye(b, device=features.device, dtype=features.dtype)
            elif labels.dim() == 1:
                if labels.shape[0] != b:
                    raise ConfigError(f"{b} samples but {labels.shape[0]} labels")
                mask = (labels[:, None] == labels[None, :]).to(features.dtype)
            elif labels.dim() == 2:
                if labels.shape[0] != b:
                    raise ConfigError(f"{b} samples but {labels.shape[0]} labels")
                yl = labels.to(features.dtype)
                mask = yl @ yl.T
            else:
                raise ConfigError(f"supcon labels must be [B] or [B, C], got {tuple(labels.shape)}")
        mask = mask.to(features.dtype).detach()
        z = F.normalize(features, dim=-1) if self.normalize else features
        z = z.transpose(0, 1).reshape(v * b, -1)  # view-major
        sim = z @ z.T / self.temperature
        n = v * b
        self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
        sim = sim.masked_fill(self_mask, float("-inf"))
        log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
        w = mask.repeat(v, v).masked_fill(self_mask, 0.0)
        w_sum = w.sum(1)
        has_pos = w_sum > 0
        if not bool(has_pos.any()):
            return features.sum() * 0.0
        pos_sum = (w * log_prob.masked_fill(self_mask, 0.0)).sum(1)
        if self.anchors == "all":
            mean_log_pos = pos_sum / torch.where(has_pos, w_sum, torch.ones_like(w_sum))
        else:
            mean_log_pos = pos_sum[has_pos] / w_sum[has_pos]
        per_anchor = -(self.temperature / self.base_temperature) * mean_log_pos
        return per_anchor.sum() if self.reduction == "sum" else per_anchor.mean()
