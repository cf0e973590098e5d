"""Helpers shared by the machine models: unit tolerances, structures, rotating-machine building
blocks."""

from __future__ import annotations

import numpy as np

from .. import dsp
from ..base import AnomalyKind


def _k(*kinds: AnomalyKind) -> dict[str, AnomalyKind]:
    return {k.name: k for k in kinds}


def _unit_rms(x: np.ndarray) -> np.ndarray:
    r = dsp.rms(x)
    return x / r if r > 0 else x


def _at_least_one(times: np.ndarray, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """``times`` inside the clip, or one random instant when none is (very short clips): an
    anomalous clip must always carry its anomaly."""
    times = np.asarray(times, dtype=float)
    times = times[(times >= 0) & (times < n / sr)]
    return times if len(times) else np.array([rng.uniform(0.05, 0.8) * n / sr])


def _window(rng: np.random.Generator, dur: float, lo: float, hi: float) -> tuple[float, float]:
    """A random time window of length in [lo, hi] (fraction of the clip) inside the clip."""
    length = dur * rng.uniform(lo, hi)
    onset = rng.uniform(0.0, max(dur - length, 1e-3))
    return float(onset), float(onset + length)


# -- unit tolerances ---------------------------------------------------------------------------
def pattern(rng: np.random.Generator, nominal, sigma_db: float) -> list[float]:
    """A unit's version of a nominal amplitude pattern (each entry off by ~``sigma_db`` dB):
    manufacturing tolerances give every unit its own harmonic amplitudes."""
    nominal = np.asarray(nominal, dtype=float)
    return [float(v) for v in nominal * 10.0 ** (rng.normal(0.0, sigma_db, len(nominal)) / 20.0)]


def tol(rng: np.random.Generator, value: float, rel: float) -> float:
    """``value`` off by a manufacturing tolerance of ~``rel`` (relative standard deviation)."""
    return float(value * (1.0 + rng.normal(0.0, rel)))


def tol_modes(rng: np.random.Generator, nominal, f_rel: float = 0.06, zeta_rel: float = 0.3,
              gain_db: float = 3.0) -> list[list[float]]:
    """A unit's version of the product's modes: frequencies off by ~``f_rel``, damping by
    ~``zeta_rel``, gains by ~``gain_db`` dB (stiffness, mass, joint and mounting tolerances)."""
    return [[tol(rng, f, f_rel), float(z * np.exp(rng.normal(0.0, zeta_rel))),
             float(g * 10.0 ** (rng.normal(0.0, gain_db) / 20.0))] for f, z, g in nominal]


def modes(rng: np.random.Generator, count: int, lo: float, hi: float, zeta=(0.015, 0.05),
          peak_db=(6.0, 15.0)) -> list[list[float]]:
    """``count`` structural modes ``[freq_hz, damping_ratio, gain]`` spread over ``[lo, hi]`` Hz
    (one per log-spaced sub-band, so a unit's resonances do not pile up); each mode's resonance
    peak stands ``peak_db`` above the direct (flat) path (``gain = 10**(peak/20) * 2 * zeta``)."""
    edges = np.geomspace(lo, hi, count + 1)
    out = []
    for i in range(count):
        z = float(rng.uniform(*zeta))
        out.append([float(rng.uniform(edges[i], edges[i + 1])), z, float(10.0 ** (rng.uniform(*peak_db) / 20.0) * 2 * z)])
    return out


_GRID = np.linspace(50.0, 7800.0, 4000)


def structure(unit_modes, direct: float = 1.0, radiation_hz: float = 40.0):
    """The transfer from the machine's excitations to the radiated sound: a direct (flat) path plus
    the unit's modes, with a radiation high-pass (see :func:`dsp.modal_response`). Scaled to a mean
    power gain of 1 over 50-7800 Hz, so that white excitation keeps its level whatever the modes."""
    def raw(f):
        r = (f / radiation_hz) ** 2
        return (direct + dsp.modal_response(f, unit_modes)) * (r / (1.0 + r))

    norm = float(np.sqrt(np.mean(np.abs(raw(_GRID)) ** 2)))

    def h(f):
        return raw(f) / norm
    return h


def clip_wobble(rng: np.random.Generator, values, sigma_db: float = 1.0) -> np.ndarray:
    """Clip-to-clip variation of a unit's amplitudes (load, temperature): ~``sigma_db`` dB each."""
    values = np.asarray(values, dtype=float)
    return values * 10.0 ** (rng.normal(0.0, sigma_db, len(values)) / 20.0)


# -- rotating machines -------------------------------------------------------------------------
def rev_pulse(cycles: np.ndarray, width: float, at: float = 0.0) -> np.ndarray:
    """A smooth pulse once per cycle (a damaged tooth in mesh, a dent under load): von-Mises shape
    of width ``width`` (fraction of a revolution) centred at angle ``at`` (fraction)."""
    kappa = 1.0 / (2 * np.pi * width) ** 2
    return np.exp(kappa * (np.cos(2 * np.pi * (cycles - at)) - 1.0))


def order_coefs(amps, phases) -> np.ndarray:
    """Complex amplitudes ``coef[k]`` (k = 0..len) of orders 1..len from amplitudes and phases."""
    amps = np.asarray(amps, dtype=float)
    c = np.zeros(len(amps) + 1, dtype=complex)
    c[1:] = amps * np.exp(1j * np.asarray(phases, dtype=float))
    return c


def shaft_rate(f0: float, n: int, sr: int, rng: np.random.Generator, jitter: float = 0.004,
               instability: float = 0.0, inst_rng: np.random.Generator | None = None) -> np.ndarray:
    """Instantaneous shaft rate: slow drift of ``jitter`` (relative) plus, when ``instability`` > 0,
    fast irregular speed fluctuations (a slipping belt or clutch) drawn from ``inst_rng``."""
    rate = dsp.drifting_rate(f0, n, sr, rng, jitter=jitter)
    if instability > 0 and inst_rng is not None:
        fast = dsp.smooth_random(n, inst_rng, int(n / sr * 12) + 2)
        rate = rate * (1.0 + instability * fast)
    return rate
