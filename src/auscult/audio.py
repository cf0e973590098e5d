"""Reading audio: decode, pick or mix channels, resample, crop or tile. Typed errors name the file.

Typical use::

    from auscult.audio import AudioConfig, load_audio
    cfg = AudioConfig(sample_rate=16000, channel="mean", length="tile", duration=10.0)
    x = load_audio("fan/train/section_00_source_train_normal_0000_m-n_W.wav", cfg)  # float32 [T]

``load_audio`` = :func:`decode_audio` (file -> float32 at ``sample_rate``, ``[T]``, or ``[2, T]``
with ``channel="both"``: the part a cache can keep) followed by :func:`apply_length` (the length
policy, cheap and possibly random, applied along the last axis).
:class:`~auscult.data.cache.WaveformCache` caches the decoded part (this module does not import it:
the cache builds on this module, never the other way round).

Channel policies (``AudioConfig.channel``): ``"mean"`` averages every channel (the behaviour for
the mono DCASE 2020-2025 clips and own data); an integer picks that channel; ``"near"`` /
``"far"`` / ``"both"`` are the DCASE 2026 policies for its two-channel clips (left = near mic,
right = far mic): channel 0, channel 1, or both as a ``[2, T]`` array, and they require exactly
two channels; ``"auto"`` (the default) means ``near`` for clips of a DCASE 2026 dataset and
``mean`` otherwise -- :meth:`AudioConfig.for_year` resolves it, :class:`~auscult.data.source.
AudioSource` does so per clip from ``Clip.year``, and a bare path decodes ``auto`` as ``mean``.

What is checked, and what is raised (all subclasses of :class:`~auscult.errors.AudioError`,
each naming the file):

* missing file -> ``AudioFileNotFoundError``;
* unreadable, corrupt, not audio, or a WAV whose header promises more audio than the file
  holds (truncated; libsndfile would silently return the shorter part) -> ``AudioDecodeError``;
* zero samples -> ``EmptyAudioError``; NaN/Inf samples -> ``NonFiniteAudioError``;
* a sample rate other than ``sample_rate`` with ``resample=False`` -> ``SampleRateError``;
* a channel index beyond the file's channels -> ``ConfigError``;
* ``near``/``far``/``both`` on a file that does not have exactly two channels (e.g. a mono file
  in a DCASE 2026 dataset) -> ``ChannelCountError``.

Warnings: :class:`ResampleWarning` when a file is resampled (polyphase, ``scipy.signal.
resample_poly``), :class:`SilentAudioWarning` when every sample is zero.
"""

from __future__ import annotations

import math
import struct
import warnings
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from .errors import (
    AudioDecodeError,
    ChannelCountError,
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
    "wav_truncation",
    "WaveformCache",
]

LENGTH_POLICIES = ("keep", "crop", "tile")
#: named channel policies (an integer channel index is also accepted)
CHANNEL_POLICIES = ("auto", "mean", "near", "far", "both")
#: the DCASE 2026 policies: they read a two-channel clip (left = near mic, right = far mic)
STEREO_POLICIES = ("near", "far", "both")
#: DCASE years whose clips are two-channel (near, far); ``channel="auto"`` reads ``near`` there
STEREO_YEARS: tuple[int, ...] = (2026,)
OFFSET_POLICIES = ("start", "center", "random")


class ResampleWarning(UserWarning):
    """A file was resampled to the configured rate (costly: consider resampling once, on disk)."""


class SilentAudioWarning(UserWarning):
    """Every sample of a clip is zero."""


