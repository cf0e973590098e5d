"""What a method is: a recipe bound to code that trains on normal clips and scores clips.

A *method* turns a resolved recipe (a plain dict loaded from ``recipes/<dataset>/<method>.yaml``,
with ``--set key=value`` overrides applied) into a detector. The pipeline
(:mod:`auscult.pipeline`) does everything around it: finds the clips, splits held-out training
normals for model selection, groups clips per ``model_per`` (``all`` | ``machine`` | ``section``),
calls :meth:`Method.fit` once per group, :meth:`Method.score` on that group's test clips, writes
submission files, evaluates and reports. A method never sees test labels.

Contract
--------
* ``fit(train, val, audio)``: ``train`` are the group's training clips (normal by construction;
  2025 ``supplemental`` clips included only if the recipe asks), ``val`` a held-out slice of training
  normals for early stopping / model selection (may be empty). ``audio`` is an
  :class:`AudioSource` that returns decoded, cached, length-normalised waveforms.
* ``score(clips, audio) -> np.ndarray``: one finite float per clip, **higher = more anomalous**.
* ``state_dict()`` / ``load_state_dict()``: everything needed to score again (weights, back-end
  state, normalisation statistics) as tensors / numpy arrays / plain Python — no pickled code.
* ``embed(clips, audio)`` (optional): embeddings used by the back-end, for analysis and reports.
* ``explain(clip, audio)`` (optional): per-frame / time-frequency anomaly maps (monitoring).

Methods register themselves in :data:`METHODS` by name; ``auscult list`` shows them and the
registry tests build and run every entry on a tiny synthetic set.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from ..data.clip import Clip
from ..registry import Registry

METHODS = Registry("method")


@dataclass
class FitContext:
    """Where and how a method trains: device, seed, run directory and a logger callback."""

    run_dir: Optional[Path] = None
    device: str = "cpu"
    seed: int = 0
    group: str = "all"  # e.g. "fan" or "fan/section_00": names checkpoints and logs
    resume: bool = False
    quiet: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class Method(ABC):
    """Base class of every method. Subclasses set ``name`` and implement fit/score/state."""

    name: str = "method"

    def __init__(self, config: dict[str, Any], context: FitContext | None = None):
        self.config = config
        self.context = context or FitContext()

    @abstractmethod
    def fit(self, train: Sequence[Clip], val: Sequence[Clip], audio: "AudioSourceLike") -> "Method":
        """Train on ``train`` (normals only); select/stop on ``val`` (held-out training normals)."""

    @abstractmethod
    def score(self, clips: Sequence[Clip], audio: "AudioSourceLike") -> np.ndarray:
        """One anomaly score per clip; higher = more anomalous."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to score again, as tensors/arrays/plain Python."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""

    def embed(self, clips: Sequence[Clip], audio: "AudioSourceLike") -> np.ndarray:  # pragma: no cover
        raise NotImplementedError(f"method {self.name!r} has no embeddings")


class AudioSourceLike:  # documentation-only protocol (see auscult.data.source.AudioSource)
    """``load(clip) -> np.ndarray`` (float32 mono, length policy applied) and
    ``batch(clips) -> torch.Tensor [B, T]`` (equal lengths), both through the waveform cache."""


# ------------------------------------------------------------------------------------------------
# helpers shared by methods
# ------------------------------------------------------------------------------------------------
def backend_to_state(backend: Any) -> dict[str, Any]:
    """A fitted :mod:`auscult.backends` back-end as plain data (for ``Method.state_dict``)."""
    return {
        "name": backend.name,
        "params": dict(backend.params),
        "dim": backend.dim_,
        "groups": [[list(k), {n: np.asarray(a) for n, a in st.items()}] for k, st in sorted(backend.groups_.items())],
    }


def backend_from_state(state: dict[str, Any]) -> Any:
    """Inverse of :func:`backend_to_state`."""
    from ..backends import BACKENDS

    be = BACKENDS.build(state["name"], **state["params"])
    be.groups_ = {tuple(k): {n: np.asarray(a) for n, a in st.items()} for k, st in state["groups"]}
    be.dim_ = state["dim"]
    return be


def section_of(config: dict[str, Any], key: str) -> dict[str, Any]:
    """``config[key]`` as a dict (``{}`` when absent or null); a non-mapping raises ConfigError."""
    from ..errors import ConfigError

    v = config.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise ConfigError(f"recipe key {key!r} must be a mapping, got {type(v).__name__}")
    return dict(v)
