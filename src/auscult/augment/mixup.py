"""Mixup on waveforms or features.

``mixup(x, ...)`` returns ``MixupResult(x, perm, lam)``: ``x_mixed = lam * x + (1 - lam) * x[perm]``.
Losses use ``y_a = y`` and ``y_b = y[perm]`` (see :func:`mix_labels` for soft labels).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError


@dataclass
class MixupResult:
    """Mixed batch, partner permutation ``[B]`` and ratio ``lam`` (0-d, or ``[B]`` per sample)."""

    x: torch.Tensor
    perm: torch.Tensor
    lam: torch.Tensor


def sample_lambda(shape: tuple[int, ...], alpha: float = 1.0, dist: str = "beta",
                  generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Draw mixing ratios: ``Beta(alpha, alpha)`` or ``U(0, alpha)`` (``dist="uniform"``, alpha=1 -> U(0,1)).

    Draws are made in float64 and cast to ``dtype`` (for small alpha a visible share of Beta draws lies
    within float32 rounding of 1 and becomes exactly 1.0 in float32).
    """
    if alpha <= 0:
        raise ConfigError(f"mixup alpha must be positive, got {alpha}")
    if dist == "beta":
        # Beta(a, a) = G1 / (G1 + G2) with Gamma(a) draws; torch's Gamma sampler takes no generator,
        # so the Gamma draws are made here from the generator's normals and uniforms.
        # (computed in the log domain: for small alpha the Gamma draws underflow even in float64)
        return torch.sigmoid(_log_gamma(shape, alpha, generator) - _log_gamma(shape, alpha, generator)).to(dtype)
    if dist == "uniform":
        return (torch.rand(shape, generator=generator, dtype=torch.float64) * alpha).to(dtype)
    raise ConfigError(f"unknown mixup lambda distribution {dist!r}; use 'beta' or 'uniform'")


def _log_gamma(shape: tuple[int, ...], alpha: float, generator: torch.Generator | None) -> torch.Tensor:
    """log of Gamma(alpha, 1) samples (float64) driven by ``generator``.

    Marsaglia-Tsang; for alpha < 1 the boost G(alpha) = G(alpha + 1) * U^(1/alpha), in logs.
    """
    a = alpha if alpha >= 1 else alpha + 1.0
    d = a - 1.0 / 3.0
    c = 1.0 / (9.0 * d) ** 0.5
    n = int(torch.tensor(shape).prod()) if shape else 1
    out = torch.empty(0, dtype=torch.float64)
    while out.numel() < n:
        m = 2 * (n - out.numel()) + 8
        x = torch.randn(m, generator=generator, dtype=torch.float64)
        u = torch.rand(m, generator=generator, dtype=torch.float64)
        v = (1 + c * x) ** 3
        ok = (v > 0) & (torch.log(u.clamp(min=1e-300)) < 0.5 * x * x + d - d * v + d * torch.log(v.clamp(min=1e-300)))
        out = torch.cat([out, (d * v)[ok]])
    out = torch.log(out[:n])
    if alpha < 1:
        u = torch.rand(n, generator=generator, dtype=torch.float64).clamp(min=1e-300)
        out = out + torch.log(u) / alpha
    return out.reshape(shape)


def mixup(x: torch.Tensor, alpha: float = 1.0, dist: str = "beta", p: float = 1.0, per_sample: bool = False,
          generator: torch.Generator | None = None, perm: torch.Tensor | None = None,
          lam: float | torch.Tensor | None = None) -> MixupResult:
    """Mix each sample with a random partner from the batch.

    Args:
        x: batch ``[B, ...]`` (waveforms or features), on any device.
        alpha: Beta(alpha, alpha) parameter, or the upper bound of U(0, alpha).
        dist: ``"beta"`` or ``"uniform"``.
        p: probability of mixing; otherwise (or for samples not chosen when ``per_sample``) ``lam = 1``.
        per_sample: one ``lam`` per sample (``[B]``) instead of one per batch.
        generator: CPU ``torch.Generator`` for the random draws.
        perm: use this partner permutation instead of drawing one.
        lam: use this ratio (a number, 0-d, or ``[B]`` with ``per_sample``) instead of drawing one
            (``p`` is then ignored); for replaying a recorded batch.
    """
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"mixup probability must be in [0, 1], got {p}")
    b = x.shape[0]
    if perm is None:
        perm = torch.randperm(b, generator=generator)
    perm = perm.to(x.device)
    shape = (b,) if per_sample else ()
    dtype = x.dtype if x.is_floating_point() else torch.float32
    if lam is None:
        lam = sample_lambda(shape, alpha, dist, generator)
        apply = torch.rand(shape, generator=generator) < p
        lam = torch.where(apply, lam, torch.ones_like(lam)).to(device=x.device, dtype=dtype)
    else:
        lam = torch.as_tensor(lam, dtype=torch.float64).to(device=x.device, dtype=dtype)
        if tuple(lam.shape) != shape:
            raise ConfigError(f"mixup: lam must have shape {shape}, got {tuple(lam.shape)}")
    lam_b = lam.view(-1, *([1] * (x.dim() - 1))) if per_sample else lam
    return MixupResult(lam_b * x + (1 - lam_b) * x[perm], perm, lam)


def mix_labels(y: torch.Tensor, perm: torch.Tensor, lam: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Soft labels ``lam * onehot(y) + (1 - lam) * onehot(y[perm])`` as ``[B, n_classes]``."""
    from ..losses.base import as_soft_labels

    ys = as_soft_labels(y, n_classes)
    lam = torch.as_tensor(lam, dtype=ys.dtype, device=ys.device)
    lam = lam.view(-1, 1) if lam.dim() == 1 else lam
    return lam * ys + (1 - lam) * ys[perm.to(ys.device)]


class Mixup(nn.Module):
    """Module form of :func:`mixup`; identity in eval mode (returns ``lam = 1``, identity ``perm``)."""

    def __init__(self, alpha: float = 1.0, dist: str = "beta", p: float = 1.0, per_sample: bool = False):
        super().__init__()
        self.alpha, self.dist, self.p, self.per_sample = alpha, dist, p, per_sample

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> MixupResult:
        if not self.training:
            return MixupResult(x, torch.arange(x.shape[0], device=x.device), torch.ones((), device=x.device))
        return mixup(x, self.alpha, self.dist, self.p, self.per_sample, generator)