@dataclass(frozen=True)
class AudioConfig:
    """How to turn a file into a float32 waveform (``[T]``; ``[2, T]`` with ``channel="both"``).

    Attributes:
        sample_rate: target rate in Hz; other rates are resampled (polyphase) with a warning.
        channel: ``"auto"`` (default: ``"near"`` for DCASE 2026 clips, ``"mean"`` otherwise, see
            :meth:`for_year`); ``"mean"`` averages all channels; an int picks that channel
            (0-based); ``"near"`` / ``"far"`` pick channel 0 / 1 of a DCASE 2026 two-channel clip;
            ``"both"`` keeps both as ``[2, T]`` (for methods that take two channels). The three
            DCASE 2026 policies raise ``ChannelCountError`` on a file without exactly 2 channels.
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
    channel: Union[str, int] = "auto"
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
                (isinstance(self.channel, str) and self.channel in CHANNEL_POLICIES)
                or (isinstance(self.channel, (int, np.integer)) and self.channel >= 0)):
            raise ConfigError(f"AudioConfig.channel must be one of {', '.join(CHANNEL_POLICIES)} or a channel "
                              f"index >= 0, got {self.channel!r}")
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

    @property
    def n_channels(self) -> int:
        """Channels of the decoded waveform: 2 for ``"both"`` (``[2, T]``), else 1 (``[T]``)."""
        return 2 if self.channel == "both" else 1

    @property
    def decode_channel(self) -> Union[str, int]:
        """The policy a bare file path is decoded with: ``"auto"`` reads as ``"mean"`` (a path
        carries no dataset year; :class:`~auscult.data.source.AudioSource` resolves ``auto`` per
        clip with :meth:`for_year`)."""
        return "mean" if self.channel == "auto" else self.channel

    def for_year(self, year: Optional[int]) -> "AudioConfig":
        """This config with ``channel="auto"`` resolved for clips of DCASE ``year``: ``"near"``
        (channel 0, the organisers' baseline choice) for the two-channel years (2026), ``"mean"``
        for every other year, own data and unknown years (``None``). Other policies are kept."""
        if self.channel != "auto":
            return self
        return replace(self, channel="near" if year in STEREO_YEARS else "mean")

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
        return f"sr={int(self.sample_rate)};ch={self.decode_channel};resample={self.resample}"


# ----------------------------------------------------------------------------- checks
def wav_truncation(path: Union[str, Path]) -> Optional[str]:
    """``"the header promises N bytes of audio but the file holds M"`` when a RIFF/WAVE file's data
    chunk is shorter than its header says (libsndfile would silently return the shorter part), else
    None (also for other formats: libsndfile checks those). Raises OSError when unreadable."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None  # not plain RIFF/WAVE (FLAC, RF64, ...)
        size = path.stat().st_size
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            hdr = f.read(8)
            if len(hdr) < 8:
                return None
            cid, clen = hdr[:4], struct.unpack("<I", hdr[4:])[0]
            if cid == b"data":
                if clen in (0, 0xFFFFFFFF):  # streaming writers leave these; trust libsndfile
                    return None
                have = size - (pos + 8)
                if have < clen:
                    return f"the header promises {clen} bytes of audio but the file holds {have}"
                return None
            pos += 8 + clen + (clen & 1)
    return None


def _check_wav_complete(path: Path) -> None:
    """Raise AudioDecodeError when a RIFF/WAVE file's data chunk is shorter than its header says."""
    try:
        problem = wav_truncation(path)
    except OSError as exc:
        raise AudioDecodeError(path, f"unreadable ({exc.strerror or exc})", "check permissions") from None
    if problem:
        raise AudioDecodeError(path, f"truncated: {problem}", "re-download or re-export the file")


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
    """Decode a file to float32 at ``config.sample_rate`` (no length policy): ``[T]``, or
    ``[2, T]`` (near, far) with ``channel="both"``. ``channel="auto"`` decodes as ``"mean"`` here
    (resolve it first with :meth:`AudioConfig.for_year` when the dataset year is known).

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
    policy = cfg.decode_channel
    if policy == "mean":
        x = data[:, 0] if n_ch == 1 else data.mean(axis=1, dtype=np.float64).astype(np.float32)
    elif policy in STEREO_POLICIES:
        if n_ch != 2:
            raise ChannelCountError(
                path, f"{'a mono file' if n_ch == 1 else f'{n_ch} channels'}, but channel policy {policy!r} "
                      f"reads a DCASE 2026 two-channel clip (left = near mic, right = far mic)",
                "restore the original two-channel file from the official archive; for mono or other "
                "recordings set audio.channel to 'mean' or a channel index")
        x = data.T if policy == "both" else data[:, 0 if policy == "near" else 1]
    else:
        if policy >= n_ch:
            raise ConfigError(f"{path}: AudioConfig.channel={policy} but the file has {n_ch} "
                              f"channel(s) (use 0..{n_ch - 1} or 'mean')")
        x = data[:, policy]
    if not np.isfinite(x).all() or (policy == "mean" and n_ch > 1 and not np.isfinite(data).all()):
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
    """Polyphase resampling (``scipy.signal.resample_poly``) by the exact rational ratio, along
    the last axis (``[T]`` or ``[C, T]``)."""
    from scipy.signal import resample_poly

    if sr_in == sr_out:
        return x
    frac = Fraction(int(sr_out), int(sr_in))
    y = resample_poly(x.astype(np.float64), frac.numerator, frac.denominator, axis=-1)
    return y.astype(np.float32)


# ----------------------------------------------------------------------------- length
def apply_length(x: np.ndarray, config: Optional[AudioConfig] = None, rng: Optional[np.random.Generator] = None,
                 path: Union[str, Path, None] = None) -> np.ndarray:
    """Apply the length policy of ``config`` to a waveform ``[T]`` or ``[C, T]`` along its last
    axis (returns a new float32 array).

    A random crop offset is drawn from ``rng``, or from ``np.random.default_rng(config.seed)``
    when no ``rng`` is given (then the same file always gets the same offset).
    """
    cfg = config or AudioConfig()
    if cfg.length == "keep":
        return np.array(x, dtype=np.float32)
    n = cfg.n_samples
    assert n is not None
    t = x.shape[-1]
    if t >= n:
        extra = t - n
        if extra == 0 or cfg.offset == "start":
            start = 0
        elif cfg.offset == "center":
            start = extra // 2
        else:
            gen = rng if rng is not None else np.random.default_rng(cfg.seed)
            start = int(gen.integers(0, extra + 1))
        return np.array(x[..., start:start + n], dtype=np.float32)
    if t == 0:
        raise EmptyAudioError(path, "the waveform holds zero samples", "remove it from the dataset")
    if cfg.length == "crop":
        out = np.zeros(x.shape[:-1] + (n,), dtype=np.float32)
        out[..., :t] = x
        return out
    reps = -(-n // t)
    return np.tile(np.asarray(x, dtype=np.float32), (1,) * (x.ndim - 1) + (reps,))[..., :n].copy()


def load_audio(path: Union[str, Path], config: Optional[AudioConfig] = None,
               rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """Load one file as a float32 waveform following ``config`` (default: 16 kHz, channels
    averaged, keep): ``[T]``, or ``[2, T]`` with ``channel="both"``.

    Raises:
        AudioError subclasses naming the file (see the module docstring); ConfigError for a
        channel index the file does not have.
    """
    cfg = config or AudioConfig()
    return apply_length(decode_audio(path, cfg), cfg, rng=rng, path=path)
