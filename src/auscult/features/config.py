"""``FeatureConfig``: every parameter of a front-end, validated, plus shape helpers."""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Mapping

import numpy as np

from ..errors import AuscultError, ConfigError

MEL_SCALES = ("slaney", "htk")
NORMS = ("slaney", None)
PAD_MODES = ("constant", "reflect")
STFT_IMPLS = ("torch", "conv")
STFT_PRECISIONS = ("float64", "float32")


class FeatureInputError(AuscultError, ValueError):
    """A tensor given to a front-end has the wrong shape, dtype or length."""


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class FeatureConfig:
    """Parameters shared by every front-end (STFT, mel filterbank and log compression).

    The defaults reproduce ``librosa.feature.melspectrogram(sr=16000, n_fft=1024,
    hop_length=512, n_mels=128)`` (periodic Hann window, centered frames, zero padding,
    Slaney mel scale with Slaney area normalisation) followed by ``10*log10(max(x, eps))``.

    Attributes:
        sample_rate: sampling rate of the waveform in Hz.
        n_fft: FFT size (frame length after zero-padding the window).
        hop_length: samples between successive frames.
        win_length: Hann window length (``None`` = ``n_fft``); a shorter window is
            zero-padded to ``n_fft`` on both sides, centered, as librosa and torch do.
        n_mels: number of mel bands.
        fmin, fmax: frequency range of the mel filterbank in Hz (``fmax=None`` = Nyquist).
        power: exponent applied to the STFT magnitude before the filterbank (1 = magnitude,
            2 = power).
        mel_scale: ``"slaney"`` (linear below 1 kHz, logarithmic above) or ``"htk"``
            (``2595*log10(1 + f/700)``).
        norm: ``"slaney"`` (divide each triangle by its bandwidth, constant energy per band)
            or ``None`` (peak-1 triangles).
        inverted: mirror the filterbank on the frequency axis (see
            :func:`auscult.features.mel_filterbank`): narrow bands at high frequencies.
        eps: floor of the log: ``10*log10(max(x, eps))``.
        center: pad ``n_fft // 2`` samples on both sides so frame ``t`` is centered on
            sample ``t * hop_length``.
        pad_mode: ``"constant"`` (zeros, librosa >= 0.10 default) or ``"reflect"``.
        stft_impl: ``"torch"`` (``torch.stft``, fastest) or ``"conv"`` (a Conv1d with a fixed
            Hann-windowed DFT basis; every op exports to ONNX). Both give the same numbers.
        stft_precision: ``"float32"`` (default) runs the STFT in the input's precision: it
            agrees with librosa to 1e-3 dB on recordings (16-bit audio cannot hold bands more
            than ~100 dB below the frame's peak, the only place float32 rounding shows).
            ``"float64"`` computes the STFT of float32 input in double precision and casts the
            power spectrum back, so bands far below the frame's peak (synthetic pure tones,
            noiseless chirps) also stay within 1e-3 dB of librosa; it costs ~1.5-2x the time
            of the whole log-mel. The conv path always runs in the input's dtype.
    """

    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 512
    win_length: int | None = None
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float | None = None
    power: float = 2.0
    mel_scale: str = "slaney"
    norm: str | None = "slaney"
    inverted: bool = False
    eps: float = 1e-10
    center: bool = True
    pad_mode: str = "constant"
    stft_impl: str = "torch"
    stft_precision: str = "float32"

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"FeatureConfig.{name}={getattr(self, name)!r}: {why}")

        for name in ("sample_rate", "n_fft", "hop_length", "n_mels"):
            value = getattr(self, name)
            if not _is_int(value) or value <= 0:
                raise bad(name, "must be a positive integer")
        if self.n_fft < 2:
            raise bad("n_fft", "must be at least 2")
        if self.win_length is not None and (
            not _is_int(self.win_length) or not 1 <= self.win_length <= self.n_fft
        ):
            raise bad("win_length", f"must be None or an integer in 1..n_fft ({self.n_fft})")
        nyquist = self.sample_rate / 2
        if not _is_number(self.fmin) or self.fmin < 0:
            raise bad("fmin", "must be a finite number >= 0 Hz")
        if self.fmax is not None and (not _is_number(self.fmax) or self.fmax > nyquist):
            raise bad("fmax", f"must be None or a number <= the Nyquist frequency {nyquist:g} Hz")
        if self.fmin >= self.mel_fmax:
            raise bad("fmin", f"must be below fmax ({self.mel_fmax:g} Hz)")
        if not _is_number(self.power) or self.power <= 0:
            raise bad("power", "must be a positive number (1 = magnitude, 2 = power)")
        if self.mel_scale not in MEL_SCALES:
            raise bad("mel_scale", f"choose one of {MEL_SCALES}")
        if self.norm not in NORMS:
            raise bad("norm", f"choose one of {NORMS}")
        if not isinstance(self.inverted, bool):
            raise bad("inverted", "must be True or False")
        if self.inverted and self.n_fft % 2:
            raise ConfigError(
                f"FeatureConfig.n_fft={self.n_fft}: the inverted filterbank needs an even n_fft "
                "(so bins k and n_fft/2 - k sit at mirrored frequencies)"
            )
        if not _is_number(self.eps) or self.eps <= 0:
            raise bad("eps", "must be a positive number (the floor of the log)")
        if not isinstance(self.center, bool):
            raise bad("center", "must be True or False")
        if self.pad_mode not in PAD_MODES:
            raise bad("pad_mode", f"choose one of {PAD_MODES}")
        if self.stft_impl not in STFT_IMPLS:
            raise bad("stft_impl", f"choose one of {STFT_IMPLS}")
        if self.stft_precision not in STFT_PRECISIONS:
            raise bad("stft_precision", f"choose one of {STFT_PRECISIONS}")

    @property
    def mel_fmax(self) -> float:
        """Upper edge of the mel filterbank in Hz (``fmax`` or the Nyquist frequency)."""
        return float(self.sample_rate) / 2 if self.fmax is None else float(self.fmax)

    @property
    def window_length(self) -> int:
        """Effective Hann window length (``win_length`` or ``n_fft``)."""
        return self.n_fft if self.win_length is None else self.win_length

    @property
    def n_freqs(self) -> int:
        """Number of STFT frequency bins, ``n_fft // 2 + 1``."""
        return self.n_fft // 2 + 1

    def frames(self, n_samples: int) -> int:
        """Number of STFT frames for a clip of ``n_samples`` samples."""
        return n_frames(n_samples, self.hop_length, n_fft=self.n_fft, center=self.center)

    def replace(self, **changes: Any) -> "FeatureConfig":
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of all fields (YAML/JSON friendly)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "FeatureConfig":
        """Build from a mapping; unknown keys raise :class:`ConfigError` naming them."""
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown feature option(s) {unknown}; known options: {sorted(known)}"
            )
        return cls(**data)


def n_frames(n_samples: int, hop_length: int, *, n_fft: int | None = None, center: bool = True) -> int:
    """Number of STFT frames: ``1 + n_samples // hop_length`` for centered frames.

    Without centering, ``1 + (n_samples - n_fft) // hop_length`` (``n_fft`` required; raises
    :class:`FeatureInputError` when the clip is shorter than one frame).
    """
    if not _is_int(n_samples) or n_samples < 0:
        raise FeatureInputError(f"n_samples={n_samples!r} must be a non-negative integer")
    if not _is_int(hop_length) or hop_length <= 0:
        raise ConfigError(f"hop_length={hop_length!r} must be a positive integer")
    n_samples, hop_length = int(n_samples), int(hop_length)
    if center:
        return 1 + n_samples // hop_length
    if n_fft is None:
        raise ConfigError("n_frames(center=False) needs n_fft")
    if n_samples < n_fft:
        raise FeatureInputError(
            f"a clip of {n_samples} samples is shorter than one frame (n_fft={n_fft}); "
            "use center=True or longer clips"
        )
    return 1 + (n_samples - n_fft) // hop_length
