"""Pre-normalisation (dataset statistics, frozen after a warm-up) and post-normalisation (per batch).

``PreNorm`` keeps running scalar statistics of its input (exact running mean and variance over every
element seen, Chan's parallel update in float64) during the first ``warmup_batches`` training batches,
then freezes them; it always normalises with the current statistics. Its state (mean, var, count,
batches seen) lives in buffers, so checkpoints restore a frozen normaliser. Statistics can also be
set directly with :meth:`PreNorm.set_stats` (e.g. computed once over the training set).

``PostNorm`` standardises each batch with its own mean and standard deviation (over all elements,
or over ``dims``).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..errors import ConfigError


class PreNorm(nn.Module):
    """``(x - mean) / std`` with dataset statistics learned during a warm-up, then frozen."""

    def __init__(self, warmup_batches: int = 100, eps: float = 1e-8):
        super().__init__()
        if warmup_batches < 0:
            raise ConfigError(f"warmup_batches must be >= 0, got {warmup_batches}")
        self.warmup_batches, self.eps = int(warmup_batches), float(eps)
        self.register_buffer("mean", torch.zeros((), dtype=torch.float64))
        self.register_buffer("var", torch.ones((), dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("batches_seen", torch.zeros((), dtype=torch.long))

    @property
    def frozen(self) -> bool:
        return int(self.batches_seen) >= self.warmup_batches

    def set_stats(self, mean: float, std: float) -> None:
        """Set the statistics and freeze them."""
        if not std > 0:
            raise ConfigError(f"std must be positive, got {std}")
        self.mean.fill_(float(mean))
        self.var.fill_(float(std) ** 2)
        self.count.fill_(1.0)
        self.batches_seen.fill_(self.warmup_batches)

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        xd = x.detach().double()
        n = float(xd.numel())
        if n == 0:
            return
        m, v = xd.mean(), xd.var(unbiased=False)
        n0 = float(self.count)
        tot = n0 + n
        delta = m - self.mean
        new_mean = self.mean + delta * n / tot
        m2 = self.var * n0 + v * n + delta * delta * n0 * n / tot
        self.mean.copy_(new_mean)
        self.var.copy_(m2 / tot)
        self.count.fill_(tot)
        self.batches_seen.add_(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and not self.frozen:
            self.update(x)
        mean = self.mean.to(x.dtype)
        std = torch.sqrt(self.var + self.eps).to(x.dtype)
        return (x - mean) / std


def post_norm(x: torch.Tensor, dims: Sequence[int] | None = None, eps: float = 1e-8) -> torch.Tensor:
    """Standardise with the batch's own mean/std (population std) over ``dims`` (default: all)."""
    d = tuple(range(x.dim())) if dims is None else tuple(dims)
    mean = x.mean(dim=d, keepdim=True)
    var = x.var(dim=d, keepdim=True, unbiased=False)
    return (x - mean) / torch.sqrt(var + eps)


class PostNorm(nn.Module):
    """Module form of :func:`post_norm`."""

    def __init__(self, dims: Sequence[int] | None = None, eps: float = 1e-8):
        super().__init__()
        self.dims, self.eps = (tuple(dims) if dims is not None else None), eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return post_norm(x, self.dims, self.eps)
