"""Exponential moving average of a model's weights **and** buffers.

Floating-point parameters and buffers (BatchNorm running mean/var included) are averaged:
``ema = decay * ema + (1 - decay) * current``. Integer buffers (``num_batches_tracked``) are
copied. Evaluate with the averaged model either through ``ema.module`` (a separate copy) or by
temporarily swapping the averaged values into the live model::

    ema = ModelEMA(model, decay=0.999)
    ...  # after each optimiser step
    ema.update(model)
    with ema.swapped(model):       # model now holds the EMA weights
        score = validate(model)
    # original weights are back here
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Any, Iterator

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) else model


class ModelEMA:
    """EMA of a model's state (parameters and buffers).

    Args:
        model: the model being trained (a DDP wrapper is unwrapped).
        decay: averaging decay in [0, 1).
        warmup: if True use ``min(decay, (1 + n) / (10 + n))`` with ``n`` updates so far, so the
            average is not dominated by the random initialisation early on.
        buffers: ``"ema"`` (average float buffers, the default) or ``"copy"`` (copy them).
        shrink: after each update, multiply the *trained* model's floating-point parameters and
            buffers by ``1 - shrink`` (0 = off). The OS-SCL code's ``WeightEMA`` does this with
            ``2e-6`` on top of AdamW's weight decay (BN running statistics included).
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: bool = False, buffers: str = "ema",
                 shrink: float = 0.0):
        if not 0.0 <= decay < 1.0:
            raise ConfigError(f"EMA decay must be in [0, 1), got {decay}")
        if not 0.0 <= shrink < 1.0:
            raise ConfigError(f"EMA shrink must be in [0, 1), got {shrink}")
        if buffers not in ("ema", "copy"):
            raise ConfigError(f"EMA buffers must be 'ema' or 'copy', got {buffers!r}")
        self.decay = float(decay)
        self.warmup = bool(warmup)
        self.buffers = buffers
        self.shrink = float(shrink)
        self.updates = 0
        self.module = copy.deepcopy(_unwrap(model)).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    def current_decay(self) -> float:
        if self.warmup:
            return min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        return self.decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold the model's current state into the average (call after each optimiser step)."""
        d = self.current_decay()
        src = _unwrap(model)
        param_names = {n for n, _ in src.named_parameters()}
        ema_state = self.module.state_dict()
        for name, value in src.state_dict().items():
            target = ema_state[name]
            if not value.dtype.is_floating_point:
                target.copy_(value)
            elif name in param_names or self.buffers == "ema":
                target.mul_(d).add_(value.detach().to(target.dtype), alpha=1.0 - d)
            else:
                target.copy_(value)
            if self.shrink and value.dtype.is_floating_point:
                value.mul_(1.0 - self.shrink)  # state_dict values share storage with the model
        self.updates += 1

    @contextmanager
    def swapped(self, model: nn.Module) -> Iterator[nn.Module]:
        """Context manager: load the EMA state into ``model``, restore its own state on exit."""
        target = _unwrap(model)
        backup = {k: v.detach().clone() for k, v in target.state_dict().items()}
        target.load_state_dict(self.module.state_dict())
        try:
            yield model
        finally:
            target.load_state_dict(backup)

    def copy_to(self, model: nn.Module) -> None:
        """Permanently load the EMA state into ``model``."""
        _unwrap(model).load_state_dict(self.module.state_dict())

    def to(self, device: Any) -> "ModelEMA":
        self.module.to(device)
        return self

    def state_dict(self) -> dict[str, Any]:
        return {
            "decay": self.decay,
            "warmup": self.warmup,
            "buffers": self.buffers,
            "shrink": self.shrink,
            "updates": self.updates,
            "module": self.module.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        try:
            self.module.load_state_dict(state["module"])
            self.decay = float(state["decay"])
            self.warmup = bool(state["warmup"])
            self.buffers = state["buffers"]
            self.shrink = float(state.get("shrink", 0.0))
            self.updates = int(state["updates"])
        except (KeyError, RuntimeError) as e:
            raise CheckpointError(f"EMA state does not match this model: {e}") from e
