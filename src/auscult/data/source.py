"""Waveforms for clips: the one place methods get audio from.

A method reads audio only through the :class:`AudioSourceLike` protocol (``load``, ``load_many``,
``batch``, ``iter_batches``, ``sample_rate``, ``n_samples``). Two sources implement it:

* :class:`AudioSource` -- files: binds an :class:`~auscult.audio.AudioConfig` (rate, channel, length
  policy) to an optional :class:`~auscult.data.cache.WaveformCache` directory, so every method decodes
  each file once and memory-maps it afterwards (the research door: ``auscult run``);
* :class:`WaveformSource` -- waveforms already in memory (the engineer's door: ``auscult fit``,
  ``score``, ``watch``, ``serve`` cut recordings, uploads and streams into windows). Each waveform
  gets a real :class:`~auscult.data.clip.Clip` record (machine, section, split, label) whose path is
  a ``memory://`` name, so a method cannot tell it from a file::

    from auscult.audio import AudioConfig
    from auscult.data.source import AudioSource, WaveformSource
    audio = AudioSource(AudioConfig(length="tile", duration=10.0), cache_dir="runs/cache")
    x = audio.load(clip)              # float32 [T]
    xb = audio.batch(clips[:32])      # torch.float32 [32, T]

    mem = WaveformSource(AudioConfig(sample_rate=16000))
    clips = mem.add_many(windows, machine="press-7", split="train", label="normal")
    method.fit(clips, [], mem)

Both apply the same length policy (``keep`` / ``crop`` / ``tile``) after getting the waveform.

Clips (``Clip`` records) and plain paths are both accepted. The default channel policy
``"auto"`` is resolved per clip from ``Clip.year`` (:meth:`AudioConfig.for_year`): the near
microphone (channel 0) for DCASE 2026 clips, the mean of the channels otherwise; a plain path
carries no year and reads ``auto`` as ``mean``. With ``channel="both"`` a clip is ``[2, T]``
(near, far) and a batch ``[B, 2, T]``.
"""

from __future__ import annotations

import itertools
import uuid
from pathlib import Path
from typing import Any, Iterator, Optional, Protocol, Sequence, Union, runtime_checkable

import numpy as np

from ..audio import AudioConfig, apply_length, decode_audio
from ..errors import ConfigError, DataError
from .clip import Clip

__all__ = ["AudioSourceLike", "AudioSource", "WaveformSource", "MEMORY_SCHEME"]

ClipLike = Union[Clip, str, Path]

#: prefix of the paths of in-memory clips
MEMORY_SCHEME = "memory:"


@runtime_checkable
class AudioSourceLike(Protocol):
    """What a method may ask of its audio (every method's ``fit``/``score`` gets one of these).

    ``load(clip)`` is one float32 waveform ``[T]`` (``[2, T]`` with ``channel="both"``) with the
    length policy applied; ``batch(clips)`` a ``torch.float32 [B, T]`` (``[B, 2, T]``) tensor of
    equal-length clips; ``iter_batches`` yields
    ``(slice, batch)`` in order. ``n_samples`` is the fixed clip length (``None`` with
    ``length="keep"``).
    """

    @property
    def sample_rate(self) -> int: ...

    @property
    def n_samples(self) -> Optional[int]: ...

    def load(self, clip: Any, rng: Optional[np.random.Generator] = None) -> np.ndarray: ...

    def load_many(self, clips: Sequence[Any], rng: Optional[np.random.Generator] = None) -> list[np.ndarray]: ...

    def batch(self, clips: Sequence[Any], rng: Optional[np.random.Generator] = None) -> Any: ...

    def iter_batches(self, clips: Sequence[Any], batch_size: int,
                     rng: Optional[np.random.Generator] = None) -> Iterator[tuple[slice, Any]]: ...


def _path_of(clip: ClipLike) -> Path:
    return Path(clip.path) if isinstance(clip, Clip) else Path(clip)


def _audio_config(audio_config: Union[AudioConfig, dict, None], who: str) -> AudioConfig:
    if audio_config is None or isinstance(audio_config, dict):
        audio_config = AudioConfig.from_dict(audio_config)
    if not isinstance(audio_config, AudioConfig):
        raise ConfigError(f"{who} needs an AudioConfig or a mapping, got {type(audio_config).__name__}")
    return audio_config


