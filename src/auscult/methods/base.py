"""What a method is: one detector contract for both doors.

A *method* turns a resolved recipe (a plain dict: ``audio``, ``features``, ``data``, ``threshold``,
``backend`` and the method's own sections, see :mod:`auscult.pipeline.recipe`) into a detector.
Two doors drive it the same way:

* the research door (:mod:`auscult.pipeline`, ``auscult run``) finds the clips of a DCASE tree,
  holds out training normals, groups clips per ``model_per`` and calls :meth:`Method.fit` once per
  group, then :meth:`Method.score` on the test clips;
* the engineer's door (:mod:`auscult.monitor`, ``auscult fit``) cuts a folder of recordings into
  windows held by a :class:`~auscult.data.source.WaveformSource` and calls the same ``fit`` /
  ``score``; a bundle stores the method's name, config and :meth:`Method.state_dict`.

Contract
--------
* ``fit(train, val, audio)``: ``train`` are normal training clips, ``val`` held-out training
  normals for early stopping / model selection (may be empty). ``audio`` is any
  :class:`~auscult.data.source.AudioSourceLike` (files or waveforms in memory).
* ``score(clips, audio) -> np.ndarray``: one finite float per clip, **higher = more anomalous**.
* ``state_dict()`` / ``load_state_dict()``: everything needed to score again as plain data only --
  tensors, numpy arrays, JSON values (saved with :mod:`auscult.fileio`; nothing that loads can
  run code).
* declared ``capabilities`` instead of identity checks:

  - ``"embed"``: ``embed(clips, audio) -> [N, D]``, the embeddings the back-end scores;
  - ``"explain"``: ``explain(clip, audio) -> TFMap``, where in time and frequency a clip is anomalous;
  - ``"export"``: ``scoring_graph(clip) -> ScoringGraph``, the exportable ``nn.Module`` that holds the
    method's scoring rule (eval mode: waveform ``[B, T]`` in, the score or the embedding the back-end
    scores out) for clips of ``clip``'s machine and section, so ONNX export never special-cases methods.

Methods register with ``@METHODS.register(name, defaults=..., description=...)`` (timm style): the
defaults are the method's own recipe sections, so a recipe is validated against them without building
the method, and ``auscult list`` shows every method with a one-line description.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from ..data.clip import Clip
from ..data.source import AudioSourceLike
from ..errors import CapabilityError, ConfigError
from ..registry import Entry, Registry, merge_section

__all__ = ["METHODS", "MethodRegistry", "Method", "FitContext", "AudioSourceLike", "TFMap", "ScoringGraph",
           "CAPABILITIES", "backend_to_state", "backend_from_state", "section_of", "merge_section"]

#: the capabilities a method may declare
CAPABILITIES: tuple[str, ...] = ("embed", "explain", "export")


class MethodRegistry(Registry):
    """The method registry: ``defaults`` are a method's own recipe sections (timm style).

    ``defaults={"model": {...}, "train": None}``: a mapping is the section's defaults (a recipe's
    keys are checked against it), ``None`` a section the method validates itself.

    The method modules (which import torch) are imported the first time the registry is asked for
    an entry (:meth:`set_loader`), so importing :mod:`auscult.methods` -- and the CLI modules that
    live beside the methods -- stays light.
    """

    def __init__(self, kind: str):
        super().__init__(kind)
        self._loader: Optional[Callable[[], None]] = None
        self._loading = False

    def set_loader(self, loader: Callable[[], None]) -> None:
        """``loader()`` imports the modules that register entries; run once, on first lookup."""
        self._loader = loader

    def _ensure_loaded(self) -> None:
        if self._loader is not None and not self._loading:
            loader, self._loading = self._loader, True
            try:
                loader()
                self._loader = None
            finally:
                self._loading = False

    def get(self, name: str) -> Entry:
        self._ensure_loaded()
        return super().get(name)

    def names(self) -> list[str]:
        self._ensure_loaded()
        return super().names()

    def __contains__(self, name: object) -> bool:
        self._ensure_loaded()
        return super().__contains__(name)

    def __len__(self) -> int:
        self._ensure_loaded()
        return super().__len__()

    def build(self, name: str, /, config: Optional[Mapping[str, Any]] = None, context: "FitContext | None" = None,
              **kwargs: Any) -> "Method":
        entry = self.get(name)
        return entry.factory(config=dict(config or {}), context=context, **kwargs)

    def defaults(self, name: str) -> dict[str, Any]:
        """A copy of the method's default sections."""
        return copy.deepcopy(dict(self.get(name).defaults))

    def sections(self, name: str) -> tuple[str, ...]:
        """The recipe sections the method owns (besides the common top-level ones)."""
        return tuple(sorted(self.get(name).defaults))

    def check_sections(self, name: str, config: Mapping[str, Any], where: str = "") -> None:
        """Check the method's own sections of ``config`` against its defaults (keys, mappings),
        without building the method; raises :class:`ConfigError` naming the key."""
        entry: Entry = self.get(name)
        open_keys = getattr(entry.factory, "open_keys", {})
        for sec, default in entry.defaults.items():
            given = config.get(sec)
            if given is not None and not isinstance(given, Mapping):
                raise ConfigError(f"{where}{sec} must be a mapping, got {given!r}")
            if isinstance(default, Mapping):
                try:
                    merge_section(default, given, sec, open_keys.get(sec, ()))
                except ConfigError as exc:
                    raise ConfigError(f"{where}{exc}") from None


