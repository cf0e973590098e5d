"""Helpers for the monitoring tests (a uniquely named module: ``from conftest import`` could pick up
another directory's conftest when several test folders are collected together).

Fault-injection clips come from the simulator (``render_clip(..., return_info=True)``), whose
metadata records the fault's time window and frequency band.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SR = 16000
REC_S = 3.0        # seconds per simulated recording
WINDOW_S = 1.5     # bundle window: 2 windows per recording
N_RECORDINGS = 16


def render(seed: int, anomaly=None, severity: float = 1.0, duration: float = REC_S, info: bool = False,
           background: bool = True):
    from auscult.data.synth import render_clip
    from auscult.data.synth.render import unit_for

    return render_clip("fan", unit=unit_for("fan", "00", 0), seed=seed, duration=duration, anomaly=anomaly,
                       severity=severity, return_info=info, background=background)


def write_wav(path: Path, x: np.ndarray, sr: int = SR) -> Path:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sr)
    return path
