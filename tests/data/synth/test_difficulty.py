"""The difficulty probe through the real writer (``difficulty.json``): the factory background is what
makes the simulator hard for a detector that looks at the clip-mean spectrum.

The probe (per-section Mahalanobis distance on the clip-mean log-mel) is the simplest
reconstruction-free stand-in for a spectrum-level detector. With the background (a per-clip mixture
at -6 to +6 dB SNR) it must be neither hopeless nor trivial; without it, the same faults must be
clearly easier to find -- as on MIMII / DCASE, where factory noise is what defeats such detectors.
Reduced preset: all seven DCASE machine types, 2-second clips, 36 training and 40 test clips each
(noisier than the 10-second presets, whose figures are in their dataset cards).
"""

from __future__ import annotations

import json

import numpy as np

from auscult.data.synth import generate_dataset
from auscult.data.synth.writer import DCASE_MACHINES, Preset


def _probe(tmp_path, background: bool) -> dict:
    preset = Preset("probe", "dcase2023", DCASE_MACHINES, ("00",), 30, 6, 10, 10, duration=2.0)
    root = generate_dataset(preset, tmp_path / f"probe-{background}", seed=0, workers=2, background=background)
    return {m: v["source"] for m, v in json.loads((root / "difficulty.json").read_text()).items()}


def test_background_makes_the_probe_hard_but_not_hopeless(tmp_path):
    noisy, clean = _probe(tmp_path, True), _probe(tmp_path, False)
    assert set(noisy) == set(clean) == set(DCASE_MACHINES)
    a, b = np.array([noisy[m] for m in DCASE_MACHINES]), np.array([clean[m] for m in DCASE_MACHINES])
    assert 0.5 < np.median(a) < 0.8, noisy
    assert a.max() < 0.97, f"a machine is trivially easy with background: {noisy}"
    assert np.median(b) > np.median(a) + 0.05, (noisy, clean)
    assert np.sum(b > a) >= 5, (noisy, clean)
