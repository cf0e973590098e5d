"""Reading audio: decode, mix channels, resample, crop or tile. Typed errors name the file.

Typical use::

    from auscult.audio import AudioConfig, load_audio
    cfg = AudioConfig(sample_rate=16000, channel="mean", length="tile", duration=10.0)
    x = load_audio("fan/train/section_00_source_train_normal_0000_m-n_W.wav", cfg)  # float32 [T]

``load_audio`` = :func:`decode_audio` (file -> mono float32 at ``sample_rate``: the part a
cache can keep) followed by :func:`apply_length` (the length policy, cheap and possibly random).
:class:`~auscult.data.cache.WaveformCache` caches the decoded part (this module does not import it:
the cache builds on this module, never the other way round).

What is checked, and what is raised (all subclasses of :class:`~auscult.errors.AudioError`,
each naming the file):

* missing file -> ``AudioFileNotFoundError``;
* unreadable, corrupt, not audio, or a WAV whose header promises more audio than the file
  holds (truncated; libsndfile would silently return the shorter part) -> ``AudioDecodeError``;
* zero samples -> ``EmptyAudioError``; NaN/Inf samples -> ``NonFiniteAudioError``;
* a sample rate other than ``sample_rate`` with ``resample=False`` -> ``SampleRateError``;
* a channel index beyond the file's channels -> ``ConfigError``.

Warnings: :class:`ResampleWarning` when a file is resampled (polyphase, ``scipy.signal.
resample_poly``), :class:`SilentAudioWarning` when every sample is zero.
"""

from __future__ import annotations

import math
import struct
import warnings
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from .errors import (
    AudioDecodeError,
    AudioFileNotFoundError,
    ConfigError,
    EmptyAudioError,
    NonFiniteAudioError,
    SampleRateError,
)

__all__ = [
    "AudioConfig",
    "ResampleWarning",
    "SilentAudioWarning",
    "decode_audio",
    "apply_length",
    "load_audio",
    "audio_info",
    "WaveformCache",
]

LENGTH_POLICIES = ("keep", "crop", "tile")
OFFSET_POLICIES = ("start", "center", "random")


class ResampleWarning(UserWarning):
    """A file was resampled to the configured rate (costly: consider resampling once, on disk)."""


class SilentAudioWarning(UserWarning):
    """Every sample of a clip is zero."""


