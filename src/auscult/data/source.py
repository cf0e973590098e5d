"""Waveforms for clips: the one place methods get audio from.

:class:`AudioSource` binds an :class:`~auscult.audio.AudioConfig` (rate, channel, length policy)
to an optional :class:`~auscult.data.cache.WaveformCache` directory, so every method decodes each
file once and memory-maps it afterwards::

    from auscult.audio import AudioConfig
    from auscult.data.source import AudioSource
    audio = AudioSource(AudioConfig(length="tile", duration=10.0), cache_dir="runs/cache")
    x = audio.load(clip)              # float32 [T]
    xb = audio.batch(clips[:32])      # torch.float32 [32, T]

Clips (``Clip`` records) and plain paths are both accepted. The default channel policy
``"auto"`` is resolved per clip from ``Clip.year`` (:meth:`AudioConfig.for_year`): the near
microphone (channel 0) for DCASE 2026 clips, the mean of the channels otherwise; a plain path
carries no year and reads ``auto`` as ``mean``. With ``channel="both"`` a clip is ``[2, T]``
(near, far) and a batch ``[B, 2, T]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Optional, Sequence, Union

import numpy as np

from ..audio import AudioConfig, apply_length, decode_audio
from ..errors import ConfigError
from .clip import Clip

__all__ = ["AudioSource"]

ClipLike = Union[Clip, str, Path]


def _path_of(clip: ClipLike) -> Path:
    return Path(clip.path) if isinstance(clip, Clip) else Path(clip)


class AudioSource:
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
        if audio_config is None or isinstance(audio_config, dict):
            audio_config = AudioConfig.from_dict(audio_config)
        if not isinstance(audio_config, AudioConfig):
            raise ConfigError(f"AudioSource needs an AudioConfig or a mapping, got {type(audio_config).__name__}")
        self.config: AudioConfig = audio_config
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.memory = bool(memory)
        self._mem: dict[str, np.ndarray] = {}
        self._caches: dict[str, Any] = {}  # one WaveformCache per resolved channel policy
        self._cache = self._cache_for(self.config)

    # ------------------------------------------------------------------ properties
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

    # ------------------------------------------------------------------ loading
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

    def describe(self) -> dict[str, Any]:
        """Plain-dict summary for logs and run directories."""
        return {"audio": self.config.to_dict(), "cache_dir": None if self.cache_dir is None else str(self.cache_dir),
                "memory": self.memory}

    def __repr__(self) -> str:
        return f"AudioSource({self.config!r}, cache_dir={self.cache_dir!r})"
