"""Render one clip: machine model + anomaly + microphone + background + level."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ...errors import ConfigError
from . import dsp
from .background import PROFILES, render_background
from .base import Machine
from .machines import MACHINES

#: RMS of the machine at the reference microphone, dBFS (peaks are limited to 0.99).
LEVEL_DBFS = -26.0
_CODES = {"source": 1, "target": 2, None: 0, "train": 1, "test": 2, "normal": 1, "anomaly": 2}


def get_machine(name: str) -> Machine:
    """The model for a machine type; raises :class:`ConfigError` listing the known types."""
    try:
        return MACHINES[name]
    except KeyError:
        raise ConfigError(f"unknown machine type {name!r}; the simulator knows {sorted(MACHINES)}") from None


def seed_sequence(seed: int, *parts) -> np.random.SeedSequence:
    """A seed sequence derived from ``seed`` and any mix of strings/ints (stable across runs)."""
    words = [int(seed) & 0xFFFFFFFF]
    for p in parts:
        if isinstance(p, str) or p is None:
            words.append(zlib.crc32(str(p).encode()))
        else:
            words.append(int(p) & 0xFFFFFFFF)
    return np.random.SeedSequence(words)


def unit_for(machine: str, section: str, seed: int) -> dict:
    """Constants of the physical unit behind one section (same for every clip of it)."""
    rng = np.random.default_rng(seed_sequence(seed, "unit", machine, section))
    return get_machine(machine).sample_unit(rng)


@dataclass
class ClipInfo:
    """Everything known about a rendered clip (what goes into ``metadata.csv``)."""

    machine: str
    domain: Optional[str]
    params: dict
    anomaly: Optional[str] = None
    severity: float = 0.0
    onset_s: Optional[float] = None
    offset_s: Optional[float] = None
    band_hz: Optional[tuple[float, float]] = None
    events_s: list = field(default_factory=list)
    snr_db: float = 0.0
    peak_limited: bool = False

    @property
    def attrs(self) -> list:
        return self.params["attrs"]


def render_clip(machine: str, params: Optional[dict] = None, anomaly: Optional[str] = None,
                severity: float = 1.0, seed: int = 0, *, domain: Optional[str] = "source",
                unit: Optional[dict] = None, sample_rate: int = 16000, duration: float = 10.0,
                background: bool = True, return_info: bool = False):
    """Render one clip of ``machine`` as float32 mono audio in [-1, 1].

    Args:
        machine: machine type (``fan``, ``pump``, ``slider``, ``valve``, ``bearing``, ``gearbox``,
            ``ToyCar``, ``ToyTrain``).
        params: operating parameters to fix (e.g. ``{"rpm": 1500}`` for a fan); the rest are drawn
            for ``domain`` from ``seed``.
        anomaly: an anomaly kind of this machine (see ``MACHINES[machine].kinds``) or ``None``.
        severity: in [0, 1]; 0 renders no anomaly component at all.
        seed: everything random (unit constants if ``unit`` is not given, operating point, jitter,
            noise) derives from it.
        domain: ``"source"``, ``"target"`` or ``None`` (2020 layout, source conditions): picks the
            operating range and the background profile.
        unit: the section's unit constants (:func:`unit_for`); drawn from ``seed`` if omitted.
        background: mix the domain's factory noise at its SNR.
        return_info: also return a :class:`ClipInfo`.
    """
    m = get_machine(machine)
    if anomaly is not None and anomaly not in m.kinds:
        raise ConfigError(f"{machine} has no anomaly kind {anomaly!r}; choose one of {sorted(m.kinds)}")
    if not 0.0 <= float(severity) <= 1.0:
        raise ConfigError(f"severity must lie in [0, 1], got {severity}")
    if duration <= 0 or sample_rate <= 0:
        raise ConfigError(f"duration and sample_rate must be positive, got {duration}, {sample_rate}")
    dom = domain if domain in ("source", "target") else "source"
    rng = np.random.default_rng(seed_sequence(seed, "clip", machine))
    # separate streams: the same seed gives the same healthy machine, level and background
    # whatever the anomaly, so ``anomalous - normal`` is exactly the anomaly component
    rng_mix = np.random.default_rng(seed_sequence(seed, "mix", machine))
    rng_bg = np.random.default_rng(seed_sequence(seed, "background", machine))
    level_jitter, snr_jitter = rng_mix.uniform(-1.0, 1.0), rng_mix.uniform(-1.5, 1.5)
    unit = dict(unit) if unit is not None else m.sample_unit(rng)
    p = m.sample_params(rng, unit, dom)
    if params:
        raw = {k: v for k, v in p.items() if k != "attrs"}
        raw.update(params)
        p = m.complete(raw, unit)
    p = {**p, "unit": unit}
    n = int(round(duration * sample_rate))
    out = m.render(p, n, sample_rate, rng, anomaly, float(severity))
    ref = dsp.rms(out.base) + 1e-12
    x = (out.base + out.extra) / ref
    mic_far = p.get("mic") == 2 or p.get("loc") == "B"
    if mic_far:  # farther microphone: high frequencies fall off a little
        spec = np.fft.rfft(x)
        f = np.fft.rfftfreq(n, 1.0 / sample_rate)
        x = np.fft.irfft(spec * (np.maximum(f, 1000.0) / 1000.0) ** -0.25, n)
    prof = PROFILES[dom]
    snr = prof.snr_db + snr_jitter - (3.0 if mic_far else 0.0)
    if background:
        x = x + render_background(n, sample_rate, rng_bg, prof) * 10.0 ** (-snr / 20.0)
    x *= 10.0 ** ((LEVEL_DBFS + level_jitter) / 20.0)
    peak = float(np.max(np.abs(x))) if n else 0.0
    limited = peak > 0.99
    if limited:
        x *= 0.99 / peak
    audio = x.astype(np.float32)
    if not return_info:
        return audio
    p.pop("unit")
    info = ClipInfo(machine, domain, p, anomaly, float(severity) if anomaly else 0.0,
                    out.onset_s, out.offset_s, out.band_hz, [round(float(t), 4) for t in out.events_s],
                    round(float(snr), 2) if background else float("inf"), limited)
    if anomaly is None:
        info.onset_s = info.offset_s = info.band_hz = None
        info.events_s = []
    return audio, info
