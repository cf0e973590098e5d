"""The machine-model interface, anomaly kinds and the severity → amplitude law."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

#: dB span of the severity scale: severity 1 plays an anomaly at its kind's ``level_db``,
#: severity ``s`` at ``level_db - SEVERITY_RANGE_DB * (1 - s)``; severity 0 is silent.
SEVERITY_RANGE_DB = 24.0


def severity_gain(severity: float, level_db: float, range_db: float = SEVERITY_RANGE_DB) -> float:
    """Linear amplitude of an anomaly component relative to the unit-RMS healthy machine."""
    if severity <= 0.0:
        return 0.0
    s = min(float(severity), 1.0)
    return float(10.0 ** ((level_db - range_db * (1.0 - s)) / 20.0))


@dataclass(frozen=True)
class AnomalyKind:
    """One fault a machine model can play.

    Attributes:
        name: short id used in metadata (``outer_race``).
        description: what physically happens.
        region: ``"low"`` (< ~300 Hz), ``"mid"`` or ``"high"`` (> ~2.5 kHz): where the energy lands.
        level_db: component level at severity 1, relative to the healthy machine's RMS.
        localised: ``True`` when the fault lives in a time window (onset/offset recorded).
    """

    name: str
    description: str
    region: str
    level_db: float = -6.0
    localised: bool = False


@dataclass
class Rendered:
    """What a machine model returns: the healthy part, the anomaly part and where it lives."""

    base: np.ndarray
    extra: np.ndarray
    onset_s: Optional[float] = None
    offset_s: Optional[float] = None
    band_hz: Optional[tuple[float, float]] = None
    events_s: list = field(default_factory=list)


class Machine:
    """A small physical model of one machine type.

    Subclasses define ``name`` (DCASE machine type), ``kinds`` (anomaly kinds),
    :meth:`sample_unit` (constants of one physical unit, i.e. one section),
    :meth:`sample_params` (operating point of one clip, including its file-name attributes) and
    :meth:`render`.
    """

    name: str = ""
    kinds: dict[str, AnomalyKind] = {}
    #: which attribute carries the domain shift (documented in the dataset card)
    shift: str = ""

    def sample_unit(self, rng: np.random.Generator) -> dict:
        raise NotImplementedError

    def sample_params(self, rng: np.random.Generator, unit: dict, domain: str) -> dict:
        """Operating point of one clip. Must contain ``attrs``: ordered ``[(key, value_str), ...]``."""
        raise NotImplementedError

    def complete(self, params: dict, unit: dict) -> dict:
        """Derived quantities (fault frequencies, mesh rate...) and ``attrs`` from raw parameters."""
        raise NotImplementedError

    def render(self, params: dict, n: int, sr: int, rng: np.random.Generator,
               kind: Optional[str], severity: float) -> Rendered:
        raise NotImplementedError

    # helpers ------------------------------------------------------------------------------
    def gain(self, kind: Optional[str], wanted: str, severity: float) -> float:
        """Amplitude of ``wanted`` in this clip: 0 unless the clip plays that kind."""
        if kind != wanted:
            return 0.0
        return severity_gain(severity, self.kinds[wanted].level_db)

    def describe(self) -> str:
        return (self.__doc__ or self.name).strip().splitlines()[0]
