"""The simulator's fidelity at CI size, on one machine type: what reliably holds on a multi-unit set.

Gearbox, three units (sections) of one product line, DCASE 2022 layout, 16 + 2 training clips per
unit, 5 + 5 test clips per unit, domain and label, 4 s, factory background at -6..+6 dB, faults at
severity 0.5-1 (wear, tooth damage, misalignment).

**Fact 1 of the fidelity benchmark (a unit classifier beats the autoencoder) does not hold here, and
is not asserted.** Measured with this exact protocol (AE = synthetic recipe at 20 epochs; OS-SCL =
synthetic recipe at 2 s crops, 32 mels, batch 16, at most 30 epochs with its held-out stop rule) for
data seeds 0-4 x training seeds 0-2, one thread: mean per-section AUC AE 0.567 +- 0.034 (0.517-0.630),
OS-SCL 0.516 +- 0.079 (0.387-0.660); AE minus OS-SCL +0.050 +- 0.095 (-0.143 to +0.233), OS-SCL
ahead in 5 of 15 runs (measured before the writer's one-product-line fix of 2026-12-07, when each
section was its own product line). A test of either ordering would be a draw of the seeds, so the ranking lives
in docs/synth.md (fidelity, with the command) and this file checks the two things the ranking rests
on that held in every run:

* the units differ by their sound (issue 14: units of one type differ by the same physics): a
  nearest-centroid rule on the clip-mean log-mel, no training, tells the three units apart;
* the autoencoder finds the fault that adds energy (gear wear: mesh harmonics and broadband grow)
  -- per fault kind it scored wear 0.88 on average (0.75-0.97 over the 15 runs), tooth damage 0.49
  and misalignment 0.49: tooth damage (sidebands at nearly unchanged energy) and misalignment are
  what the AE misses and what a unit classifier would have to find.
"""

from __future__ import annotations

import csv

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
    with open(root / "metadata.csv", newline="") as fh:
        kind = {r["file"].rsplit("/", 1)[-1]: r["anomaly_kind"] for r in csv.DictReader(fh)}
    return train, test, [kind[c.path.name] for c in test]


def test_units_of_one_type_are_told_apart_by_their_sound(gearbox_units):
    """Nearest centroid of the standardised clip-mean log-mel (64 mels), centroids from the source
    training normals, on the test normals of both domains (15 + 15). Units of one product line differ
    only within manufacturing tolerances, so an untrained rule tells them apart well above chance
    (0.33) but not always: measured on data seeds 0-4 (after the writer's one-product-line fix),
    source / target / both: 0.47 / 0.93 / 0.70, 0.67 / 0.60 / 0.63, 0.87 / 0.87 / 0.87, 0.60 / 0.73 /
    0.67, 0.87 / 0.67 / 0.77 (seed 0 is the one here). Bound: 0.55 on both domains together (17 of
    30; at chance that has p < 0.01). Before the fix every section was its own product line and
    the rule scored 0.67-1.00 per domain."""
    import torch

    from auscult.features import FeatureConfig, LogMel

    train, test, _ = gearbox_units
    audio = AudioSource({"sample_rate": 16000}, memory=True)
    lm = LogMel(FeatureConfig(n_mels=64))

    def clip_means(clips):
        with torch.no_grad():
            return np.stack([lm(torch.from_numpy(np.asarray(w, dtype=np.float32))[None])[0].double().numpy().mean(1)
                             for w in audio.load_many(clips)])

    tr = [c for c in train if c.domain == "source"]
    x = clip_means(tr)
    mu, sd = x.mean(0), x.std(0) + 1e-9
    sec = np.array([c.section for c in tr])
    cent = np.stack([((x[sec == s] - mu) / sd).mean(0) for s in SECTIONS])
    te = [c for c in test if c.label == "normal"]
    z = (clip_means(te) - mu) / sd
    pred = np.array(SECTIONS)[((z[:, None, :] - cent[None]) ** 2).sum(-1).argmin(1)]
    hit = pred == np.array([c.section for c in te])
    per_domain = {d: float(hit[[c.domain == d for c in te]].mean()) for d in ("source", "target")}
    assert len(te) == 30 and float(hit.mean()) >= 0.55, (float(hit.mean()), per_domain)


@pytest.mark.usefixtures("one_thread")
def test_autoencoder_finds_the_fault_that_adds_energy(gearbox_units):
    """The AE's mean per-section AUC of the wear clips against the section's normals (measured
    0.75-0.97 over 5 data x 3 training seeds; data and training seed 0, the ones here: 0.88)."""
    train, test, kinds = gearbox_units
    cfg = load_recipe("synthetic/autoencoder")
    cfg["train"] = {**cfg["train"], "epochs": 20, "log_every": 0}
    audio = AudioSource(cfg["audio"], memory=True)
    ae = build_method("autoencoder", cfg, FitContext(seed=0, quiet=True)).fit(train, [], audio)
    scores = np.asarray(ae.score(test, audio), dtype=np.float64)
    per_section = []
    for s in SECTIONS:
        i = [k for k, c in enumerate(test) if c.section == s and (c.label == "normal" or kinds[k] == "wear")]
        per_section.append(auc([test[k].label == "anomaly" for k in i], scores[i]))
    print(f"\nAE on gearbox wear, per section: {np.round(per_section, 3)}")
    assert float(np.mean(per_section)) > 0.7, per_section