METHODS = MethodRegistry("method")


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


@dataclass
class TFMap:
    """A method's explanation of one clip, before the monitor calibrates it.

    Attributes:
        times: ``[F]`` frame centres, seconds.
        frame_scores: ``[F]`` per-frame anomaly.
        freqs: ``[K]`` band centre frequencies, Hz.
        tf_map: ``[K, F]`` anomaly per band and frame.
        spectrogram: ``[K, F]`` the clip's log-mel (dB), to draw under the map.
        score: the clip score (what ``score`` gives for this clip).
        how: one line on how the map is computed.
    """

    times: np.ndarray
    frame_scores: np.ndarray
    freqs: np.ndarray
    tf_map: np.ndarray
    spectrogram: np.ndarray
    score: float
    how: str = ""


@dataclass
class ScoringGraph:
    """A method's scoring rule as one exportable module, for clips of one machine and section.

    Attributes:
        module: ``nn.Module`` in eval mode: waveform ``[B, T]`` (float32, mono, at ``sample_rate``)
            -> ``[B]`` scores (``output="score"``) or ``[B, D]`` embeddings (``output="embedding"``).
        output: ``"score"`` or ``"embedding"``.
        backends: for ``"embedding"``: ``[{"state": backend_to_state(...), "columns": [a, b]}]``;
            the score is the mean over entries of the back-end's score of ``embedding[:, a:b]``.
        n_samples: the clip length the module is built for (``None``: any length).
        sample_rate: the waveform's sample rate.
        meta: the clip metadata the back-ends group by (``machine``, ``section``, ``domain``).
    """

    module: Any
    output: str
    sample_rate: int
    backends: list[dict[str, Any]] = field(default_factory=list)
    n_samples: Optional[int] = None
    meta: dict[str, Any] = field(default_factory=dict)


