"""The machine-model interface, anomaly kinds (faults) and the severity laws.

A machine model renders the sound of one physical unit at one operating point. A fault is not a
sound added on top of the machine: it changes the machine's own parameters (a larger imbalance, a
damaged tooth that modulates the mesh, a slipping belt) or, where the physics is additive (impacts
of a spalled bearing race, bubbles collapsing, a leak jet), adds a source that excites the same
structure as the healthy machine. The renderer draws the healthy machine and the faulty one from
identical random streams (fault-specific randomness comes from a separate stream), so
``faulty - healthy`` is exactly what the fault changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

#: dB span of the "geometric" severity law: a quantity that is absent in a healthy machine (a
#: modulation depth, an impact amplitude) is ``at_1 * 10**(-SEVERITY_RANGE_DB * (1 - s) / 20)`` at
#: severity ``s`` (see :func:`severity_gain`); severity 0 is exactly the healthy machine.
SEVERITY_RANGE_DB = 24.0


def severity_gain(severity: float, level_db: float, range_db: float = SEVERITY_RANGE_DB) -> float:
    """Linear amplitude ``10**((level_db - range_db*(1 - s))/20)`` (0 at severity 0)."""
    if severity <= 0.0:
        return 0.0
    s = min(float(severity), 1.0)
    return float(10.0 ** ((level_db - range_db * (1.0 - s)) / 20.0))


@dataclass(frozen=True)
class AnomalyKind:
    """One fault a machine model can play.

    Attributes:
        name: short id used in metadata (``outer_race``).
        description: the mechanism in one line (what physically changes), with a reference where
            one exists.
        region: ``"low"`` (< ~300 Hz), ``"mid"`` or ``"high"`` (> ~2.5 kHz): where the change lands.
        level_db: size of the change at severity 1 in dB (the growth of the affected component, or
            of the added source relative to the healthy machine); severities below 1 scale it down.
        localised: ``True`` when the fault lives in a time window (onset/offset recorded).
    """

    name: str
    description: str
    region: str
    level_db: float = -6.0
    localised: bool = False


@dataclass(frozen=True)
class Fault:
    """The fault a clip plays: its kind, severity in (0, 1] and its own random stream."""

    kind: str
    severity: float
    rng: np.random.Generator

    def grow(self, db_at_1: float) -> float:
        """Factor by which a quantity grows: ``db_at_1 * severity`` dB (1 at severity 0)."""
        return float(10.0 ** (db_at_1 * self.severity / 20.0))

    def amount(self, at_1: float, range_db: float = SEVERITY_RANGE_DB) -> float:
        """A quantity absent in a healthy machine: ``at_1`` at severity 1, ``range_db`` dB less at 0+."""
        return at_1 * severity_gain(self.severity, 0.0, range_db)


@dataclass
class Sound:
    """What a machine model returns: the sound at the source (before microphone and room) and, for
    a faulty clip, where the fault's change lives."""

    x: np.ndarray
    onset_s: Optional[float] = None
    offset_s: Optional[float] = None
    band_hz: Optional[tuple[float, float]] = None
    events_s: list = field(default_factory=list)


def sample_hall(rng: np.random.Generator) -> dict:
    """The hall a product line's units run in: its reverberation time and direct-to-reverberant
    ratio at 1 m."""
    return {"rt60_s": float(rng.uniform(0.15, 0.5)), "drr_db": float(rng.uniform(3.0, 10.0))}


def sample_installation(rng: np.random.Generator, hall: Optional[dict] = None) -> dict:
    """Where a unit stands in its hall: near-microphone distance, how much farther the far
    microphone is, the local reverberation (the hall's, +-30 %: a corner, an open bay...), the seed
    of its reflections (see :func:`auscult.data.synth.render.room_response`) and ``snr_q``: where in
    the factory profile's SNR range (-6..+6 dB) this unit's microphone sits (how close the hall's
    other sources are). A microphone at a fixed spot hears the hall's background at a level that
    changes by a few dB from clip to clip, not by the whole range (MIMII mixed each release at one
    SNR: -6, 0 or +6 dB); see :func:`clip_snr_db`."""
    hall = hall or sample_hall(rng)
    inst = {"mic_m": float(rng.uniform(0.3, 1.0)), "far_ratio": float(rng.uniform(1.6, 2.5)),
            "rt60_s": float(hall["rt60_s"] * rng.uniform(0.7, 1.3)),
            "drr_db": float(hall["drr_db"] + rng.uniform(-3.0, 3.0)), "room_seed": int(rng.integers(0, 2 ** 31))}
    # derived from the room's seed, so that the caller's stream is consumed as before
    inst["snr_q"] = float(np.random.default_rng([inst["room_seed"], 5]).uniform())
    return inst


