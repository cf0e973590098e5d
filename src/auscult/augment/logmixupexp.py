"""Log-mixup-exp with a FIFO memory bank of past (un-mixed) inputs (BYOL-A style).

``x_mixed = log((1 - lam) * exp(x) + lam * exp(x_k))`` with ``x_k`` a random item of the bank and
``lam ~ U(0, alpha)`` per sample (``alpha = 0.4``). Inputs are natural-log features (log-mel as
``log(mel + eps)``; convert dB first: ``x_ln = x_dB * ln(10) / 10``, else the mix is not a mix of
energies). The
mix is computed stably with ``logaddexp``. The bank stores the batch's *un-mixed* inputs after they
are used, oldest first out, at most ``bank_size`` items.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError


def log_mixup_exp(x: torch.Tensor, other: torch.Tensor, lam: torch.Tensor | float) -> torch.Tensor:
    """``log((1 - lam) * exp(x) + lam * exp(other))``; ``lam`` scalar or ``[B]``."""
    lam = torch.as_tensor(lam, dtype=x.dtype, device=x.device)
    if lam.dim() == 1:
        lam = lam.view(-1, *([1] * (x.dim() - 1)))
    lam = lam.clamp(0.0, 1.0)
    a = x + torch.log1p(-lam.clamp(max=1 - 1e-7))
    b = other + torch.log(lam.clamp(min=1e-45))
    a = torch.where(lam >= 1, torch.full_like(a, -math.inf), a)
    b = torch.where(lam <= 0, torch.full_like(b, -math.inf), b)
    return torch.logaddexp(a, b)


class MemoryBank(nn.Module):
    """Bounded FIFO bank of past inputs (a buffer; its shape is fixed by the first push).

    ``push(x)`` appends the batch (oldest items are dropped beyond ``size``); ``items()`` returns the
    stored items oldest first; ``sample(n, generator)`` draws ``n`` items uniformly with replacement.
    """

    def __init__(self, size: int = 2048):
        super().__init__()
        if size < 1:
            raise ConfigError(f"memory bank size must be >= 1, got {size}")
        self.size = int(size)
        self.register_buffer("data", torch.empty(0))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    def __len__(self) -> int:
        return int(self.count)

    @torch.no_grad()
    def push(self, x: torch.Tensor) -> None:
        x = x.detach()
        if self.data.numel() == 0 or self.data.shape[1:] != x.shape[1:]:
            if int(self.count) > 0:
                raise ConfigError(
                    f"memory bank holds items of shape {tuple(self.data.shape[1:])}, got {tuple(x.shape[1:])}; "
                    "keep the input shape fixed or use a new bank"
                )
            self.data = torch.zeros((self.size, *x.shape[1:]), dtype=x.dtype, device=x.device)
        if x.shape[0] > self.size:
            x = x[-self.size:]
        n = x.shape[0]
        idx = (int(self.ptr) + torch.arange(n, device=self.data.device)) % self.size
        self.data[idx] = x.to(self.data)
        self.ptr.fill_((int(self.ptr) + n) % self.size)
        self.count.fill_(min(self.size, int(self.count) + n))

    def items(self) -> torch.Tensor:
        """Stored items, oldest first."""
        n = int(self.count)
        if n < self.size:
            return self.data[:n]
        return torch.roll(self.data, -int(self.ptr), dims=0)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        if int(self.count) == 0:
            raise ConfigError("cannot sample from an empty memory bank")
        idx = torch.randint(int(self.count), (n,), generator=generator)
        # valid slots are 0..count-1 when not yet full and all slots when full: both are data[:count]
        return self.data[idx.to(self.data.device)]

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[override]
        key = prefix + "data"
        if key in state_dict:
            self.data = torch.empty_like(state_dict[key])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class LogMixupExp(nn.Module):
    """Log-mixup-exp against a memory bank of past inputs; identity in eval mode.

    Args:
        bank_size: capacity of the FIFO bank.
        alpha: ``lam ~ U(0, alpha)``.
        p: probability of mixing each sample (others get ``lam = 0``).

    The first batch (empty bank) is returned unchanged. ``forward(x, generator)`` returns the mixed
    batch; the last ratios are in ``self.last_lam``.
    """

    def __init__(self, bank_size: int = 2048, alpha: float = 0.4, p: float = 1.0):
        super().__init__()
        if not 0 <= alpha <= 1:
            raise ConfigError(f"log-mixup-exp alpha must be in [0, 1], got {alpha}")
        self.alpha, self.p = float(alpha), float(p)
        self.bank = MemoryBank(bank_size)
        self.last_lam: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if not self.training:
            return x
        b = x.shape[0]
        if len(self.bank) == 0:
            out = x
            self.last_lam = torch.zeros(b)
        else:
            other = self.bank.sample(b, generator)
            lam = torch.rand(b, generator=generator) * self.alpha
            lam = torch.where(torch.rand(b, generator=generator) < self.p, lam, torch.zeros_like(lam))
            self.last_lam = lam
            out = log_mixup_exp(x, other.to(x), lam.to(x.device))
        self.bank.push(x)
        return out
