"""ArcFace (additive angular margin) and Noisy-ArcMix.

ArcFace logits for class ``j``: ``s * cos(theta_j)``, except for the labelled class ``y`` whose logit is
``s * cos(theta_y + m)``.

Numerical safety near ``theta = pi`` (documented choice): ``cos(theta + m)`` is computed as
``cos(theta)cos(m) - sin(theta)sin(m)`` with ``sin(theta) = sqrt(clamp(1 - cos^2, min=eps))`` (no
``acos``, no infinite gradient at ``cos = +-1``). Where ``theta + m`` would pass ``pi``
(``cos(theta) < cos(pi - m)``) the margin logit would stop decreasing with theta, so there we use the
linear fallback ``cos(theta) - m * sin(m)``, which keeps the target logit monotonic in theta and
always below the plain ``cos(theta)``. ``easy_margin=True`` instead applies the margin only where
``cos(theta) > 0``.

Noisy-ArcMix: with mixup partners ``y_a``, ``y_b`` and ratio ``lam`` the loss is
``lam * CE(z, y_a) + (1 - lam) * CE(z, y_b)`` where ``z`` are the ArcFace logits with the margin on
``y_a`` for both terms (the ``y_b`` term sees no margin on its own class, hence "noisy").
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .base import LOSSES, check_batch


@LOSSES.register("arcface", defaults={"scale": 30.0, "margin": 0.7},
                 description="ArcFace additive angular margin softmax (hard labels)")
class ArcFace(nn.Module):
    """ArcFace classifier + cross-entropy.

    Args:
        emb_dim: embedding size.
        n_classes: number of classes.
        scale: logit scale ``s``.
        margin: angular margin ``m`` in radians.
        easy_margin: apply the margin only where ``cos(theta) > 0``.
        sub_centers: centres per class; the class cosine is the max over its centres.
        eps: clamp for ``1 - cos^2`` before the square root.

    ``forward(emb, labels)`` returns the mean CE loss; :meth:`logits` returns the margin logits and
    :meth:`cosine` the plain class cosines (what to use at test time).
    """

    def __init__(self, emb_dim: int = 128, n_classes: int = 2, scale: float = 30.0, margin: float = 0.7,
                 easy_margin: bool = False, sub_centers: int = 1, eps: float = 1e-12):
        super().__init__()
        if n_classes < 1 or sub_centers < 1:
            raise ConfigError(f"ArcFace needs n_classes >= 1 and sub_centers >= 1, got {n_classes}, {sub_centers}")
        if not 0.0 <= margin < math.pi / 2:
            raise ConfigError(f"ArcFace margin must be in [0, pi/2) radians, got {margin}")
        self.emb_dim, self.n_classes, self.sub_centers = emb_dim, n_classes, sub_centers
        self.scale, self.margin, self.easy_margin, self.eps = float(scale), float(margin), easy_margin, eps
        self.weight = nn.Parameter(torch.empty(n_classes * sub_centers, emb_dim))
        nn.init.xavier_uniform_(self.weight)

    def extra_repr(self) -> str:
        return (f"emb_dim={self.emb_dim}, n_classes={self.n_classes}, scale={self.scale}, margin={self.margin}, "
                f"easy_margin={self.easy_margin}, sub_centers={self.sub_centers}")

    def cosine(self, emb: torch.Tensor) -> torch.Tensor:
        """Cosine between each embedding and each class centre, ``[B, C]``."""
        check_batch(emb)
        # computed in the weights' dtype (float32 under autocast): the margin arithmetic near
        # cos = +-1 needs more precision than float16 has
        cos = F.linear(F.normalize(emb.to(self.weight.dtype), dim=-1), F.normalize(self.weight, dim=-1))
        if self.sub_centers > 1:
            cos = cos.view(-1, self.n_classes, self.sub_centers).amax(dim=-1)
        return cos.clamp(-1.0, 1.0)

    def margin_cosine(self, cos: torch.Tensor) -> torch.Tensor:
        """``cos(theta + m)`` computed safely (see module docstring), same shape as ``cos``."""
        m = self.margin
        sin = torch.sqrt((1.0 - cos * cos).clamp(min=self.eps))
        phi = cos * math.cos(m) - sin * math.sin(m)
        if self.easy_margin:
            return torch.where(cos > 0, phi, cos)
        return torch.where(cos > math.cos(math.pi - m), phi, cos - m * math.sin(m))

    def logits(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Scaled logits with the margin on each sample's labelled class, ``[B, C]``."""
        cos = self.cosine(emb)
        labels = labels.long()
        if labels.dim() != 1 or labels.shape[0] != cos.shape[0]:
            raise ConfigError(f"ArcFace takes hard labels [B]; got shape {tuple(labels.shape)} for {cos.shape[0]} embeddings")
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.n_classes):
            raise ConfigError(f"label out of range for ArcFace built with n_classes={self.n_classes}")
        onehot = F.one_hot(labels, self.n_classes).bool()
        out = torch.where(onehot, self.margin_cosine(cos), cos)
        return out * self.scale

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.logits(emb, labels), labels.long())


@LOSSES.register("noisy_arcmix", defaults={"scale": 30.0, "margin": 0.7},
                 description="Noisy-ArcMix: mixup-weighted CE on ArcFace logits with the margin on y_a")
class NoisyArcMix(ArcFace):
    """Noisy-ArcMix loss: ``lam * CE(z, y_a) + (1 - lam) * CE(z, y_b)``, ``z = logits(emb, y_a)``.

    ``forward(emb, y_a, y_b=None, lam=1.0)``: ``lam`` is a float, a 0-d tensor, or a per-sample
    tensor ``[B]``; with ``y_b=None`` (or ``lam == 1``) it is plain ArcFace.
    """

    def forward(self, emb: torch.Tensor, y_a: torch.Tensor, y_b: torch.Tensor | None = None,
                lam: float | torch.Tensor = 1.0) -> torch.Tensor:
        z = self.logits(emb, y_a)
        ce_a = F.cross_entropy(z, y_a.long(), reduction="none")
        if y_b is None:
            return ce_a.mean()
        if y_b.shape != y_a.shape:
            raise ConfigError(f"y_a and y_b must have the same shape, got {tuple(y_a.shape)} and {tuple(y_b.shape)}")
        if y_b.numel() and (int(y_b.min()) < 0 or int(y_b.max()) >= self.n_classes):
            raise ConfigError(f"y_b label out of range for a loss built with n_classes={self.n_classes}")
        ce_b = F.cross_entropy(z, y_b.long(), reduction="none")
        lam_t = torch.as_tensor(lam, dtype=z.dtype, device=z.device)
        return (lam_t * ce_a + (1.0 - lam_t) * ce_b).mean()