class Method(ABC):
    """Base class of every method (see the module docstring for the contract).

    Class attributes a method sets:
        name: the registry name.
        capabilities: the subset of :data:`CAPABILITIES` it implements.
        fixed_length: it is built for one clip length (its recipe's ``audio.length`` must be
            ``crop`` or ``tile``; the monitor tiles/crops windows to it).
        classes: what it learns to tell apart (``None``: nothing; ``"section"``: the machines /
            sections of its training clips; ``"attribute"``: their attribute classes).
        one_class: what it does when its training clips form a single class: ``None`` (nothing
            special), ``"refuse"`` (a :class:`~auscult.errors.DataError` naming alternatives), or a
            sentence saying what it does instead (reported by ``auscult fit``).
    """

    name: str = "method"
    capabilities: frozenset[str] = frozenset()
    fixed_length: bool = False
    classes: Optional[str] = None
    one_class: Optional[str] = None
    #: sections whose sub-sections take extra keys the method validates itself (see merge_section)
    open_keys: dict[str, tuple[str, ...]] = {}
    #: the recipe sections ``auscult fit`` starts from: settings sized for a CPU and a folder of
    #: recordings (the research door's recipes hold the papers' settings)
    fit_defaults: dict[str, Any] = {}

    @classmethod
    def fit_preset(cls, n_windows: int, window_samples: int, knn_k: int = 2,
                   features: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
        """The sections ``auscult fit`` builds this method with for ``n_windows`` training windows of
        ``window_samples`` samples (default: a copy of :attr:`fit_defaults`)."""
        return copy.deepcopy(dict(cls.fit_defaults))

    def __init__(self, config: dict[str, Any], context: FitContext | None = None):
        self.config = config
        self.context = context or FitContext()

    # ---- the contract ------------------------------------------------------------------------
    @abstractmethod
    def fit(self, train: Sequence[Clip], val: Sequence[Clip], audio: AudioSourceLike) -> "Method":
        """Train on ``train`` (normals only); select/stop on ``val`` (held-out training normals)."""

    @abstractmethod
    def score(self, clips: Sequence[Clip], audio: AudioSourceLike) -> np.ndarray:
        """One anomaly score per clip; higher = more anomalous."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to score again, as tensors/arrays/plain Python."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""

    # ---- capabilities --------------------------------------------------------------------------
    def supports(self, capability: str) -> bool:
        """Whether the method declares ``capability`` (one of :data:`CAPABILITIES`)."""
        if capability not in CAPABILITIES:
            raise ConfigError(f"unknown capability {capability!r}; known: {CAPABILITIES}")
        return capability in self.capabilities

    def unsupported(self, capability: str, what: str) -> CapabilityError:
        """The :class:`CapabilityError` for asking this method to ``what`` (naming the methods that can)."""
        have = ", ".join(sorted(self.capabilities)) or "none"
        return CapabilityError(f"method {self.name!r} does not {what} (its capabilities: {have}); methods that do: "
                               f"{', '.join(methods_with(capability)) or 'none'}")

    def embed(self, clips: Sequence[Clip], audio: AudioSourceLike) -> np.ndarray:
        """Embeddings ``[N, D]`` (capability ``embed``)."""
        raise self.unsupported("embed", "produce embeddings")

    def explain(self, clip: Clip, audio: AudioSourceLike) -> TFMap:
        """Where in time and frequency ``clip`` is anomalous (capability ``explain``)."""
        raise self.unsupported("explain", "explain its scores")

    def scoring_graph(self, clip: Clip) -> ScoringGraph:
        """The exportable scoring module for clips like ``clip`` (capability ``export``)."""
        raise self.unsupported("export", "export to ONNX")

    # ---- what the doors need to know ------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        """The sample rate the method's clips are at (the recipe's ``audio.sample_rate``)."""
        return int(section_of(self.config, "audio").get("sample_rate", 16000))

    @property
    def audio_config(self) -> dict[str, Any]:
        """The recipe's ``audio`` section (what a source must apply for this method)."""
        return section_of(self.config, "audio")

    @property
    def feature_config(self) -> Any:
        """The :class:`~auscult.features.FeatureConfig` of the method's front-end (``features:``
        without the method's own keys such as ``frontend`` / ``normalize``)."""
        from ..features import FeatureConfig

        feats = {k: v for k, v in section_of(self.config, "features").items() if k not in ("frontend", "normalize")}
        feats.setdefault("sample_rate", self.sample_rate)
        return FeatureConfig.from_dict(feats)

    @property
    def min_samples(self) -> int:
        """The shortest waveform the method can score (one STFT hop by default; a fixed-length
        method tiles shorter clips to its length)."""
        return int(self.feature_config.hop_length)

    def describe(self) -> str:
        """One line for reports (``auscult fit``, bundles)."""
        return f"{self.name} ({METHODS.get(self.name).description})" if self.name in METHODS else self.name


def methods_with(capability: str) -> list[str]:
    """Registered methods that declare ``capability``."""
    return [e.name for e in METHODS.entries() if capability in getattr(e.factory, "capabilities", ())]


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


def section_of(config: Mapping[str, Any], key: str) -> dict[str, Any]:
    """``config[key]`` as a dict (``{}`` when absent or null); a non-mapping raises ConfigError."""
    v = config.get(key)
    if v is None:
        return {}
    if not isinstance(v, Mapping):
        raise ConfigError(f"recipe key {key!r} must be a mapping, got {type(v).__name__}")
    return dict(v)


def register(name: str, *, defaults: Optional[Mapping[str, Any]] = None, description: str = "",
             tags: tuple[str, ...] = ()) -> Callable[[type], type]:
    """``METHODS.register`` (kept here so method modules read ``@register(...)``)."""
    return METHODS.register(name, defaults=dict(defaults or {}), description=description, tags=tags)
