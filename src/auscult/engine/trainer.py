"""The training loop, generic over methods.

A method supplies a ``step_fn(batch, model, state) -> dict`` that runs the forward pass and returns
at least ``{"loss": tensor}`` (plus any scalars to log); the trainer does everything else:
device placement, mixed precision, backward, gradient clipping, optimiser and schedule steps, EMA,
per-step metrics, validation on held-out *training normals*, best-model selection, early stopping,
checkpoints and resume::

    trainer = Trainer(model, step_fn, loader, optimizer, scheduler, TrainConfig(epochs=10, seed=0),
                      run_dir=RunDir.create("runs", "ae"), val_fn=val_fn, ema=ModelEMA(model),
                      extra_state={"bank": memory_bank})
    history = trainer.fit()

Resume: ``TrainConfig(resume=True)`` continues from ``checkpoints/last.pt`` and ends where the
uninterrupted run would have ended. This holds mid-epoch too: the checkpoint keeps the RNG states
at the start of the epoch and at the checkpoint; on resume the trainer re-creates the epoch's
loader iterator under the epoch-start states (so a shuffling sampler produces the same order and
the loader's worker seeds are the same), consumes and discards the batches already trained on, then
restores the RNG states of the checkpoint. Discarding means those batches are loaded again (not
trained on) - a cost of at most one checkpoint interval.
Requirements for exact resume: the loader's order must depend only on the RNG (a plain
``shuffle=True`` loader, :class:`~auscult.engine.distributed.SeededSampler` or
``DistributedSampler`` all qualify), and every other piece of state that changes during training
(memory banks, queues, counters) must be registered in ``extra_state``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Protocol

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError
from . import distributed as dist_utils
from .amp import Precision
from .checkpoint import (
    capture_rng_state,
    load_checkpoint,
    load_component,
    load_model_state,
    restore_rng_state,
    save_checkpoint,
)
from .ema import ModelEMA
from .fastpath import to_default_layout, to_training_layout
from .optim import clip_gradients
from .progress import progress_bar
from .rundir import RunDir
from .runtime import resolve_device

log = logging.getLogger("auscult.engine")


@dataclass
class TrainConfig:
    """Loop settings (a recipe's ``train:`` section).

    Attributes:
        epochs: number of passes over the training loader.
        seed: the run's seed (the caller seeds model init; the trainer records it).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``.
        amp: ``off``/``fp32``, ``bf16`` or ``fp16`` (CUDA; on CPU ``bf16`` runs the nets' bodies in
            bfloat16 where the CPU has native bf16 instructions, see :mod:`auscult.engine.fastpath`;
            full precision elsewhere).
        grad_clip: max global gradient L2 norm, or None.
        scheduler_interval: ``step`` (scheduler.step() after every optimiser step) or ``epoch``.
        log_every: write a step record to metrics.jsonl every N optimiser steps (0 = never).
        checkpoint_every_steps: also checkpoint ``last.pt`` every N optimiser steps (None = only
            at epoch ends).
        keep_epoch_checkpoints: keep ``epoch_XXXX.pt`` for every epoch besides ``last.pt``.
        monitor: key of the ``val_fn`` result used for model selection (a float result is used as is).
        monitor_mode: ``min`` or ``max``.
        patience: stop after this many epochs without improvement (None = never stop early).
        min_delta: improvement smaller than this does not count.
        eval_with_ema: evaluate ``val_fn`` with the EMA weights when an EMA is given.
        resume: False, True (``last.pt`` of the run directory, fresh start if none), or a path.
        config_hash: hash of the full run config; a resumed checkpoint must carry the same one.
        quiet: suppress progress bars (None: only show them on a terminal).
    """

    epochs: int = 10
    seed: int = 0
    device: str = "auto"
    amp: str = "off"
    grad_clip: float | None = None
    scheduler_interval: str = "step"
    log_every: int = 10
    checkpoint_every_steps: int | None = None
    keep_epoch_checkpoints: bool = False
    monitor: str = "val_loss"
    monitor_mode: str = "min"
    patience: int | None = None
    min_delta: float = 0.0
    eval_with_ema: bool = True
    resume: bool | str = False
    config_hash: str | None = None
    quiet: bool | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"train.epochs must be >= 1, got {self.epochs}")
        if self.scheduler_interval not in ("step", "epoch"):
            raise ConfigError(f"train.scheduler_interval must be 'step' or 'epoch', got {self.scheduler_interval!r}")
        if self.monitor_mode not in ("min", "max"):
            raise ConfigError(f"train.monitor_mode must be 'min' or 'max', got {self.monitor_mode!r}")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"train.patience must be >= 1 or null, got {self.patience}")
        if self.checkpoint_every_steps is not None and self.checkpoint_every_steps < 1:
            raise ConfigError(f"train.checkpoint_every_steps must be >= 1 or null, got {self.checkpoint_every_steps}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "TrainConfig":
        d = dict(d or {})
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"unknown train setting(s) {unknown}; known: {sorted(cls.__dataclass_fields__)}")
        return cls(**d)


@dataclass
class TrainState:
    """What ``step_fn``/``val_fn``/callbacks see of the loop."""

    epoch: int = 0
    step: int = 0  # optimiser steps done so far (global)
    step_in_epoch: int = 0  # batches done in the current epoch
    steps_per_epoch: int | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    rank: int = 0
    world_size: int = 1
    extra: dict[str, Any] = field(default_factory=dict)
    precision: Precision | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0


class Callback(Protocol):
    """Any subset of these methods; the trainer calls those present."""

    def on_fit_start(self, trainer: "Trainer") -> None: ...
    def on_step_end(self, trainer: "Trainer", outputs: Mapping[str, Any]) -> None: ...
    def on_epoch_end(self, trainer: "Trainer", record: Mapping[str, Any]) -> None: ...
    def on_fit_end(self, trainer: "Trainer", history: list[dict[str, Any]]) -> None: ...


def to_device(batch: Any, device: torch.device, non_blocking: bool = True) -> Any:
    """Move tensors inside (nested) dicts, lists and tuples to ``device``; other values unchanged."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=non_blocking and device.type == "cuda")
    if isinstance(batch, Mapping):
        moved = {k: to_device(v, device, non_blocking) for k, v in batch.items()}
        try:
            return type(batch)(moved)
        except TypeError:
            return moved
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(to_device(v, device, non_blocking) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device, non_blocking) for v in batch)
    return batch


