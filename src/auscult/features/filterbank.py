"""Mel scales and triangular mel filterbanks, built in numpy (no librosa at run time).

The formulas follow the definitions librosa documents (``librosa.filters.mel``): band edges
are ``n_mels + 2`` points equally spaced on the mel scale between ``fmin`` and ``fmax``;
band ``m`` is a triangle rising from edge ``m`` to a peak of 1 at edge ``m+1`` and falling
to zero at edge ``m+2``, evaluated at the STFT bin frequencies ``k * sr / n_fft``; Slaney
normalisation divides band ``m`` by half its bandwidth in Hz, ``(f[m+2] - f[m]) / 2``.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np

from .config import FeatureConfig

# Slaney's Auditory Toolbox scale: linear (200/3 Hz per mel) below 1 kHz, log above.
_F_SP = 200.0 / 3
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(freqs, mel_scale: str = "slaney") -> np.ndarray:
    """Frequencies in Hz to mels (``"slaney"`` or ``"htk"`` scale), float64."""
    f = np.asarray(freqs, dtype=np.float64)
    if mel_scale == "htk":
        return 2595.0 * np.log10(1.0 + f / 700.0)
    mels = f / _F_SP
    high = f >= _MIN_LOG_HZ
    return np.where(high, _MIN_LOG_MEL + np.log(np.maximum(f, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP, mels)


def mel_to_hz(mels, mel_scale: str = "slaney") -> np.ndarray:
    """Mels to frequencies in Hz (inverse of :func:`hz_to_mel`), float64."""
    m = np.asarray(mels, dtype=np.float64)
    if mel_scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    freqs = _F_SP * m
    high = m >= _MIN_LOG_MEL
    return np.where(high, _MIN_LOG_HZ * np.exp(_LOGSTEP * (m - _MIN_LOG_MEL)), freqs)


def mel_band_edges(n_mels: int, fmin: float, fmax: float, mel_scale: str = "slaney") -> np.ndarray:
    """The ``n_mels + 2`` band edges in Hz, equally spaced on the mel scale."""
    lo, hi = hz_to_mel([fmin, fmax], mel_scale)
    return mel_to_hz(np.linspace(lo, hi, n_mels + 2), mel_scale)


def _triangles(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float,
               mel_scale: str, norm: str | None) -> np.ndarray:
    bin_freqs = np.arange(n_fft // 2 + 1, dtype=np.float64) * (sample_rate / n_fft)
    edges = mel_band_edges(n_mels, fmin, fmax, mel_scale)
    widths = np.diff(edges)
    offsets = edges[:, None] - bin_freqs[None, :]  # edge minus bin frequency
    rising = -offsets[:-2] / widths[:-1, None]
    falling = offsets[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    if norm == "slaney":
        weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    empty = weights.max(axis=1) <= 0
    if np.any(empty & (edges[:-2] > 0)):
        warnings.warn(
            f"{int(empty.sum())} of {n_mels} mel bands cover no STFT bin (n_fft={n_fft}, "
            f"sr={sample_rate}); they will always be zero. Reduce n_mels or raise n_fft.",
            stacklevel=3,
        )
    return weights


@lru_cache(maxsize=64)
def _filterbank_cached(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float,
                       mel_scale: str, norm: str | None, inverted: bool) -> np.ndarray:
    if not inverted:
        weights = _triangles(sample_rate, n_fft, n_mels, fmin, fmax, mel_scale, norm)
    else:
        nyquist = sample_rate / 2.0
        mirrored = _triangles(sample_rate, n_fft, n_mels, nyquist - fmax, nyquist - fmin,
                              mel_scale, norm)
        weights = mirrored[::-1, ::-1].copy()
    weights.setflags(write=False)
    return weights


def mel_filterbank(config: FeatureConfig) -> np.ndarray:
    """The ``[n_mels, n_fft // 2 + 1]`` mel filterbank of ``config`` (float64, read-only, cached).

    Standard (``inverted=False``): identical in definition to ``librosa.filters.mel`` with
    ``htk = (mel_scale == "htk")`` and the same ``norm``.

    Inverted (``inverted=True``, needs an even ``n_fft`` so that bin ``k`` and bin
    ``n_fft/2 - k`` sit at mirrored frequencies ``f`` and ``sr/2 - f``): let ``S`` be the
    standard filterbank over the mirrored range ``[sr/2 - fmax, sr/2 - fmin]``; then::

        inverted[m, k] = S[n_mels - 1 - m, n_fft/2 - k]

    Bands still run from low to high frequency and cover ``[fmin, fmax]``, but they are
    narrow near ``fmax`` and wide near ``fmin``. Consequence used in the tests: the inverted
    log-mel of ``x[n]`` equals the standard log-mel of ``(-1)^n x[n]`` read in reverse band
    order (multiplying by ``(-1)^n`` moves every frequency ``f`` to ``sr/2 - f``).
    """
    return _filterbank_cached(config.sample_rate, config.n_fft, config.n_mels, float(config.fmin),
                              config.mel_fmax, config.mel_scale, config.norm, config.inverted)


def mel_center_frequencies(config: FeatureConfig) -> np.ndarray:
    """Peak frequency in Hz of every band of ``config``'s filterbank, ascending."""
    nyquist = config.sample_rate / 2.0
    if not config.inverted:
        return mel_band_edges(config.n_mels, config.fmin, config.mel_fmax, config.mel_scale)[1:-1]
    edges = mel_band_edges(config.n_mels, nyquist - config.mel_fmax, nyquist - config.fmin,
                           config.mel_scale)
    return (nyquist - edges[1:-1])[::-1].copy()
