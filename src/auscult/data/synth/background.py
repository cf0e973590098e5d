"""Factory background: a nuisance at a realistic SNR, different in every clip.

Every clip gets its own mixture, drawn from the domain's factory profile and unrelated to the
clip's label: a broadband floor whose tilt and level drift, mains hum, ventilation (HVAC rumble and
a fan tone), other machines switching on and off, impacts (tools, drops, presses) ringing random
resonances, and speech-like babble (voiced syllables through moving formants). It is mixed at a
per-clip machine-to-background ratio drawn from the profile's range (MIMII mixed its recordings at
-6, 0 and +6 dB [Purohit et al., DCASE 2019 workshop]).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from . import dsp


@dataclass(frozen=True)
class BackgroundProfile:
    """One factory's background.

    Attributes:
        name: label written to the dataset card.
        snr_db: range of the per-clip machine-to-background ratio (whole-clip RMS, reference mic).
        slope_db_oct: range of the broadband floor's spectral tilt.
        hum_hz: mains frequency (hum at 1x..4x).
        impact_rate_hz: mean rate of impacts (each clip draws its own rate around it).
        impact_band_hz: range of the resonances those impacts ring.
        machines_p: probability that another machine runs during the clip (up to two).
        machine_f0_hz: range of the other machines' fundamental.
        babble_p: probability of speech-like babble in the clip.
        hvac_p: probability of ventilation noise (rumble and a fan tone).
    """

    name: str
    snr_db: tuple[float, float]
    slope_db_oct: tuple[float, float]
    hum_hz: float
    impact_rate_hz: float
    impact_band_hz: tuple[float, float]
    machines_p: float
    machine_f0_hz: tuple[float, float]
    babble_p: float
    hvac_p: float

    def to_dict(self) -> dict:
        return asdict(self)


PROFILES: dict[str, BackgroundProfile] = {
    "source": BackgroundProfile("factory A (assembly hall)", (-6.0, 6.0), (-4.5, -2.0), 50.0, 0.8,
                                (300.0, 3000.0), 0.5, (40.0, 250.0), 0.4, 0.7),
    "target": BackgroundProfile("factory B (press shop)", (-6.0, 6.0), (-2.5, -0.5), 60.0, 1.2,
                                (600.0, 6000.0), 0.7, (120.0, 600.0), 0.5, 0.5),
}


def _other_machine(n: int, sr: int, rng: np.random.Generator, f0_range) -> np.ndarray:
    """A machine elsewhere in the hall: a drifting harmonic series plus its own noise, running for
    part of the clip (on/off with ramps)."""
    f0 = rng.uniform(*f0_range)
    rate = f0 * (1.0 + 0.01 * dsp.smooth_random(n, rng, 5))
    amps = rng.uniform(0.2, 1.0, 8) / np.arange(1, 9) ** rng.uniform(0.3, 1.2)
    x = dsp.harmonics(dsp.phase_of(rate, sr, rng.uniform()), amps, rng)
    x = x / (dsp.rms(x) + 1e-12) + 0.6 * dsp.band_noise(n, sr, rng, f0, min(30 * f0, 7000.0), -3.0)
    dur = n / sr
    on = rng.uniform(-0.5, 0.7) * dur
    off = on + rng.uniform(0.3, 1.2) * dur
    return x * dsp.gate(n, sr, max(on, 0.0), min(off, dur), 0.3)


def _impacts(n: int, sr: int, rng: np.random.Generator, rate: float, band) -> np.ndarray:
    """Tools, drops, a press: impulsive events ringing one or two random resonances each."""
    times = dsp.poisson_times(n / sr, rate, rng)
    x = np.zeros(n)
    for t0 in times:
        amp = rng.lognormal(0.0, 0.7)
        for _ in range(int(rng.integers(1, 3))):
            k = dsp.resonance_kernel(sr, rng.uniform(*band), rng.uniform(0.005, 0.08))
            i = int(t0 * sr)
            m = min(len(k), n - i)
            x[i:i + m] += amp * rng.uniform(0.3, 1.0) * k[:m]
    return x


def _babble(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Speech-like babble: one to three talkers; each syllable is a voiced source (glottal pulses at
    a drifting pitch) or frication noise, shaped by three formants that change every syllable."""
    out = np.zeros(n)
    for _ in range(int(rng.integers(1, 4))):
        pitch = rng.uniform(95.0, 230.0)
        level = rng.uniform(0.4, 1.0)
        t = rng.uniform(0.0, 1.0)
        while t < n / sr:
            i0 = int(t * sr)
            m = min(int(rng.uniform(0.12, 0.3) * sr), n - i0)
            if m <= 16:
                break
            nfft = 1 << int(np.ceil(np.log2(m)))
            f = np.fft.rfftfreq(nfft, 1.0 / sr)
            if rng.random() < 0.8:  # voiced: glottal pulses
                f0 = pitch * rng.uniform(0.85, 1.15)
                src = dsp.impulse_train(nfft, sr, np.arange(0.0, nfft / sr, 1.0 / f0), 1.0)
            else:  # frication
                src = rng.standard_normal(nfft) * 0.3
            formants = (rng.uniform(300, 900), rng.uniform(900, 2400), rng.uniform(2400, 3500))
            env = sum(np.exp(-0.5 * ((f - fc) / (60 + 0.06 * fc)) ** 2) / (1 + j) for j, fc in enumerate(formants))
            syl = np.fft.irfft(np.fft.rfft(src) * env, nfft)[:m] * np.hanning(m)
            out[i0:i0 + m] += level * syl / (dsp.rms(syl) + 1e-12)
            t += m / sr + (rng.exponential(0.08) if rng.random() < 0.8 else rng.uniform(0.3, 1.2))
    return out


