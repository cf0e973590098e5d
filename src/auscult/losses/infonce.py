"""InfoNCE with a MoCo queue and the momentum key-encoder update.

``InfoNCEMoCo`` holds a FIFO queue of negative keys (a buffer, so checkpoints include it, with its
write pointer). For queries ``q`` and positive keys ``k`` (from the momentum encoder)::

    logits_i = [q_i . k_i, q_i . queue_1, ..., q_i . queue_Q] / tau,   target 0

In training mode the batch's keys are enqueued after the loss is formed (oldest keys are
overwritten first). The queue starts filled with random unit vectors, as in MoCo.

:func:`momentum_update` implements ``theta_k <- m * theta_k + (1 - m) * theta_q`` (buffers such as BN
running stats are copied).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .base import LOSSES


@torch.no_grad()
def momentum_update(key_model: nn.Module, query_model: nn.Module, m: float = 0.99) -> None:
    """``theta_k <- m * theta_k + (1 - m) * theta_q`` for every parameter; buffers are copied.

    The two models must have the same architecture (same parameter names and shapes).
    """
    if not 0.0 <= m <= 1.0:
        raise ConfigError(f"momentum must be in [0, 1], got {m}")
    qp = dict(query_model.named_parameters())
    for name, pk in key_model.named_parameters():
        if name not in qp or qp[name].shape != pk.shape:
            raise ConfigError(f"key and query models differ at parameter {name!r}; build both from the same config")
        pk.mul_(m).add_(qp[name].detach(), alpha=1.0 - m)
    qb = dict(query_model.named_buffers())
    for name, bk in key_model.named_buffers():
        if name in qb:
            bk.copy_(qb[name])


@LOSSES.register("infonce_moco", defaults={"queue_size": 4096, "temperature": 0.07},
                 description="InfoNCE with a MoCo FIFO queue of negative keys")
class InfoNCEMoCo(nn.Module):
    """InfoNCE loss with a bounded FIFO queue of negative keys.

    Args:
        emb_dim: key/query size.
        queue_size: number of negative keys kept.
        temperature: tau.
        seed: seed for the random initial queue.
    """

    def __init__(self, emb_dim: int = 128, queue_size: int = 4096, temperature: float = 0.07,
                 seed: int | None = None, n_classes: int | None = None):
        # n_classes is accepted (and unused) so every loss builds with the same arguments
        super().__init__()
        if queue_size < 1 or temperature <= 0:
            raise ConfigError(f"need queue_size >= 1 and temperature > 0, got {queue_size}, {temperature}")
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        self.temperature = float(temperature)
        self.register_buffer("queue", F.normalize(torch.randn(queue_size, emb_dim, generator=gen), dim=1))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    def extra_repr(self) -> str:
        return f"queue_size={self.queue.shape[0]}, emb_dim={self.queue.shape[1]}, temperature={self.temperature}"

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Write ``keys`` (normalised) over the oldest queue entries."""
        if keys.dim() != 2 or keys.shape[1] != self.queue.shape[1]:
            raise ConfigError(f"keys must be [B, {self.queue.shape[1]}], got {tuple(keys.shape)}")
        keys = F.normalize(keys.detach(), dim=1).to(self.queue.dtype)
        q = self.queue.shape[0]
        if keys.shape[0] > q:
            keys = keys[-q:]
        n = keys.shape[0]
        idx = (int(self.ptr) + torch.arange(n, device=self.queue.device)) % q
        self.queue[idx] = keys
        self.ptr.fill_((int(self.ptr) + n) % q)

    def logits(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """``[B, 1 + Q]`` logits, positive first."""
        if q.shape != k.shape or q.dim() != 2:
            raise ConfigError(f"queries and keys must both be [B, D]; got {tuple(q.shape)} and {tuple(k.shape)}")
        # in the queue's dtype (float32 under autocast)
        q = F.normalize(q.to(self.queue.dtype), dim=1)
        k = F.normalize(k.to(self.queue.dtype), dim=1).detach()
        pos = (q * k).sum(1, keepdim=True)
        neg = q @ self.queue.clone().T
        return torch.cat([pos, neg], dim=1) / self.temperature

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        z = self.logits(q, k)
        loss = F.cross_entropy(z, torch.zeros(z.shape[0], dtype=torch.long, device=z.device))
        if self.training:
            self.enqueue(k)
        return loss
