"""One small physical model per machine type.

Each model is driven by operating parameters (speed, load, pattern, microphone position), has
per-unit constants (blade count, tooth counts, bearing geometry, resonances) drawn once per
section, and varies from clip to clip (rate jitter and drift, phases, noise realisations).
Anomaly components are scaled relative to the healthy machine's RMS by
:func:`auscult.data.synth.base.severity_gain`.
"""

from __future__ import annotations

from ..base import Machine
from .bearing import Bearing, bearing_frequencies
from .fan import Fan
from .gearbox import Gearbox
from .pump import Pump
from .slider import Slider
from .toys import ToyCar, ToyTrain
from .valve import Valve

MACHINES: dict[str, Machine] = {
    m.name: m for m in (Fan(), Pump(), Slider(), Valve(), Bearing(), Gearbox(), ToyCar(), ToyTrain())
}

__all__ = ["MACHINES", "Bearing", "Fan", "Gearbox", "Pump", "Slider", "ToyCar", "ToyTrain", "Valve",
           "bearing_frequencies"]
