"""Optimisers, learning-rate schedules and gradient clipping.

Schedules are closed-form functions of the step counter (``lr(t) = base_lr * factor(t)``), built
as ``torch.optim.lr_scheduler.LambdaLR`` so their state is just the step counter and they resume
exactly. ``t`` counts scheduler steps: optimiser steps when the trainer's ``scheduler_interval`` is
``"step"`` (the default), epochs when it is ``"epoch"``.

- ``constant``: factor 1.
- ``cosine``: ``eta_min + (base - eta_min) * (1 + cos(pi * t' / T')) / 2`` after the warm-up, with
  ``t' = t - warmup`` and ``T' = total - warmup``; stays at ``eta_min`` past the end.
- ``step``: ``base * gamma ** (t' // step_size)``.
- linear warm-up (``warmup_steps > 0``), composable with any of them: ``factor = (t + 1) / (warmup + 1)``
  for ``t < warmup``, so the first step already has a small non-zero learning rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import torch
from torch import nn

from ..errors import ConfigError

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "step")


@dataclass
class OptimConfig:
    """Optimiser + schedule settings (a recipe's ``optim:`` section)."""

    name: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9  # SGD only
    nesterov: bool = False  # SGD only
    betas: tuple[float, float] = (0.9, 0.999)  # Adam/AdamW
    eps: float = 1e-8
    schedule: str = "constant"
    warmup_steps: int = 0
    eta_min: float = 0.0  # cosine floor, absolute learning rate
    step_size: int = 1  # step schedule period
    gamma: float = 0.1  # step schedule decay
    grad_clip: float | None = None  # max global L2 norm; None = no clipping

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "OptimConfig":
        d = dict(d or {})
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown optimiser setting(s) {unknown}; known: {sorted(known)}")
        if "betas" in d:
            d["betas"] = tuple(d["betas"])
        return cls(**d)


def build_optimizer(params: Iterable[Any] | nn.Module, config: OptimConfig | None = None, **overrides: Any) -> torch.optim.Optimizer:
    """Build Adam, AdamW or SGD (with momentum) from an :class:`OptimConfig` (or keyword overrides).

    ``params`` may be a module (all its parameters that require grad), an iterable of tensors, or
    torch parameter groups.
    """
    cfg = OptimConfig.from_dict({**(config.__dict__ if config else {}), **overrides})
    if isinstance(params, nn.Module):
        params = [p for p in params.parameters() if p.requires_grad]
    name = cfg.name.lower()
    if cfg.lr <= 0:
        raise ConfigError(f"optimiser lr must be > 0, got {cfg.lr}")
    if name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay
        )
    raise ConfigError(f"unknown optimiser {cfg.name!r}; choose one of {list(OPTIMIZERS)}")


def schedule_factor(
    schedule: str,
    total_steps: int,
    warmup_steps: int = 0,
    base_lr: float = 1.0,
    eta_min: float = 0.0,
    step_size: int = 1,
    gamma: float = 0.1,
) -> Callable[[int], float]:
    """Return ``t -> lr(t) / base_lr`` for one schedule (see the module docstring for formulas)."""
    schedule = schedule.lower()
    if schedule not in SCHEDULES:
        raise ConfigError(f"unknown schedule {schedule!r}; choose one of {list(SCHEDULES)}")
    if warmup_steps < 0:
        raise ConfigError(f"warmup_steps must be >= 0, got {warmup_steps}")
    if schedule == "cosine" and total_steps <= warmup_steps:
        raise ConfigError(
            f"cosine schedule needs total_steps ({total_steps}) > warmup_steps ({warmup_steps})"
        )
    if schedule == "step" and step_size < 1:
        raise ConfigError(f"step schedule needs step_size >= 1, got {step_size}")
    if base_lr <= 0:
        raise ConfigError(f"base learning rate must be > 0, got {base_lr}")
    floor = eta_min / base_lr

    def factor(t: int) -> float:
        if t < warmup_steps:
            warm = (t + 1) / (warmup_steps + 1)
        else:
            warm = 1.0
        tt = max(0, t - warmup_steps)
        if schedule == "constant":
            f = 1.0
        elif schedule == "cosine":
            span = total_steps - warmup_steps
            progress = min(tt, span) / span
            f = floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
        else:  # step
            f = gamma ** (tt // step_size)
        return warm * f

    return factor


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: OptimConfig | None = None, total_steps: int | None = None, **overrides: Any
) -> torch.optim.lr_scheduler.LambdaLR:
    """Build the schedule of ``config`` for ``optimizer`` (``total_steps`` = scheduler steps of the run)."""
    cfg = OptimConfig.from_dict({**(config.__dict__ if config else {}), **overrides})
    if cfg.schedule.lower() == "cosine" and not total_steps:
        raise ConfigError("cosine schedule needs total_steps (epochs x steps per epoch)")
    factors = [
        schedule_factor(
            cfg.schedule,
            int(total_steps or 0),
            cfg.warmup_steps,
            base_lr=g.get("initial_lr", g["lr"]),
            eta_min=cfg.eta_min,
            step_size=cfg.step_size,
            gamma=cfg.gamma,
        )
        for g in optimizer.param_groups
    ]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factors)


def clip_gradients(parameters: Iterable[torch.Tensor] | nn.Module, max_norm: float | None) -> float:
    """Clip the global L2 norm of the gradients to ``max_norm``; return the norm before clipping.

    ``max_norm`` None or <= 0 only measures the norm. A non-finite norm is returned as is (the
    caller decides; with a GradScaler the step is skipped anyway).
    """
    if isinstance(parameters, nn.Module):
        parameters = parameters.parameters()
    params = [p for p in parameters if p.grad is not None]
    if not params:
        return 0.0
    if max_norm is None or max_norm <= 0:
        norms = torch.stack([p.grad.detach().float().norm(2) for p in params])
        return float(norms.norm(2))
    return float(torch.nn.utils.clip_grad_norm_(params, max_norm))
