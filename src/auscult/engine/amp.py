"""Mixed precision: autocast + GradScaler on CUDA, a no-op everywhere else.

``Precision("bf16")`` autocasts to bfloat16 (no scaler needed); ``Precision("fp16")`` autocasts to
float16 with a ``GradScaler``; ``"fp32"``/``"off"`` does nothing. On CPU (and MPS) every mode falls
back to full precision, so a recipe that asks for ``amp: bf16`` still runs on a laptop.
"""

from __future__ import annotations

import contextlib
from typing import Any, ContextManager

import torch

from ..errors import ConfigError

MODES = ("off", "fp32", "bf16", "fp16")


class Precision:
    """Autocast context and loss scaler for one device."""

    def __init__(self, mode: str = "off", device: torch.device | str = "cpu"):
        mode = (mode or "off").lower()
        if mode in ("none", "false", "no"):
            mode = "off"
        if mode not in MODES:
            raise ConfigError(f"unknown precision {mode!r}; choose one of {list(MODES)}")
        self.device = torch.device(device)
        self.requested = mode
        self.active = self.device.type == "cuda" and mode in ("bf16", "fp16")
        if self.active and mode == "bf16" and not torch.cuda.is_bf16_supported():
            raise ConfigError("bf16 requested but this GPU does not support bfloat16; use amp=fp16")
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mode) if self.active else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.active and mode == "fp16")

    @property
    def mode(self) -> str:
        """The precision actually in use (``fp32`` when the request fell back)."""
        return self.requested if self.active else "fp32"

    def autocast(self) -> ContextManager[Any]:
        if not self.active:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.dtype)

    def state_dict(self) -> dict[str, Any]:
        return self.scaler.state_dict() if self.scaler.is_enabled() else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state and self.scaler.is_enabled():
            self.scaler.load_state_dict(state)
