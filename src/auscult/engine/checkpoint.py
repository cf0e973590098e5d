"""Checkpoints: written atomically, read back with errors a user can act on.

A checkpoint is one ``torch.save`` file holding a dict of tensors and plain values only::

    {"format": "auscult-checkpoint", "format_version": 2, "auscult_version": ..., "torch_version": ...,
     "model": ..., "optimizer": ..., "scheduler": ..., "scaler": ..., "ema": ...,
     "extra": {name: obj.state_dict() ...},       # memory banks, MoCo queues, ...
     "rng": {"python", "numpy", "torch", "cuda"}, "epoch": ..., "step": ..., "config_hash": ..., ...}

It is read with ``torch.load(weights_only=True)``: no pickled object (and so no code) can come back
from a checkpoint file. The RNG states are stored as tensors and lists (:func:`capture_rng_state`),
numpy arrays are turned into tensors and paths into strings when saving. A file written by an
earlier auscult (format 1: pickled numpy RNG state) is refused with a :class:`CheckpointError`
that says to start that training stage again.

:func:`save_checkpoint` writes to a temporary file in the same folder, flushes it to disk and
renames it over the target, so a run killed mid-write leaves the previous checkpoint intact.
:func:`load_checkpoint` turns every failure (missing, truncated, corrupt, not a checkpoint, newer
format) into a :class:`~auscult.errors.CheckpointError` that names the file and says what to do.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import random
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..errors import CheckpointError
from ..fileio import atomic_write

FORMAT = "auscult-checkpoint"
FORMAT_VERSION = 2


def config_hash(config: Any) -> str:
    """A short stable hash of a (JSON-able) config, to tell whether a checkpoint fits a run."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def capture_rng_state() -> dict[str, Any]:
    """The states of python's ``random``, numpy's global RNG, torch CPU and (if present) CUDA, as
    tensors and plain values (what ``torch.load(weights_only=True)`` reads back)."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [int(version), torch.as_tensor(np.asarray(internal, dtype=np.int64)), gauss],
        "numpy": {"name": str(name), "keys": torch.as_tensor(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`capture_rng_state` captured (CUDA only when devices match)."""
    if "python" in state:
        random.setstate(_as_python_state(state["python"]))
    if "numpy" in state:
        ns = state["numpy"]
        if isinstance(ns, Mapping):
            keys = np.asarray(ns["keys"].cpu().numpy() if hasattr(ns["keys"], "cpu") else ns["keys"], dtype=np.uint32)
            np.random.set_state((ns["name"], keys, int(ns["pos"]), int(ns["has_gauss"]), float(ns["cached_gaussian"])))
        else:
            np.random.set_state(ns)
    if "torch" in state:
        torch.set_rng_state(torch.as_tensor(state["torch"], dtype=torch.uint8).cpu())
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([torch.as_tensor(s, dtype=torch.uint8).cpu() for s in cuda])


def _as_python_state(s: Any) -> tuple:
    # python's random state is (version, tuple_of_ints, gauss); lists may come back from storage
    version, internal, gauss = s
    if hasattr(internal, "tolist"):
        internal = internal.tolist()
    return (int(version), tuple(int(v) for v in internal), gauss)


def _plain(obj: Any) -> Any:
    """``obj`` with numpy arrays as tensors, numpy scalars as Python numbers and paths as strings,
    so that ``torch.load(weights_only=True)`` reads it back (other types are left as they are)."""
    if isinstance(obj, torch.Tensor) or obj is None or type(obj) in (bool, int, float, str):
        return obj
    if isinstance(obj, str):  # e.g. torch.__version__ (a TorchVersion)
        return str(obj)
    if isinstance(obj, int):  # an int subclass (bool cannot be subclassed)
        return int(obj)
    if isinstance(obj, float):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.array(obj))
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, dict):
        if type(obj) is dict:
            return {k: _plain(v) for k, v in obj.items()}
        out = type(obj)((k, _plain(v)) for k, v in obj.items())  # e.g. a state_dict's OrderedDict
        if hasattr(obj, "_metadata"):
            out._metadata = obj._metadata  # type: ignore[attr-defined]
        return out
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_plain(v) for v in obj)
    return obj


