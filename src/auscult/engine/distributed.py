"""Distributed data parallel through ``torchrun`` (NCCL on GPUs, gloo on CPU).

The same training command runs on one CPU or many GPUs: under ``torchrun`` the environment holds
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``, and
:func:`init_distributed` joins the process group (``env://``); without them it is a no-op and the
run is single-process. Only rank 0 logs, writes metrics and checkpoints (:func:`is_main`).

    torchrun --nproc_per_node 2 -m auscult train recipe.yaml --data ROOT
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.distributed as dist

from ..errors import ConfigError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_distributed(backend: str | None = None, device: torch.device | str | None = None,
                     timeout_s: float = 1800.0) -> DistInfo:
    """Join the process group described by the ``torchrun`` environment (``env://``).

    ``backend`` defaults to NCCL when the device is CUDA, gloo otherwise. On CUDA each process is
    pinned to ``cuda:LOCAL_RANK``. Returns :class:`DistInfo`; single-process when ``WORLD_SIZE`` is
    unset or 1. Calling it again after the group exists just describes it.
    """
    if dist.is_available() and dist.is_initialized():
        return current()
    world = env_world_size()
    if world <= 1:
        return DistInfo()
    if not dist.is_available():
        raise ConfigError("WORLD_SIZE > 1 but this torch build has no torch.distributed support")
    for var in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        if var not in os.environ:
            raise ConfigError(f"WORLD_SIZE={world} but {var} is not set; launch with torchrun")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device(device) if device is not None else (
        torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu"))
    if backend is None:
        backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend, init_method="env://",
                            timeout=datetime.timedelta(seconds=timeout_s))
    return current()


def current() -> DistInfo:
    """The process group as seen from this process (``DistInfo()`` when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistInfo()
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(),
                    local_rank=int(os.environ.get("LOCAL_RANK", "0")), backend=dist.get_backend())


def is_main() -> bool:
    """True on rank 0 (and in single-process runs)."""
    return current().is_main


def barrier() -> None:
    if current().is_distributed:
        dist.barrier()


def all_reduce_mean(value: torch.Tensor | float) -> torch.Tensor:
    """Mean of a tensor (or float) over all ranks; the value itself when not distributed."""
    t = value.detach().clone() if isinstance(value, torch.Tensor) else torch.tensor(float(value))
    info = current()
    if not info.is_distributed:
        return t
    if info.backend == "nccl" and t.device.type != "cuda":
        t = t.cuda()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t / info.world_size


def all_reduce_sum(value: torch.Tensor) -> torch.Tensor:
    """Sum of a tensor over all ranks (in place on a copy)."""
    t = value.detach().clone()
    if current().is_distributed:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Send a picklable object from rank ``src`` to every rank (early-stopping decisions, paths)."""
    if not current().is_distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def wrap_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Wrap in ``DistributedDataParallel`` when distributed, else return ``model`` unchanged."""
    if not current().is_distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    if device.type == "cuda":
        return DDP(model, device_ids=[device.index if device.index is not None else torch.cuda.current_device()])
    return DDP(model)


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") and isinstance(model.module, torch.nn.Module) else model


def cleanup() -> None:
    """Leave the process group (safe when none exists)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class SeededSampler(torch.utils.data.Sampler[int]):
    """Shuffling sampler whose epoch-``e`` order depends only on ``(seed, e)``; sharded across ranks.

    Call ``set_epoch(e)`` before iterating (the trainer does). The permutation comes from a
    ``torch.Generator`` seeded with ``seed + e``, so a resumed run sees exactly the order the
    uninterrupted run saw. Each rank takes every ``world_size``-th index; with ``drop_last=False``
    the permutation is padded by wrapping so every rank gets the same number of samples (like
    ``DistributedSampler``).
    """

    def __init__(self, data_source: Any, seed: int = 0, shuffle: bool = True, rank: int | None = None,
                 world_size: int | None = None, drop_last: bool = False):
        info = current()
        self.n = len(data_source) if not isinstance(data_source, int) else int(data_source)
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.rank = info.rank if rank is None else int(rank)
        self.world_size = info.world_size if world_size is None else int(world_size)
        if not 0 <= self.rank < self.world_size:
            raise ConfigError(f"rank {self.rank} out of range for world size {self.world_size}")
        self.drop_last = bool(drop_last)
        self.epoch = 0
        if self.drop_last:
            self.per_rank = self.n // self.world_size
        else:
            self.per_rank = -(-self.n // self.world_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.per_rank

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        total = self.per_rank * self.world_size
        if total > len(order) and order:
            order = (order * (-(-total // len(order))))[:total]
        order = order[:total]
        return iter(order[self.rank:total:self.world_size])
