"""The calibration promise: a simple detector lands roughly in 0.6-0.85 AUC on most machines.

Measured through the real writer (``difficulty.json``) on a reduced preset: all seven DCASE machine
types, 2-second clips, 36 training and 40 test clips each. Short clips and few test clips make the
numbers noisier (and a little harder) than on the 10-second presets; the dataset card of the
``small`` preset reports the full-length figures.
"""

from __future__ import annotations

import json

import numpy as np

from auscult.data.synth import generate_dataset
from auscult.data.synth.writer import DCASE_MACHINES, Preset


def test_mahalanobis_probe_lands_in_the_calibrated_band(tmp_path):
    preset = Preset("probe", "dcase2023", DCASE_MACHINES, ("00",), 30, 6, 10, 10, duration=2.0)
    root = generate_dataset(preset, tmp_path / "probe", seed=0, workers=2)
    auc = {m: v["all"] for m, v in json.loads((root / "difficulty.json").read_text()).items()}
    assert set(auc) == set(DCASE_MACHINES)
    values = np.array(list(auc.values()))
    assert 0.6 <= np.median(values) <= 0.85, auc
    inside = [m for m, a in auc.items() if 0.55 <= a <= 0.9]
    assert len(inside) >= 5, auc
    assert values.max() < 0.97, f"a machine is trivially easy: {auc}"
    assert values.min() > 0.5, f"a machine is hopeless for the probe: {auc}"