def save_checkpoint(path: str | Path, state: Mapping[str, Any]) -> Path:
    """Write ``state`` (plus format and version fields) to ``path`` atomically; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "auscult_version": __version__,
        "torch_version": str(torch.__version__),
        **_plain(dict(state)),
    }
    atomic_write(path, lambda f: torch.save(payload, f), sync_dir=True)
    return path


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; raise :class:`CheckpointError` on any problem."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found (check the run directory, or start without --resume)")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file (point to a .pt file inside it)")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: checkpoint is empty (the write was interrupted; delete it and resume from an earlier checkpoint)")
    try:
        # weights_only=True: tensors and plain values only; a pickled object (code) is refused
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only" not in str(e).lower():
            raise CheckpointError(f"{path}: cannot read checkpoint, the file is truncated or corrupt "
                                  f"(UnpicklingError: {str(e).splitlines()[0][:200]}); delete it and resume from an "
                                  f"earlier checkpoint, or retrain") from None
        raise CheckpointError(
            f"{path}: the checkpoint holds pickled objects, which auscult never loads (a pickle can run code); "
            f"it was not written by this auscult (an older auscult stored numpy RNG states that way) or was "
            f"tampered with. Delete it and start this training stage again (or resume from a checkpoint written "
            f"by this version)"
        ) from None
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError,
            OSError, AttributeError, ImportError, IndexError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise CheckpointError(
            f"{path}: cannot read checkpoint, the file is truncated or corrupt ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:200] if str(e) else 'no detail'}); delete it and resume from an "
            f"earlier checkpoint, or retrain"
        ) from e
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: not an auscult checkpoint (no '{FORMAT}' marker); it may be a bare state_dict or "
            f"another tool's file - load it with torch.load yourself"
        )
    version = obj.get("format_version")
    if version == 1:
        raise CheckpointError(f"{path}: checkpoint format 1 (an earlier auscult); delete it and start this training "
                              f"stage again")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version!r} is newer than this auscult supports "
            f"({FORMAT_VERSION}); upgrade auscult (written by auscult {obj.get('auscult_version')})"
        )
    obj["path"] = str(path)
    return obj


def load_model_state(model: nn.Module, state: Mapping[str, torch.Tensor], source: str | Path = "checkpoint",
                     strict: bool = True) -> None:
    """Load a state dict into ``model``, or raise :class:`CheckpointError` listing mismatched keys.

    Reports missing keys, unexpected keys and shape mismatches (all of them, not just the first),
    naming ``source`` (the checkpoint file).
    """
    target = model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) else model
    own = target.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(own[k].shape)
    )
    problems = []
    if strict and missing:
        problems.append(f"missing in checkpoint: {_short(missing)}")
    if strict and unexpected:
        problems.append(f"unexpected in checkpoint: {_short(unexpected)}")
    if shapes:
        problems.append(f"shape mismatch: {_short(shapes)}")
    if problems:
        raise CheckpointError(
            f"{source}: checkpoint does not fit this model ({type(target).__name__}); "
            + "; ".join(problems)
            + ". It was written for a different architecture or config: use the same recipe/config, or start a new run"
        )
    try:
        target.load_state_dict(dict(state), strict=strict)
    except RuntimeError as e:  # pragma: no cover - caught above in practice
        raise CheckpointError(f"{source}: checkpoint does not fit this model: {e}") from e


def _short(items: list[str], n: int = 10) -> str:
    more = f" ... (+{len(items) - n} more)" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def load_component(obj: Any, state: Any, what: str, source: str | Path) -> None:
    """``obj.load_state_dict(state)`` with failures turned into :class:`CheckpointError`."""
    try:
        obj.load_state_dict(state)
    except CheckpointError:
        raise
    except (KeyError, ValueError, RuntimeError, TypeError, IndexError) as e:
        raise CheckpointError(
            f"{source}: the saved {what} state does not fit ({type(e).__name__}: {str(e)[:200]}); "
            f"the run's config changed since the checkpoint was written - use the same config, or start a new run"
        ) from e


def checkpoint_summary(path: str | Path) -> dict[str, Any]:
    """Small dict describing a checkpoint (epoch, step, versions, best metric) without the tensors."""
    ck = load_checkpoint(path)
    return {k: ck.get(k) for k in ("path", "epoch", "step", "auscult_version", "torch_version",
                                   "config_hash", "best", "kind")}


__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "capture_rng_state",
    "checkpoint_summary",
    "config_hash",
    "load_checkpoint",
    "load_component",
    "load_model_state",
    "restore_rng_state",
    "save_checkpoint",
]