@dataclass(frozen=True)
class AudioConfig:
    """How to turn a file into a 1-D float32 waveform.

    Attributes:
        sample_rate: target rate in Hz; other rates are resampled (polyphase) with a warning.
        channel: ``"mean"`` averages all channels; an int picks that channel (0-based).
        length: ``"keep"`` returns the clip as long as it is; ``"crop"`` returns exactly
            ``duration`` seconds (longer clips cropped, shorter ones zero-padded at the end);
            ``"tile"`` returns exactly ``duration`` seconds (longer clips cropped, shorter ones
            repeated end to end).
        duration: seconds, required by ``crop`` and ``tile`` (forbidden with ``keep``).
        resample: when False, a file at another rate raises ``SampleRateError``.
        offset: where a crop starts: ``"start"``, ``"center"`` or ``"random"``.
        seed: seed of the random crop offset when no ``rng`` is passed to the loader.
    """

    sample_rate: int = 16000
    channel: Union[str, int] = "mean"
    length: str = "keep"
    duration: Optional[float] = None
    resample: bool = True
    offset: str = "start"
    seed: Optional[int] = None

    def __post_init__(self) -> None:
        if isinstance(self.sample_rate, bool) or not isinstance(self.sample_rate, (int, np.integer)) \
                or self.sample_rate <= 0:
            raise ConfigError(f"AudioConfig.sample_rate must be a positive integer (Hz), got {self.sample_rate!r}")
        if isinstance(self.channel, bool) or not (
                self.channel == "mean" or (isinstance(self.channel, (int, np.integer)) and self.channel >= 0)):
            raise ConfigError(f"AudioConfig.channel must be 'mean' or a channel index >= 0, got {self.channel!r}")
        if self.length not in LENGTH_POLICIES:
            raise ConfigError(f"AudioConfig.length must be one of {LENGTH_POLICIES}, got {self.length!r}")
        if self.offset not in OFFSET_POLICIES:
            raise ConfigError(f"AudioConfig.offset must be one of {OFFSET_POLICIES}, got {self.offset!r}")
        if self.length == "keep":
            if self.duration is not None:
                raise ConfigError("AudioConfig.duration only applies with length='crop' or 'tile' "
                                  f"(got length='keep', duration={self.duration!r}); drop one of them")
        else:
            if self.duration is None:
                raise ConfigError(f"AudioConfig.length={self.length!r} needs duration (seconds)")
            try:
                d = float(self.duration)
            except (TypeError, ValueError):
                raise ConfigError(f"AudioConfig.duration must be a number of seconds, got {self.duration!r}") from None
            if not math.isfinite(d) or d <= 0 or round(d * self.sample_rate) < 1:
                raise ConfigError(f"AudioConfig.duration must be > 0 seconds (at least one sample), "
                                  f"got {self.duration!r}")
        if not isinstance(self.resample, bool):
            raise ConfigError(f"AudioConfig.resample must be true or false, got {self.resample!r}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer))):
            raise ConfigError(f"AudioConfig.seed must be an integer or None, got {self.seed!r}")

    @property
    def n_samples(self) -> Optional[int]:
        """Output length in samples for ``crop``/``tile``, ``None`` for ``keep``."""
        return None if self.duration is None else int(round(float(self.duration) * self.sample_rate))

    @classmethod
    def from_dict(cls, d: Optional[dict[str, Any]]) -> "AudioConfig":
        """Build from a mapping (e.g. a YAML section); unknown keys raise ``ConfigError``."""
        d = dict(d or {})
        known = set(cls.__dataclass_fields__)
        bad = sorted(set(d) - known)
        if bad:
            raise ConfigError(f"unknown audio option(s) {bad}; known: {sorted(known)}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def decode_key(self) -> str:
        """The fields that change what :func:`decode_audio` returns (the cache key part)."""
        return f"sr={int(self.sample_rate)};ch={self.channel};resample={self.resample}"


# ----------------------------------------------------------------------------- checks
def _check_wav_complete(path: Path) -> None:
    """Raise AudioDecodeError when a RIFF/WAVE file's data chunk is shorter than its header says."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return  # not plain RIFF/WAVE (FLAC, RF64, ...): libsndfile checks those
            size = path.stat().st_size
            pos = 12
            while pos + 8 <= size:
                f.seek(pos)
                hdr = f.read(8)
                if len(hdr) < 8:
                    return
                cid, clen = hdr[:4], struct.unpack("<I", hdr[4:])[0]
                if cid == b"data":
                    if clen in (0, 0xFFFFFFFF):  # streaming writers leave these; trust libsndfile
                        return
                    have = size - (pos + 8)
                    if have < clen:
                        raise AudioDecodeError(
                            path, f"truncated: the header promises {clen} bytes of audio but the file "
                                  f"holds {have}", "re-download or re-export the file")
                    return
                pos += 8 + clen + (clen & 1)
    except OSError as exc:
        raise AudioDecodeError(path, f"unreadable ({exc.strerror or exc})", "check permissions") from None


def audio_info(path: Union[str, Path]) -> dict[str, Any]:
    """Sample rate, channels, frames and duration of a file, without decoding it."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise AudioFileNotFoundError(path, "file not found", "check the path")
    try:
        info = sf.info(str(path))
    except Exception as exc:  # libsndfile's error types vary across versions
        raise AudioDecodeError(path, f"cannot read the audio header ({_sf_reason(exc)})",
                               "is it a .wav/.flac audio file?") from None
    return {"sample_rate": info.samplerate, "channels": info.channels, "frames": info.frames,
            "duration": info.frames / info.samplerate if info.samplerate else 0.0,
            "format": info.format, "subtype": info.subtype}


def _sf_reason(exc: Exception) -> str:
    text = str(exc)
    return text.split(": ", 1)[-1] if "Error opening" in text else text


# ----------------------------------------------------------------------------- decode
def decode_audio(path: Union[str, Path], config: Optional[AudioConfig] = None) -> np.ndarray:
    """Decode a file to mono float32 at ``config.sample_rate`` (no length policy).

    Raises the typed errors listed in the module docstring; warns on resampling and silence.
    """
    import soundfile as sf

    cfg = config or AudioConfig()
    path = Path(path)
    if not path.exists():
        raise AudioFileNotFoundError(path, "file not found", "check the path or re-scan the dataset")
    if not path.is_file():
        raise AudioDecodeError(path, "not a regular file", "pass an audio file, not a folder")
    _check_wav_complete(path)
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioDecodeError(path, f"cannot decode ({_sf_reason(exc)})",
                               "the file is corrupt or not a WAV/FLAC audio file") from None
    if data.shape[0] == 0:
        raise EmptyAudioError(path, "the file holds zero samples", "remove it from the dataset")
    n_ch = data.shape[1]
    if cfg.channel == "mean":
        x = data[:, 0] if n_ch == 1 else data.mean(axis=1, dtype=np.float64).astype(np.float32)
    else:
        if cfg.channel >= n_ch:
            raise ConfigError(f"{path}: AudioConfig.channel={cfg.channel} but the file has {n_ch} "
                              f"channel(s) (use 0..{n_ch - 1} or 'mean')")
        x = data[:, cfg.channel]
    if not np.isfinite(x).all() or (cfg.channel == "mean" and n_ch > 1 and not np.isfinite(data).all()):
        bad = int((~np.isfinite(data)).sum())
        raise NonFiniteAudioError(path, f"{bad} NaN/Inf sample(s)", "the file is corrupt; re-export it")
    if sr != cfg.sample_rate:
        if not cfg.resample:
            raise SampleRateError(path, f"sample rate {sr} Hz, expected {cfg.sample_rate} Hz",
                                  "resample the files or set resample: true")
        x = resample(x, sr, cfg.sample_rate)
        # no file name in the text: Python shows a warning once per distinct message, so a
        # 48 kHz dataset gives one warning per rate pair instead of one per file
        warnings.warn(f"resampling audio from {sr} Hz to {cfg.sample_rate} Hz (polyphase); resample "
                      f"the files once on disk to skip this cost", ResampleWarning, stacklevel=2)
    if not np.any(x):
        warnings.warn(f"{path}: every sample is zero (silent clip)", SilentAudioWarning, stacklevel=2)
    return np.ascontiguousarray(x, dtype=np.float32)


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Polyphase resampling (``scipy.signal.resample_poly``) by the exact rational ratio."""
    from scipy.signal import resample_poly

    if sr_in == sr_out:
        return x
    frac = Fraction(int(sr_out), int(sr_in))
    y = resample_poly(x.astype(np.float64), frac.numerator, frac.denominator)
    return y.astype(np.float32)


# ----------------------------------------------------------------------------- length
def apply_length(x: np.ndarray, config: Optional[AudioConfig] = None, rng: Optional[np.random.Generator] = None,
                 path: Union[str, Path, None] = None) -> np.ndarray:
    """Apply the length policy of ``config`` to a 1-D waveform (returns a new float32 array).

    A random crop offset is drawn from ``rng``, or from ``np.random.default_rng(config.seed)``
    when no ``rng`` is given (then the same file always gets the same offset).
    """
    cfg = config or AudioConfig()
    if cfg.length == "keep":
        return np.array(x, dtype=np.float32)
    n = cfg.n_samples
    assert n is not None
    t = x.shape[0]
    if t >= n:
        extra = t - n
        if extra == 0 or cfg.offset == "start":
            start = 0
        elif cfg.offset == "center":
            start = extra // 2
        else:
            gen = rng if rng is not None else np.random.default_rng(cfg.seed)
            start = int(gen.integers(0, extra + 1))
        return np.array(x[start:start + n], dtype=np.float32)
    if t == 0:
        raise EmptyAudioError(path, "the waveform holds zero samples", "remove it from the dataset")
    if cfg.length == "crop":
        out = np.zeros(n, dtype=np.float32)
        out[:t] = x
        return out
    reps = -(-n // t)
    return np.tile(np.asarray(x, dtype=np.float32), reps)[:n].copy()


def load_audio(path: Union[str, Path], config: Optional[AudioConfig] = None,
               rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """Load one file as a 1-D float32 waveform following ``config`` (default: 16 kHz mono, keep).

    Raises:
        AudioError subclasses naming the file (see the module docstring); ConfigError for a
        channel index the file does not have.
    """
    cfg = config or AudioConfig()
    return apply_length(decode_audio(path, cfg), cfg, rng=rng, path=path)
