"""Fact 1 of the simulator's fidelity benchmark (benchmarks/bench_fidelity.py, docs/synth.md) at CI
size, for one machine type: on a multi-unit set, the unit classifier (OS-SCL, its synthetic recipe
made smaller) ranks anomalies better than the DCASE autoencoder baseline, as on DCASE 2020/2022.

Gearbox, three units (sections) of one product line, factory background at -6..+6 dB, faults at
severity 0.5-1. The classes OS-SCL learns are the three units, which differ by the same mesh and
casing structure the gearbox faults disturb."""

from __future__ import annotations

import numpy as np
import pytest

from auscult.data.source import AudioSource
from auscult.eval.metrics import auc
from auscult.methods import FitContext, build_method
from auscult.recipes import load_recipe

SECTIONS = ("00", "01", "02")


@pytest.fixture(scope="module")
def gearbox_units(synth_once):
    from auscult.data.index import DatasetIndex
    from auscult.data.synth import Preset, generate_dataset

    preset = Preset("fidelity-gearbox", "dcase2022", ("gearbox",), SECTIONS, 16, 2, 5, 5, 4.0)
    root = synth_once("fidelity_gearbox_units", lambda out: generate_dataset(
        preset, out, seed=0, severity_range=(0.5, 1.0), workers=1, overwrite=True, probe=False))
    idx = DatasetIndex.scan(root)
    train = sorted(idx.select(split="train"), key=lambda c: str(c.path))
    test = sorted(idx.select(split="test"), key=lambda c: str(c.path))
    return train, test


def mean_section_auc(test, scores) -> float:
    out = []
    for sec in SECTIONS:
        idx = [i for i, c in enumerate(test) if c.section == sec]
        out.append(auc([test[i].label == "anomaly" for i in idx], scores[idx]))
    return float(np.mean(out))


@pytest.mark.xfail(strict=False, reason=(
    "Fact 1 does not hold at CI size (issue 14 finding, benchmarks/diag_fidelity_size.py, 3 data seeds, 10 + 10 "
    "test clips per unit and domain): at 16 training clips per unit AE 0.638 +- 0.020 vs OS-SCL 0.514 +- 0.034 "
    "(this test's held-out stop rule ends it after 3-5 epochs: units told apart on 0.40-0.47 of the test normals, "
    "chance 0.33) or 0.531 +- 0.047 "
    "(fixed 30 epochs); the gap narrows with data and stays: at 160 clips per unit AE 0.630 +- 0.034 vs OS-SCL "
    "(fixed 30 epochs) 0.616 +- 0.019, at 400 0.634 +- 0.037 vs 0.607 +- 0.036 (ahead on seed 0 only). "
    "See docs/synth.md, fidelity."))
@pytest.mark.usefixtures("one_thread")
def test_unit_classifier_beats_the_autoencoder_on_units_of_one_type(gearbox_units):
    train, test = gearbox_units
    ae_cfg = load_recipe("synthetic/autoencoder")
    ae_cfg["train"] = {**ae_cfg["train"], "epochs": 20, "log_every": 0}
    ae_audio = AudioSource(ae_cfg["audio"], memory=True)
    ae = build_method("autoencoder", ae_cfg, FitContext(seed=0, quiet=True)).fit(train, [], ae_audio)
    ae_auc = mean_section_auc(test, ae.score(test, ae_audio))

    cfg = load_recipe("synthetic/osscl")
    cfg["audio"] = {**cfg["audio"], "duration": 2.0}
    cfg["features"] = {**cfg["features"], "n_mels": 32}
    cfg["train"] = {**cfg["train"], "epochs": 30, "batch_size": 16, "log_every": 0}
    audio = AudioSource(cfg["audio"], memory=True)
    val = train[::9]
    os_ = build_method("osscl", cfg, FitContext(seed=0, quiet=True)).fit(
        [c for c in train if c not in val], val, audio)
    os_auc = mean_section_auc(test, os_.score(test, audio))
    print(f"\nmean per-section AUC on 3 gearbox units: AE {ae_auc:.3f}, OS-SCL {os_auc:.3f}")
    assert os_auc > ae_auc, (os_auc, ae_auc)
