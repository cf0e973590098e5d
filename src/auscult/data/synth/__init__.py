"""The machine-sound simulator: physically modelled machines, domain shift, graded anomalies.

Python API::

    from auscult.data.synth import generate_dataset, render_clip, MACHINES, PRESETS
    root = generate_dataset("small", "data/synth-small", seed=0, workers=2)
    audio = render_clip("bearing", {"vel": 12}, anomaly="outer_race", severity=0.8, seed=3)

The CLI is ``auscult synth`` (see ``docs/synth.md``). Names are imported lazily so that
``auscult --help`` (which imports :mod:`auscult.data.synth.cli`) does not load numpy/scipy.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "SEVERITY_RANGE_DB": "base", "AnomalyKind": "base", "Machine": "base", "severity_gain": "base",
    "MACHINES": "machines", "bearing_frequencies": "machines",
    "ClipInfo": "render", "render_clip": "render", "unit_for": "render",
    "PRESETS": "writer", "Preset": "writer", "SynthConfig": "writer", "generate_dataset": "writer",
    "load_metadata": "writer", "plan": "writer", "regenerate": "writer",
    "MACHINE_ALIASES": "writer", "machine_model": "writer",
    "PROFILES": "background", "BackgroundProfile": "background",
    "render_previews": "preview",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__
