"""Training engine: optimisers and schedules, EMA, checkpoints, runtime set-up, DDP, run
directories, progress bars and the generic trainer.

Names are imported lazily so that ``auscult.engine.runtime`` (the allocator tuning, which should
run before torch allocates) can be imported without pulling in torch.

    from auscult.engine import Trainer, TrainConfig, ModelEMA, RunDir, build_optimizer, build_scheduler
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Trainer": "trainer", "TrainConfig": "trainer", "TrainState": "trainer", "to_device": "trainer",
    "load_trained_model": "trainer",
    "OptimConfig": "optim", "build_optimizer": "optim", "build_scheduler": "optim",
    "schedule_factor": "optim", "clip_gradients": "optim",
    "ModelEMA": "ema",
    "save_checkpoint": "checkpoint", "load_checkpoint": "checkpoint", "load_model_state": "checkpoint",
    "capture_rng_state": "checkpoint", "restore_rng_state": "checkpoint", "config_hash": "checkpoint",
    "setup_runtime": "runtime", "tune_allocator": "runtime", "resolve_device": "runtime",
    "seed_everything": "runtime", "set_num_threads": "runtime",
    "Precision": "amp",
    "init_distributed": "distributed", "SeededSampler": "distributed", "is_main": "distributed",
    "all_reduce_mean": "distributed", "cleanup": "distributed",
    "RunDir": "rundir",
    "progress_bar": "progress", "track": "progress",
    "holdout_split": "holdout",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'auscult.engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