def _scalar(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        return float(v.detach().float().mean()) if v.numel() else None
    if isinstance(v, (int, float, str, bool)) or v is None:
        return v
    return None


class Trainer:
    """Generic training loop; see the module docstring."""

    def __init__(
        self,
        model: nn.Module,
        step_fn: Callable[[Any, nn.Module, TrainState], Mapping[str, Any]],
        train_loader: Iterable[Any],
        optimizer: torch.optim.Optimizer,
        scheduler: Any | None = None,
        config: TrainConfig | None = None,
        run_dir: RunDir | str | Path | None = None,
        val_fn: Callable[[nn.Module, TrainState], float | Mapping[str, Any]] | None = None,
        ema: ModelEMA | None = None,
        extra_state: Mapping[str, Any] | None = None,
        callbacks: Iterable[Any] = (),
    ):
        self.config = config or TrainConfig()
        self.dist = dist_utils.current()
        self.device = resolve_device(self.config.device)
        if self.device.type == "cuda" and self.dist.is_distributed and self.device.index is None:
            self.device = torch.device("cuda", self.dist.local_rank)
        self.raw_model = model.to(self.device)
        # CPU fast path (auscult.engine.fastpath): NHWC conv weights for the duration of fit (so the
        # activations after the first NHWC conv are NHWC); converted before DDP wraps the model
        self._channels_last = to_training_layout(self.raw_model, self.device)
        self.model = dist_utils.wrap_model(self.raw_model, self.device)
        self.step_fn = step_fn
        self.train_loader = train_loader
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.val_fn = val_fn
        self.ema = ema.to(self.device) if ema is not None else None
        if self.ema is not None and self._channels_last:
            self.ema.module.to(memory_format=torch.channels_last)
        self.extra_state = dict(extra_state or {})
        for name, obj in self.extra_state.items():
            if not (hasattr(obj, "state_dict") and hasattr(obj, "load_state_dict")):
                raise ConfigError(f"extra_state[{name!r}] needs state_dict() and load_state_dict() methods")
        self.callbacks = list(callbacks)
        if run_dir is not None and not isinstance(run_dir, RunDir):
            run_dir = RunDir(run_dir)
        self.run_dir = run_dir
        self.precision = Precision(self.config.amp, self.device)
        try:
            steps_per_epoch = len(train_loader)  # type: ignore[arg-type]
        except TypeError:
            steps_per_epoch = None
        self.state = TrainState(
            steps_per_epoch=steps_per_epoch, device=self.device, rank=self.dist.rank,
            world_size=self.dist.world_size, extra=dict(self.extra_state), precision=self.precision,
        )
        self.history: list[dict[str, Any]] = []
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.bad_epochs = 0
        self.stopped_early = False
        self._epoch_rng: dict[str, Any] | None = None
        self._epoch_loss = (0.0, 0)  # (sum, count) of the current epoch's losses so far
        self._resume_ck: dict[str, Any] | None = None

    def _restore_layout(self) -> None:
        """Back to the default (NCHW) layout after fit: checkpoints, state dicts, exports and
        inference copies downstream see the tensors they always saw."""
        if self._channels_last:
            to_default_layout(self.raw_model)
            if self.ema is not None:
                to_default_layout(self.ema.module)

    # ---- checkpoint state ------------------------------------------------------------------
    @property
    def is_main(self) -> bool:
        return self.dist.is_main

    def checkpoint_state(self, kind: str) -> dict[str, Any]:
        """Everything needed to continue the run from this point."""
        return {
            "kind": kind,
            "epoch": self.state.epoch,
            "step": self.state.step,
            "step_in_epoch": self.state.step_in_epoch,
            "model": self.raw_model.state_dict(),
            "model_class": type(self.raw_model).__name__,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.precision.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "extra": {k: v.state_dict() for k, v in self.extra_state.items()},
            "rng": capture_rng_state(),
            "epoch_rng": self._epoch_rng,
            "epoch_loss": list(self._epoch_loss),
            "best": self.best,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "history": self.history,
            "train_config": asdict(self.config),
            "config_hash": self.config.config_hash,
            "world_size": self.dist.world_size,
        }

    def save(self, name: str, kind: str) -> Path | None:
        """Write ``checkpoints/<name>`` on rank 0 (no-op without a run directory)."""
        if self.run_dir is None or not self.is_main:
            return None
        return save_checkpoint(self.run_dir.checkpoints / name, self.checkpoint_state(kind))

    def load(self, path: str | Path) -> dict[str, Any]:
        """Restore model, optimiser, scheduler, scaler, EMA, extra state and counters from ``path``."""
        ck = load_checkpoint(path, map_location=self.device)
        src = ck["path"]
        want, have = self.config.config_hash, ck.get("config_hash")
        if want is not None and have is not None and want != have:
            raise CheckpointError(
                f"{src}: checkpoint was written with a different config (hash {have}, this run {want}); "
                f"resume with the run's own config.yaml, or start a new run directory"
            )
        for key in ("model", "optimizer", "epoch", "step"):
            if key not in ck:
                raise CheckpointError(f"{src}: checkpoint has no {key!r} entry; it is not a training checkpoint")
        load_model_state(self.raw_model, ck["model"], source=src)
        load_component(self.optimizer, ck["optimizer"], "optimizer", src)
        if self.scheduler is not None:
            if ck.get("scheduler") is None:
                raise CheckpointError(f"{src}: checkpoint has no scheduler state but this run uses a scheduler")
            load_component(self.scheduler, ck["scheduler"], "scheduler", src)
        self.precision.load_state_dict(ck.get("scaler") or {})
        if self.ema is not None:
            if ck.get("ema") is None:
                raise CheckpointError(f"{src}: checkpoint has no EMA state but this run uses EMA")
            load_component(self.ema, ck["ema"], "EMA", src)
        saved_extra = ck.get("extra") or {}
        missing = sorted(set(self.extra_state) - set(saved_extra))
        if missing:
            raise CheckpointError(f"{src}: checkpoint lacks extra state {missing} (saved: {sorted(saved_extra)})")
        for name, obj in self.extra_state.items():
            load_component(obj, saved_extra[name], f"extra state {name!r}", src)
        self.state.epoch = int(ck["epoch"])
        self.state.step = int(ck["step"])
        self.state.step_in_epoch = int(ck.get("step_in_epoch") or 0)
        self.best = ck.get("best")
        self.best_epoch = ck.get("best_epoch")
        self.bad_epochs = int(ck.get("bad_epochs") or 0)
        self.history = list(ck.get("history") or [])
        el = ck.get("epoch_loss") or (0.0, 0)
        self._epoch_loss = (float(el[0]), int(el[1]))
        return ck

    def _maybe_resume(self) -> None:
        res = self.config.resume
        if not res:
            return
        if isinstance(res, (str, Path)) and not isinstance(res, bool):
            path = Path(res)
        else:
            if self.run_dir is None:
                raise ConfigError("resume=True needs a run directory (run_dir) to find checkpoints/last.pt")
            path = self.run_dir.checkpoints / "last.pt"
            if not path.exists():
                log.info("resume: no checkpoint at %s yet; training from the first epoch", path,
                         extra={"notice": True})
                return
        ck = self.load(path)
        self._resume_ck = ck
        if self.state.step_in_epoch and not ck.get("epoch_rng"):
            raise CheckpointError(f"{path}: mid-epoch checkpoint without epoch_rng; cannot resume exactly")
        if self.run_dir is not None and self.is_main:
            self._truncate_metrics(self.state.step)
        log.info("%s", self._resume_notice(path), extra={"notice": True})  # the CLI prints notices

    def _resume_notice(self, path: Path) -> str:
        """Where a resumed run picks up, in the words of the progress bar (epochs counted from 1)."""
        total, epoch, within = int(self.config.epochs), self.state.epoch, self.state.step_in_epoch
        if epoch >= total:
            return f"resumed after the last epoch ({total} of {total}) from {path}: nothing left to train"
        spe = self.state.steps_per_epoch
        where = (f", step {within} of {spe if spe else '?'} in it" if within else " at its start")
        return f"resumed from epoch {epoch + 1} of {total}{where} (global step {self.state.step}; checkpoint {path})"

    def _truncate_metrics(self, step: int) -> None:
        """Drop metrics logged after the checkpoint (they will be logged again)."""
        assert self.run_dir is not None
        recs = self.run_dir.read_metrics()
        keep = [r for r in recs if int(r.get("step", 0)) <= step and not (
            r.get("kind") == "epoch" and int(r.get("epoch", -1)) >= self.state.epoch)]
        if len(keep) != len(recs):
            self.run_dir.metrics_path.unlink()
            for r in keep:
                self.run_dir.log_metrics(r)

    # ---- loop -------------------------------------------------------------------------------
    def _call(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            fn = getattr(cb, hook, None)
            if fn is not None:
                fn(self, *args)

    def _log(self, record: Mapping[str, Any]) -> None:
        if self.run_dir is not None and self.is_main:
            self.run_dir.log_metrics(record)

    def _lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _set_epoch(self, epoch: int) -> None:
        for obj in (getattr(self.train_loader, "sampler", None), getattr(self.train_loader, "batch_sampler", None),
                    getattr(getattr(self.train_loader, "batch_sampler", None), "sampler", None)):
            if obj is not None and hasattr(obj, "set_epoch"):
                obj.set_epoch(epoch)
        if hasattr(self.train_loader, "set_epoch"):
            self.train_loader.set_epoch(epoch)  # type: ignore[attr-defined]

    def train_step(self, batch: Any) -> dict[str, Any]:
        """One optimiser step on ``batch``; returns the step_fn outputs (loss detached) plus grad_norm."""
        cfg = self.config
        self.model.train()
        batch = to_device(batch, self.device)
        self.optimizer.zero_grad(set_to_none=True)
        with self.precision.autocast():
            out = dict(self.step_fn(batch, self.model, self.state))
        if "loss" not in out or not isinstance(out["loss"], torch.Tensor):
            raise ConfigError("step_fn must return a dict with a tensor under 'loss'")
        loss = out["loss"]
        if not torch.isfinite(loss.detach()).all():
            raise FloatingPointError(
                f"non-finite loss {float(loss.detach().float())} at epoch {self.state.epoch}, step "
                f"{self.state.step}; lower the learning rate, set train.grad_clip, or check the inputs"
            )
        scaler = self.precision.scaler
        scaler.scale(loss).backward()
        if cfg.grad_clip is not None:
            scaler.unscale_(self.optimizer)
            out["grad_norm"] = clip_gradients(self.raw_model, cfg.grad_clip)
        scaler.step(self.optimizer)
        scaler.update()
        if self.scheduler is not None and cfg.scheduler_interval == "step":
            self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.raw_model)
        out["loss"] = loss.detach()
        return out

    def validate(self) -> dict[str, Any] | None:
        """Run ``val_fn`` (rank 0, EMA weights if configured, eval mode, no grad); share the result."""
        if self.val_fn is None:
            return None
        result: dict[str, Any] | None = None
        if self.is_main:
            model = self.raw_model
            was_training = model.training
            model.eval()
            try:
                with torch.no_grad():
                    if self.ema is not None and self.config.eval_with_ema:
                        with self.ema.swapped(model):
                            r = self.val_fn(model, self.state)
                    else:
                        r = self.val_fn(model, self.state)
            finally:
                model.train(was_training)
            if isinstance(r, Mapping):
                result = {k: _scalar(v) for k, v in r.items()}
            else:
                result = {self.config.monitor: _scalar(r)}
            if self.config.monitor not in result:
                raise ConfigError(
                    f"val_fn returned {sorted(result)} but train.monitor is {self.config.monitor!r}"
                )
        return dist_utils.broadcast_object(result)

    def _improved(self, value: float) -> bool:
        if value is None or not math.isfinite(value):
            return False
        if self.best is None:
            return True
        if self.config.monitor_mode == "min":
            return value < self.best - self.config.min_delta
        return value > self.best + self.config.min_delta

    def fit(self) -> list[dict[str, Any]]:
        """Train for ``config.epochs`` epochs (or until early stopping); return the epoch history."""
        from .fastpath import overridden, settings

        bf16 = self.device.type == "cpu" and self.config.amp == "bf16" and settings().bf16 == "off"
        try:
            with overridden(bf16="auto") if bf16 else contextlib.nullcontext():
                return self._fit()
        finally:
            self._restore_layout()

    def _fit(self) -> list[dict[str, Any]]:
        cfg = self.config
        self._maybe_resume()
        if self.history and self.history[-1].get("stopped_early"):
            self.stopped_early = True
            return self.history
        self._call("on_fit_start")
        steps = self.state.steps_per_epoch
        with progress_bar(steps, "train", quiet=cfg.quiet if self.is_main else True) as bar:
            while self.state.epoch < cfg.epochs:
                epoch = self.state.epoch
                resume_ck = self._resume_ck
                self._resume_ck = None
                skip = self.state.step_in_epoch if resume_ck is not None else 0
                if resume_ck is not None and skip:
                    restore_rng_state(resume_ck["epoch_rng"])
                elif resume_ck is not None:
                    restore_rng_state(resume_ck["rng"])
                self._epoch_rng = capture_rng_state()
                self._set_epoch(epoch)
                bar.reset(total=steps, description=f"epoch {epoch + 1}/{cfg.epochs}")
                t0 = time.perf_counter()
                it = iter(self.train_loader)
                for _ in range(skip):
                    try:
                        next(it)
                    except StopIteration:
                        break
                    bar.advance()
                if resume_ck is not None and skip:
                    restore_rng_state(resume_ck["rng"])
                prev_sum, prev_n = self._epoch_loss if skip else (0.0, 0)
                loss_sum = torch.full((), prev_sum, dtype=torch.float64, device=self.device)
                n_steps = prev_n
                self.state.step_in_epoch = skip
                for batch in it:
                    out = self.train_step(batch)
                    self.state.step += 1
                    self.state.step_in_epoch += 1
                    loss_sum += out["loss"].double()
                    n_steps += 1
                    if cfg.log_every and self.state.step % cfg.log_every == 0:
                        rec = {"kind": "step", "epoch": epoch, "step": self.state.step, "lr": self._lr()}
                        rec.update({k: _scalar(v) for k, v in out.items() if _scalar(v) is not None})
                        self._log(rec)
                        bar.advance(loss=rec["loss"])
                    else:
                        bar.advance()
                    self._call("on_step_end", out)
                    if (cfg.checkpoint_every_steps and self.state.step % cfg.checkpoint_every_steps == 0
                            and self.state.step_in_epoch != steps):
                        self._epoch_loss = (float(loss_sum), n_steps)
                        self.save("last.pt", "step")
                        dist_utils.barrier()
                if self.scheduler is not None and cfg.scheduler_interval == "epoch":
                    self.scheduler.step()
                train_loss = float(dist_utils.all_reduce_mean(loss_sum / max(n_steps, 1)))
                record: dict[str, Any] = {
                    "kind": "epoch", "epoch": epoch, "step": self.state.step, "lr": self._lr(),
                    "train_loss": train_loss if n_steps else None, "seconds": time.perf_counter() - t0,
                }
                val = self.validate()
                improved = False
                if val is not None:
                    record.update({k: v for k, v in val.items()})
                    value = val[cfg.monitor]
                    improved = self._improved(value)
                    if improved:
                        self.best, self.best_epoch, self.bad_epochs = float(value), epoch, 0
                    else:
                        self.bad_epochs += 1
                    record["best"] = self.best
                    if cfg.patience is not None and self.bad_epochs >= cfg.patience:
                        self.stopped_early = True
                        record["stopped_early"] = True
                self.history.append(record)
                self._log(record)
                self.state.epoch = epoch + 1
                self.state.step_in_epoch = 0
                self._epoch_rng = None
                self._epoch_loss = (0.0, 0)
                if improved:
                    self.save("best.pt", "best")
                if cfg.keep_epoch_checkpoints:
                    self.save(f"epoch_{epoch + 1:04d}.pt", "epoch")
                self.save("last.pt", "epoch")
                dist_utils.barrier()
                if self.is_main:
                    log.info("epoch %d/%d: %s", epoch + 1, cfg.epochs,
                             " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                      for k, v in record.items() if k not in ("kind",)))
                self._call("on_epoch_end", record)
                if self.stopped_early:
                    break
        if self.val_fn is None and self.run_dir is not None and self.is_main:
            # no model selection: the final model is the best one we know of
            self.save("best.pt", "best")
        self._call("on_fit_end", self.history)
        return self.history


def load_trained_model(model: nn.Module, path: str | Path, use_ema: bool = True) -> nn.Module:
    """Load a trained model's weights from a trainer checkpoint (EMA weights when saved and asked).

    Raises :class:`CheckpointError` (naming the file and listing mismatched keys) when the
    checkpoint does not fit ``model``.
    """
    ck = load_checkpoint(path)
    state = ck.get("model")
    if use_ema and ck.get("ema"):
        state = ck["ema"]["module"]
    if state is None:
        raise CheckpointError(f"{path}: checkpoint holds no model weights")
    load_model_state(model, state, source=ck["path"])
    return model
