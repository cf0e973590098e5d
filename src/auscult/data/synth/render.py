"""Render one clip: the machine's sound at the source (healthy or faulty), then the recording chain
(microphone distance and the room of the unit's installation), then the factory background at the
clip's SNR, then the level.

The chain is one rendering of the machine source followed by :func:`record` for one microphone
position, so a second microphone is a second call of :func:`record` on the same source.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ...errors import ConfigError
from . import dsp
from .background import PROFILES, render_background
from .base import Fault, Machine, clip_snr_db
from .machines import MACHINES

#: RMS of the healthy machine at the near microphone, dBFS (peaks are limited to 0.99); the far
#: microphone hears it quieter (distance) and more reverberant.
LEVEL_DBFS = -30.0
#: speed of sound (m/s), for the reflections' delays
SOUND_SPEED = 343.0
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


def product_for(machine: str, seed: int, name: Optional[str] = None) -> dict:
    """The product line of ``machine`` (a simulator model) in a dataset of ``seed``: every section
    is a unit of it. ``name``: the name its seeds are drawn from (default: ``machine``; a machine
    type rendered through an alias draws from its own seed name, see ``writer.seed_name``)."""
    from .base import sample_hall

    rng = np.random.default_rng(seed_sequence(seed, "product", name or machine))
    return {**get_machine(machine).sample_product(rng), "hall": sample_hall(rng)}


def unit_for(machine: str, section: str, seed: int, name: Optional[str] = None) -> dict:
    """Constants of the physical unit behind one section (same for every clip of it): one unit of
    the dataset's product line (:func:`product_for`) within manufacturing tolerances, and its
    installation. ``name`` as in :func:`product_for`."""
    rng = np.random.default_rng(seed_sequence(seed, "unit", name or machine, section))
    return get_machine(machine).sample_unit(rng, product_for(machine, seed, name))


def room_response(unit: dict, position: int, sr: int) -> np.ndarray:
    """Impulse response from the machine to microphone ``position`` (1 = near, 2 = far) of the
    unit's installation: the direct path (1/distance), a few early reflections (image sources of
    the floor and nearby walls) and an exponentially decaying diffuse tail of the unit's
    reverberation time. The diffuse level does not depend on the distance, so the far microphone
    hears the machine quieter and more reverberant. Scaled so that the near microphone's response
    has unit energy (the machine's level is defined there).
    """
    rng = np.random.default_rng(seed_sequence(int(unit["room_seed"]), "room"))
    rt60, d_near = float(unit["rt60_s"]), float(unit["mic_m"])
    n_tail = int(min(rt60, 0.6) * sr)
    tail_t = np.arange(n_tail) / sr
    tail_noise = rng.standard_normal(n_tail) * np.exp(-6.9 * tail_t / rt60)
    walls = rng.uniform(1.0, 8.0, 6)  # extra path lengths of the image sources (m)
    refl = rng.uniform(0.2, 0.5, 6)   # reflection coefficients (absorbing, cluttered surfaces)

    def one(d: float, pos_rng: np.random.Generator) -> np.ndarray:
        extra = walls * pos_rng.uniform(0.8, 1.25, len(walls))
        h = np.zeros(n_tail + int((d + extra.max()) / SOUND_SPEED * sr) + 2)
        h[0] = 1.0 / d
        for e, g in zip(extra, refl):
            h[int(round(e / SOUND_SPEED * sr))] += g / (d + e)
        onset = int(0.004 * sr)
        # diffuse energy: direct-to-reverberant ratio drr_db at 1 m, independent of distance
        tail = tail_noise * np.clip((tail_t * sr - onset) / onset, 0.0, 1.0)
        tail *= 10.0 ** (-float(unit["drr_db"]) / 20.0) / (np.sqrt(np.sum(tail ** 2)) + 1e-12)
        h[:n_tail] += tail
        return h

    near = one(d_near, np.random.default_rng(seed_sequence(int(unit["room_seed"]), "position", 1)))
    h = near if position == 1 else one(d_near * float(unit["far_ratio"]), np.random.default_rng(
        seed_sequence(int(unit["room_seed"]), "position", position)))
    return h / np.sqrt(np.sum(near ** 2))


def record(source: np.ndarray, sr: int, unit: dict, position: int = 1) -> np.ndarray:
    """The machine's source signal as microphone ``position`` of the unit's installation hears it
    (room response; the far position also loses some treble to air absorption and directivity)."""
    n = len(source)
    h = room_response(unit, position, sr)
    nfft = 1 << int(np.ceil(np.log2(n + len(h))))
    spec = np.fft.rfft(source, nfft) * np.fft.rfft(h, nfft)
    if position != 1:
        f = np.fft.rfftfreq(nfft, 1.0 / sr)
        spec *= (np.maximum(f, 1000.0) / 1000.0) ** -0.25
    return np.fft.irfft(spec, nfft)[:n]


def mic_position(params: dict) -> int:
    """Which microphone of the installation a clip was recorded with (the ``mic``/``loc`` attribute)."""
    return 2 if params.get("mic") == 2 or params.get("loc") == "B" else 1


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
        anomaly: an anomaly kind (fault) of this machine (see ``MACHINES[machine].kinds``) or ``None``.
        severity: in [0, 1]; 0 renders the healthy machine exactly.
        seed: everything random (unit constants if ``unit`` is not given, operating point, jitter,
            noise, background) derives from it.
        domain: ``"source"``, ``"target"`` or ``None`` (2020 layout, source conditions): picks the
            operating range and the background profile.
        unit: the section's unit constants (:func:`unit_for`); drawn from ``seed`` if omitted.
        background: mix the domain's factory background at the clip's SNR.
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
    # whatever the anomaly, so ``anomalous - normal`` is exactly what the fault changed
    rng_mix = np.random.default_rng(seed_sequence(seed, "mix", machine))
    rng_bg = np.random.default_rng(seed_sequence(seed, "background", machine))
    level_jitter = rng_mix.uniform(-1.0, 1.0)
    prof = PROFILES[m.background_profile(dom)]
    u_snr = rng_mix.uniform()  # the clip's deviation from its unit's SNR, unrelated to the label
    unit = dict(unit) if unit is not None else m.sample_unit(rng)
    snr_ref = clip_snr_db(unit, prof.snr_db, u_snr)
    p = m.sample_params(rng, unit, dom)
    if params:
        raw = {k: v for k, v in p.items() if k != "attrs"}
        raw.update(params)
        p = m.complete(raw, unit)
    p = {**p, "unit": unit}
    n = int(round(duration * sample_rate))
    ss = seed_sequence(seed, "machine", machine)
    healthy = m.render(p, n, sample_rate, np.random.default_rng(ss), None)
    sound = healthy
    if anomaly is not None and float(severity) > 0.0:
        fault = Fault(anomaly, float(severity), np.random.default_rng(seed_sequence(seed, "fault", machine, anomaly)))
        sound = m.render(p, n, sample_rate, np.random.default_rng(ss), fault)
    ref = dsp.rms(healthy.x) + 1e-12  # the healthy machine's level: a fault may make it louder
    pos = mic_position(p)
    y_healthy = record(healthy.x / ref, sample_rate, unit, pos)
    x = y_healthy if sound is healthy else record(sound.x / ref, sample_rate, unit, pos)
    snr = float("inf")
    if background:  # the SNR is the healthy machine's to the background's RMS at this microphone
        snr = float(snr_ref)
        x = x + render_background(n, sample_rate, rng_bg, prof) * dsp.rms(y_healthy) * 10.0 ** (-snr / 20.0)
    x = x * 10.0 ** ((LEVEL_DBFS + level_jitter) / 20.0)
    peak = float(np.max(np.abs(x))) if n else 0.0
    limited = peak > 0.99
    if limited:
        x *= 0.99 / peak
    audio = x.astype(np.float32)
    if not return_info:
        return audio
    p.pop("unit")
    info = ClipInfo(machine, domain, p, anomaly, float(severity) if anomaly else 0.0,
                    sound.onset_s, sound.offset_s, sound.band_hz, [round(float(t), 4) for t in sound.events_s],
                    round(float(snr), 2) if background else float("inf"), limited)
    if anomaly is None or sound is healthy:
        info.onset_s = info.offset_s = info.band_hz = None
        info.events_s = []
    return audio, info