#: clip-to-clip spread (dB, uniform +-) of the background level at one unit's microphone
SNR_CLIP_SPREAD_DB = 2.0


def clip_snr_db(unit: dict, snr_range, u_clip: float) -> float:
    """A clip's machine-to-background ratio: the unit's place in ``snr_range`` (``unit["snr_q"]``,
    0.5 for a unit dict without it) plus a per-clip deviation of +-:data:`SNR_CLIP_SPREAD_DB`
    (``u_clip`` uniform in [0, 1), drawn whatever the label), kept inside ``snr_range``."""
    lo, hi = float(snr_range[0]), float(snr_range[1])
    mid = lo + float(unit.get("snr_q", 0.5)) * (hi - lo)
    return float(np.clip(mid + SNR_CLIP_SPREAD_DB * (2.0 * u_clip - 1.0), lo, hi))


class Machine:
    """A small physical model of one machine type.

    Subclasses define ``name`` (DCASE machine type), ``kinds`` (faults), :meth:`sample_product`
    (the product line's design) and :meth:`unit_constants` (one physical unit, i.e. one section:
    the design within manufacturing tolerances),
    :meth:`sample_params` (operating point of one clip, including its file-name attributes) and
    :meth:`render`.
    """

    name: str = ""
    kinds: dict[str, AnomalyKind] = {}
    #: which attribute carries the domain shift (documented in the dataset card)
    shift: str = ""
    #: what the target domain changes, as in DCASE 2021-2025: ``"operating"`` (an operating
    #: condition; both domains in the same factory) or ``"background"`` (same operating range, the
    #: machine moved to another factory)
    shift_factor: str = "operating"

    def background_profile(self, domain: str) -> str:
        """Key of :data:`auscult.data.synth.background.PROFILES` for a clip of ``domain``."""
        return domain if self.shift_factor == "background" else "source"

    def sample_unit(self, rng: np.random.Generator, product: Optional[dict] = None) -> dict:
        """Constants of one unit: its product line's design (:meth:`sample_product`, drawn from
        ``rng`` when not given) within the unit's manufacturing tolerances (:meth:`unit_constants`),
        and its installation (microphone distance, room; see :func:`sample_installation`)."""
        if product is None:
            product = {**self.sample_product(rng), "hall": sample_hall(rng)}
        u = self.unit_constants(rng, {k: v for k, v in product.items() if k != "hall"})
        u.update(sample_installation(rng, product.get("hall")))
        return u

    def sample_product(self, rng: np.random.Generator) -> dict:
        """The nominal design of a product line (blade and tooth counts, bearing geometry, nominal
        resonances and harmonic patterns): shared by every unit (section) of a dataset."""
        raise NotImplementedError

    def unit_constants(self, rng: np.random.Generator, product: dict) -> dict:
        """One unit of the product line: the nominal design off by manufacturing tolerances
        (resonance frequencies and damping, harmonic amplitudes, residual imbalance, speed...)."""
        raise NotImplementedError

    def sample_params(self, rng: np.random.Generator, unit: dict, domain: str) -> dict:
        """Operating point of one clip. Must contain ``attrs``: ordered ``[(key, value_str), ...]``."""
        raise NotImplementedError

    def complete(self, params: dict, unit: dict) -> dict:
        """Derived quantities (fault frequencies, mesh rate...) and ``attrs`` from raw parameters."""
        raise NotImplementedError

    def render(self, params: dict, n: int, sr: int, rng: np.random.Generator,
               fault: Optional[Fault]) -> Sound:
        """The machine's sound. Every draw from ``rng`` must happen whatever ``fault`` is (the
        healthy and the faulty clip share it); fault-only randomness comes from ``fault.rng``."""
        raise NotImplementedError

    # helpers ------------------------------------------------------------------------------
    @staticmethod
    def severity(fault: Optional[Fault], kind: str) -> float:
        """The clip's severity of ``kind`` (0 unless the clip plays that kind)."""
        return fault.severity if fault is not None and fault.kind == kind else 0.0

    def describe(self) -> str:
        return (self.__doc__ or self.name).strip().splitlines()[0]