class _Source:
    """The protocol's batching methods over a ``decoded(clip)`` (before the length policy)."""

    config: AudioConfig

    def decoded(self, clip: ClipLike) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def sample_rate(self) -> int:
        return int(self.config.sample_rate)

    @property
    def n_samples(self) -> Optional[int]:
        """Fixed output length in samples (``crop``/``tile``), ``None`` for ``keep``."""
        return self.config.n_samples

    @property
    def n_channels(self) -> int:
        """Channels per loaded clip: 2 with ``channel="both"`` (``[2, T]``), else 1 (``[T]``)."""
        return self.config.n_channels

    def load(self, clip: ClipLike, rng: Optional[np.random.Generator] = None) -> np.ndarray:
        """One clip as float32 ``[T]`` (``[2, T]`` with ``channel="both"``) with the length
        policy applied (a fresh writable array).

        Raises the typed :class:`~auscult.errors.AudioError` subclasses naming the file.
        """
        return apply_length(self.decoded(clip), self.config, rng=rng, path=_path_of(clip))

    def load_many(self, clips: Sequence[ClipLike], rng: Optional[np.random.Generator] = None) -> list[np.ndarray]:
        """:meth:`load` for each clip (lengths may differ with ``length="keep"``)."""
        return [self.load(c, rng=rng) for c in clips]

    def batch(self, clips: Sequence[ClipLike], rng: Optional[np.random.Generator] = None):
        """A ``torch.float32`` tensor ``[B, T]`` (``[B, 2, T]`` with ``channel="both"``); every
        clip must come out with the same length.

        Raises:
            ConfigError: lengths differ (``length="keep"`` on clips of different durations) —
                set ``audio.length: tile`` (or ``crop``) with a ``duration``.
        """
        import torch

        if len(clips) == 0:
            n = self.n_samples or 0
            shape = (0, n) if self.n_channels == 1 else (0, self.n_channels, n)
            return torch.zeros(shape, dtype=torch.float32)
        xs = self.load_many(clips, rng=rng)
        n0 = xs[0].shape[-1]
        for c, x in zip(clips, xs):
            if x.shape[-1] != n0:
                raise ConfigError(
                    f"{_path_of(c)}: {x.shape[-1]} samples but {_path_of(clips[0])} has {n0}; clips of "
                    f"different lengths cannot be batched with audio.length='{self.config.length}' — "
                    f"set audio.length: tile (or crop) and audio.duration (seconds)")
        return torch.from_numpy(np.stack(xs, axis=0))

    def iter_batches(self, clips: Sequence[ClipLike], batch_size: int,
                     rng: Optional[np.random.Generator] = None) -> Iterator[tuple[slice, Any]]:
        """Yield ``(slice, tensor [b, T] or [b, 2, T])`` over ``clips`` in order, ``batch_size`` at a time."""
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        for i in range(0, len(clips), batch_size):
            sl = slice(i, min(i + batch_size, len(clips)))
            yield sl, self.batch(clips[sl], rng=rng)


class AudioSource(_Source):
    """Decoded, cached, length-normalised waveforms for clips.

    Args:
        audio_config: an :class:`AudioConfig` or a mapping (YAML ``audio:`` section); default
            16 kHz mono, ``length="keep"``.
        cache_dir: where the waveform cache lives; ``None`` decodes every time (no disk writes).
        memory: also keep decoded waveforms in RAM (dict keyed by path) — for small training sets
            iterated for many epochs.

    A random crop offset (``length="crop"``, ``offset="random"``) is drawn from the ``rng`` passed
    to :meth:`load` / :meth:`batch`, else from ``audio_config.seed`` (same offset per file).
    """

    def __init__(self, audio_config: Union[AudioConfig, dict, None] = None,
                 cache_dir: Union[str, Path, None] = None, memory: bool = False):
        self.config: AudioConfig = _audio_config(audio_config, "AudioSource")
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.memory = bool(memory)
        self._mem: dict[str, np.ndarray] = {}
        self._caches: dict[str, Any] = {}  # one WaveformCache per resolved channel policy
        self._cache = self._cache_for(self.config)

    @property
    def cache(self):
        """The underlying :class:`WaveformCache` (``None`` without ``cache_dir``)."""
        return self._cache

    def config_for(self, clip: ClipLike) -> AudioConfig:
        """The config a clip is decoded with: ``channel="auto"`` resolved from ``Clip.year``
        (``near`` for DCASE 2026, ``mean`` otherwise; a plain path reads ``auto`` as ``mean``)."""
        if self.config.channel != "auto":
            return self.config
        return self.config.for_year(clip.year if isinstance(clip, Clip) else None)

    def _cache_for(self, cfg: AudioConfig):
        if self.cache_dir is None:
            return None
        key = str(cfg.decode_channel)
        if key not in self._caches:
            from .cache import WaveformCache

            self._caches[key] = WaveformCache(self.cache_dir, cfg)
        return self._caches[key]

    def decoded(self, clip: ClipLike) -> np.ndarray:
        """The decoded waveform before the length policy (read-only view when cached)."""
        path = _path_of(clip)
        cfg = self.config_for(clip)
        key = f"{cfg.decode_channel}|{path}"
        if self.memory and key in self._mem:
            return self._mem[key]
        cache = self._cache_for(cfg)
        x = cache.decoded(path) if cache is not None else decode_audio(path, cfg)
        if self.memory:
            x = np.array(x, dtype=np.float32)
            self._mem[key] = x
        return x

    def describe(self) -> dict[str, Any]:
        """Plain-dict summary for logs and run directories."""
        return {"audio": self.config.to_dict(), "cache_dir": None if self.cache_dir is None else str(self.cache_dir),
                "memory": self.memory}

    def __repr__(self) -> str:
        return f"AudioSource({self.config!r}, cache_dir={self.cache_dir!r})"


