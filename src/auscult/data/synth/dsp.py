"""Vectorised signal-building blocks shared by the machine models.

Every function takes an explicit ``numpy.random.Generator`` (never the global state), works on
float64 arrays of ``n`` samples at ``sr`` Hz and is cheap enough to call a few dozen times per
10-second clip.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve


def smooth_random(n: int, rng: np.random.Generator, n_knots: int = 8) -> np.ndarray:
    """A slowly varying curve in roughly [-1, 1]: random knots joined by cosine interpolation."""
    n_knots = max(2, int(n_knots))
    knots = rng.uniform(-1.0, 1.0, n_knots)
    pos = np.linspace(0.0, n_knots - 1, n)
    i = np.minimum(pos.astype(np.int64), n_knots - 2)
    frac = pos - i
    w = 0.5 - 0.5 * np.cos(np.pi * frac)
    return knots[i] * (1.0 - w) + knots[i + 1] * w


def drifting_rate(f0: float, n: int, sr: int, rng: np.random.Generator, jitter: float = 0.005,
                  knots_per_s: float = 0.8) -> np.ndarray:
    """An instantaneous rate (Hz) around ``f0`` that wanders by about ``jitter`` (relative)."""
    n_knots = int(np.ceil(n / sr * knots_per_s)) + 2
    return f0 * (1.0 + jitter * smooth_random(n, rng, n_knots))


def phase_of(rate: np.ndarray, sr: int, phase0: float = 0.0) -> np.ndarray:
    """Cycle count (not radians) of an instantaneous rate: ``cumsum(rate) / sr``."""
    return phase0 + np.cumsum(rate) / sr


def tones(cycles: np.ndarray, coef: np.ndarray, pm: np.ndarray | None = None) -> np.ndarray:
    """``Im(sum_k coef[k] * exp(i*k*(2*pi*cycles + pm)))``: a sum of integer orders of one rate.

    ``coef[k]`` is the complex amplitude of order ``k`` (``coef[0]`` is ignored); ``pm`` is an optional
    phase modulation in radians of the fundamental (order ``k`` is modulated by ``k * pm``, as a
    fluctuation of the shaft angle or of the mesh timing modulates every harmonic). The orders share
    one complex exponential evaluated by Horner's rule, which is several times cheaper than one
    ``sin`` per harmonic.
    """
    coef = np.asarray(coef, dtype=complex)
    if len(coef) < 2:
        return np.zeros_like(cycles, dtype=float)
    frac = cycles - np.floor(cycles)  # keep the argument small for accuracy
    arg = 2 * np.pi * frac
    if pm is not None:
        arg = arg + pm
    z = np.exp(1j * arg)
    acc = np.full_like(z, coef[-1])
    for c in coef[-2:0:-1]:
        acc *= z
        acc += c
    acc *= z
    return acc.imag.copy()


def harmonics(cycles: np.ndarray, amps, rng: np.random.Generator, orders=None) -> np.ndarray:
    """Sum of ``amps[k] * sin(2π·order_k·cycles + φ_k)`` with random phases φ_k.

    ``cycles`` is a cycle count (see :func:`phase_of`); ``orders`` default to 1, 2, 3, ...
    """
    amps = np.asarray(amps, dtype=float)
    orders = np.arange(1, len(amps) + 1) if orders is None else np.asarray(orders, dtype=float)
    phases = rng.uniform(0.0, 2 * np.pi, len(amps))
    if np.all(orders == np.round(orders)) and np.all(orders >= 1):
        coef = np.zeros(int(orders.max()) + 1, dtype=complex)
        for a, k, ph in zip(amps, orders.astype(int), phases):
            coef[k] += a * np.exp(1j * ph)
        return tones(cycles, coef)
    out = np.zeros_like(cycles)
    frac = cycles - np.floor(cycles)
    for a, k, ph in zip(amps, orders, phases):
        if a != 0.0:
            out += a * np.sin(2 * np.pi * k * frac + ph)
    return out


def shaped_noise(n: int, sr: int, rng: np.random.Generator, gain) -> np.ndarray:
    """White Gaussian noise shaped in the frequency domain by ``gain(freqs_hz) -> amplitude``.

    The result has unit RMS (before the caller's scaling) unless the gain is zero everywhere.
    """
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / sr)
    spec *= gain(f)
    x = np.fft.irfft(spec, n)
    return x / (np.sqrt(np.mean(x * x)) + 1e-12)


def band_noise(n: int, sr: int, rng: np.random.Generator, lo: float, hi: float,
               slope_db_oct: float = 0.0) -> np.ndarray:
    """Unit-RMS noise confined to ``[lo, hi]`` Hz (smooth edges) with an optional spectral tilt."""
    hi = min(hi, 0.49 * sr)

    def gain(f):
        edge_lo = 1.0 / (1.0 + (lo / np.maximum(f, 1e-3)) ** 8)
        edge_hi = 1.0 / (1.0 + (np.maximum(f, 1e-3) / hi) ** 8)
        tilt = (np.maximum(f, 1.0) / max(lo, 1.0)) ** (slope_db_oct / 6.02)
        return edge_lo * edge_hi * tilt

    return shaped_noise(n, sr, rng, gain)


def bandlimit(x: np.ndarray, sr: int, lo: float, hi: float) -> np.ndarray:
    """``x`` with everything outside ``[lo, hi]`` Hz removed (FFT mask, smooth edges)."""
    n = len(x)
    f = np.maximum(np.fft.rfftfreq(n, 1.0 / sr), 1e-3)
    mask = 1.0 / (1.0 + (lo / f) ** 8) / (1.0 + (f / min(hi, 0.49 * sr)) ** 8)
    return np.fft.irfft(np.fft.rfft(x) * mask, n)


def coloured_noise(n: int, sr: int, rng: np.random.Generator, slope_db_oct: float = -3.0,
                   f_ref: float = 100.0) -> np.ndarray:
    """Unit-RMS noise with a power slope of ``slope_db_oct`` dB/octave above ``f_ref``."""
    return shaped_noise(n, sr, rng, lambda f: (np.maximum(f, f_ref) / f_ref) ** (slope_db_oct / 6.02))


def resonance_kernel(sr: int, freq: float, decay_s: float, length_s: float | None = None) -> np.ndarray:
    """Impulse response of a damped resonance (a struck structure ringing at ``freq``)."""
    length_s = length_s if length_s is not None else 5.0 * decay_s
    t = np.arange(max(int(length_s * sr), 2)) / sr
    return np.exp(-t / decay_s) * np.sin(2 * np.pi * freq * t)


def impulse_train(n: int, sr: int, times_s: np.ndarray, amps: np.ndarray) -> np.ndarray:
    """Unit impulses (scaled by ``amps``) at ``times_s``; times outside the clip are dropped."""
    x = np.zeros(n)
    idx = np.round(np.asarray(times_s) * sr).astype(np.int64)
    ok = (idx >= 0) & (idx < n)
    np.add.at(x, idx[ok], np.broadcast_to(amps, idx.shape)[ok])
    return x


def ring(impulses: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Excite ``kernel`` with an impulse sequence (same length as ``impulses``)."""
    if not np.any(impulses):
        return np.zeros_like(impulses)
    return fftconvolve(impulses, kernel)[: len(impulses)]


def events_at_rate(cycles: np.ndarray, sr: int, order: float = 1.0) -> np.ndarray:
    """Times (s) at which ``order * cycles`` crosses an integer: one event per cycle of a rate."""
    c = order * cycles
    k = np.floor(c)
    idx = np.nonzero(np.diff(k) > 0)[0] + 1
    return idx / sr


def poisson_times(duration: float, rate_hz: float, rng: np.random.Generator) -> np.ndarray:
    """Event times of a homogeneous Poisson process on ``[0, duration)``."""
    count = rng.poisson(rate_hz * duration)
    return np.sort(rng.uniform(0.0, duration, count))


def gate(n: int, sr: int, onset: float, offset: float, ramp_s: float = 0.02) -> np.ndarray:
    """A 0/1 envelope that is 1 on ``[onset, offset)`` seconds, with short raised-cosine ramps."""
    g = np.zeros(n)
    r = max(ramp_s, 1.0 / sr)
    i0 = max(int(np.floor(onset * sr)), 0)
    i1 = min(int(np.ceil((offset + r) * sr)) + 1, n)
    if i1 <= i0:
        return g
    t = np.arange(i0, i1) / sr
    w = np.minimum(np.clip((t - onset) / r, 0.0, 1.0), np.clip((offset - t) / r, 0.0, 1.0))
    g[i0:i1] = 0.5 - 0.5 * np.cos(np.pi * w)
    return g


def modal_response(f: np.ndarray, modes, radiation_hz: float = 0.0) -> np.ndarray:
    """Complex frequency response of a structure: a sum of damped modes.

    ``modes`` is a sequence of ``(freq_hz, damping_ratio, gain)``; each mode contributes
    ``gain * fk^2 / (fk^2 - f^2 + 2j*zeta*fk*f)`` (a single-degree-of-freedom receptance, unit
    static gain). ``radiation_hz`` adds a second-order high-pass: a vibrating casing radiates
    frequencies far below it poorly. Every excitation of a machine (tones, impacts, friction) is
    filtered by the same response, so a fault's impacts ring the resonances the healthy machine
    already excites.
    """
    f = np.asarray(f, dtype=float)
    h = np.zeros(f.shape, dtype=complex)
    for fk, z, g in modes:
        h += g * fk * fk / (fk * fk - f * f + 2j * z * fk * f)
    if radiation_hz > 0:
        r = (f / radiation_hz) ** 2
        h *= r / (1.0 + r)
    return h


def filtered(x: np.ndarray, sr: int, response) -> np.ndarray:
    """``x`` filtered by ``response(freqs_hz) -> complex gain`` (zero-phase FFT filtering of a
    clip; the complex gain carries the modes' phase)."""
    n = len(x)
    f = np.fft.rfftfreq(n, 1.0 / sr)
    return np.fft.irfft(np.fft.rfft(x) * response(f), n)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0