def render_background(n: int, sr: int, rng: np.random.Generator, profile: BackgroundProfile) -> np.ndarray:
    """Unit-RMS background of ``n`` samples: a fresh mixture drawn from ``profile``."""
    t = np.arange(n) / sr
    dur = n / sr
    # stationary-ish floor whose level drifts by a few dB over the clip
    floor = dsp.coloured_noise(n, sr, rng, rng.uniform(*profile.slope_db_oct), 150.0)
    floor *= 10.0 ** (3.0 * dsp.smooth_random(n, rng, max(2, int(dur))) / 20.0)
    x = floor
    x = x + rng.uniform(0.05, 0.4) * dsp.harmonics(t * profile.hum_hz, [1.0, 0.5, 0.3, 0.2], rng)
    if rng.random() < profile.hvac_p:  # ventilation: rumble and a slowly beating fan tone
        rumble = dsp.band_noise(n, sr, rng, 20.0, 300.0, -6.0)
        fan_rate = rng.uniform(60.0, 220.0) * (1.0 + 0.004 * dsp.smooth_random(n, rng, 3))
        tone = dsp.harmonics(dsp.phase_of(fan_rate, sr), [1.0, 0.4, 0.2], rng)
        x = x + rng.uniform(0.3, 1.2) * rumble + rng.uniform(0.1, 0.5) * tone * (1 + 0.3 * dsp.smooth_random(n, rng, 6))
    for _ in range(int(rng.random() < profile.machines_p) + int(rng.random() < profile.machines_p / 2)):
        x = x + rng.uniform(0.3, 1.5) * _other_machine(n, sr, rng, profile.machine_f0_hz)
    rate = profile.impact_rate_hz * rng.uniform(0.2, 2.0)
    ev = _impacts(n, sr, rng, rate, profile.impact_band_hz)
    if ev.any():
        x = x + rng.uniform(3.0, 15.0) * ev / (np.max(np.abs(ev)) + 1e-12)
    if rng.random() < profile.babble_p:
        x = x + rng.uniform(0.3, 1.5) * _babble(n, sr, rng)
    return x / (dsp.rms(x) + 1e-12)


__all__ = ["BackgroundProfile", "PROFILES", "render_background"]
