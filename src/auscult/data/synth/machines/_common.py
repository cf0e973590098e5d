"""Helpers shared by the machine models."""

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