_SOURCE_IDS = itertools.count()


class WaveformSource(_Source):
    """Waveforms already in memory, each described by a real :class:`Clip` record.

    Args:
        audio_config: an :class:`AudioConfig` or mapping: the waveforms' sample rate and the length
            policy applied when a method loads them (``keep`` by default).

    :meth:`add` takes a mono float32 waveform ``[T]`` (``[2, T]`` near/far when the config's
    channel policy is ``"both"``) *at* ``audio_config.sample_rate`` (resample before:
    a source holds audio, it does not decode) and returns its clip; ``machine``, ``section``,
    ``split``, ``label`` and ``domain`` are the clip's metadata (what class-conditioned methods
    use). Paths are ``memory:/<source>/<n>/<name>`` with a random source id: unique across sources and
    processes (a method that remembers its training clips' paths, e.g. to score them leave-one-out,
    never mistakes a new clip for one of them), never on disk.
    """

    def __init__(self, audio_config: Union[AudioConfig, dict, None] = None):
        self.config: AudioConfig = _audio_config(audio_config, "WaveformSource")
        self._id = f"{next(_SOURCE_IDS)}-{uuid.uuid4().hex[:12]}"
        self._waves: dict[str, np.ndarray] = {}

    def add(self, wave: np.ndarray, machine: str = "machine", *, section: str = "00", split: str = "test",
            label: Optional[str] = None, domain: Optional[str] = None, name: Optional[str] = None,
            attributes_raw: str = "") -> Clip:
        """Hold ``wave`` and return the clip that names it."""
        x = np.asarray(wave)
        want = 1 if self.n_channels == 1 else 2
        if x.ndim != want or (want == 2 and x.shape[0] != self.n_channels):
            raise DataError(f"WaveformSource: expected a " + ("mono 1-D waveform" if want == 1 else
                            f"[{self.n_channels}, T] waveform (channel policy 'both')") + f", got shape {x.shape}")
        if x.size == 0:
            from ..errors import EmptyAudioError

            raise EmptyAudioError(None, f"{name or 'waveform'}: zero samples", "pass a non-empty waveform")
        n = len(self._waves)
        path = Path(f"{MEMORY_SCHEME}/{self._id}/{n}/{name or f'clip_{n:06d}'}")
        self._waves[str(path)] = np.ascontiguousarray(x, dtype=np.float32)
        return Clip(path=path, machine=str(machine), section=str(section), domain=domain, split=split, label=label,
                    index=n, attributes_raw=attributes_raw, layout="memory")

    def add_many(self, waves: Sequence[np.ndarray], machine: str = "machine", **meta: Any) -> list[Clip]:
        """:meth:`add` for each waveform (same metadata)."""
        return [self.add(w, machine, **meta) for w in waves]

    def decoded(self, clip: ClipLike) -> np.ndarray:
        key = str(_path_of(clip))
        try:
            return self._waves[key]
        except KeyError:
            raise DataError(f"{key}: not a waveform of this source (in-memory clips are only readable from "
                            f"the WaveformSource that made them)") from None

    def __len__(self) -> int:
        return len(self._waves)

    def __repr__(self) -> str:
        return f"WaveformSource({len(self._waves)} waveforms, {self.config!r})"
