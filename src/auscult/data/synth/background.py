"""Factory-like background: coloured noise, mains hum, transient events from other machines.

Each domain has its own profile (a different factory), mixed at a per-domain SNR.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from . import dsp


@dataclass(frozen=True)
class BackgroundProfile:
    """One factory's noise.

    Attributes:
        name: label written to the dataset card.
        slope_db_oct: spectral tilt of the broadband floor.
        hum_hz: mains frequency (hum at 1x..4x).
        hum_level: hum amplitude relative to the unit-RMS floor.
        event_rate_hz: transient events (other machines, tools, doors) per second.
        event_band_hz: resonance range of those events.
        drone_hz: a distant machine's tone (``0`` for none).
        snr_db: machine-to-background ratio at the reference microphone.
    """

    name: str
    slope_db_oct: float
    hum_hz: float
    hum_level: float
    event_rate_hz: float
    event_band_hz: tuple[float, float]
    drone_hz: float
    snr_db: float

    def to_dict(self) -> dict:
        return asdict(self)


PROFILES: dict[str, BackgroundProfile] = {
    "source": BackgroundProfile("factory A (ventilated hall)", -3.0, 50.0, 0.25, 0.6, (400.0, 2500.0),
                                0.0, 6.0),
    "target": BackgroundProfile("factory B (press shop)", -1.5, 60.0, 0.4, 1.5, (800.0, 5000.0),
                                233.0, 3.0),
}


def render_background(n: int, sr: int, rng: np.random.Generator, profile: BackgroundProfile) -> np.ndarray:
    """Unit-RMS background noise of ``n`` samples for ``profile``."""
    t = np.arange(n) / sr
    floor = dsp.coloured_noise(n, sr, rng, profile.slope_db_oct, 150.0)
    hum = dsp.harmonics(t * profile.hum_hz, [1.0, 0.5, 0.3, 0.2], rng) * profile.hum_level
    ev_t = dsp.poisson_times(n / sr, profile.event_rate_hz, rng)
    events = np.zeros(n)
    for et in ev_t:  # a handful per clip
        f = rng.uniform(*profile.event_band_hz)
        k = dsp.resonance_kernel(sr, f, rng.uniform(0.01, 0.08))
        i = int(et * sr)
        m = min(len(k), n - i)
        events[i:i + m] += rng.uniform(2.0, 8.0) * k[:m]
    x = floor + hum + events
    if profile.drone_hz:
        x += 0.3 * dsp.harmonics(t * profile.drone_hz * (1 + 0.003 * dsp.smooth_random(n, rng, 4)),
                                 [1.0, 0.4], rng)
    return x / (dsp.rms(x) + 1e-12)
