"""End to end on a simulated DCASE 2026 tree: `auscult run dcase2026/<method>` -> official files + 2026 table.

The tree comes from the simulator's ``dcase2026`` preset (two-microphone clips, noise attribute in
the names); the runs use the shipped recipes with small nets and one epoch through ``--set``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from auscult.cli import app

SMALL = ["train.epochs=1", "train.batch_size=256", "model.hidden=32", "model.n_layers=2", "data.holdout=0.2"]


def _two_col(path: Path) -> dict[str, str]:
    with open(path, newline="") as f:
        return {r[0]: r[1] for r in csv.reader(f)}


@pytest.fixture(scope="module")
def tree26(tmp_path_factory):
    from auscult.data.synth import PRESETS, generate_dataset

    p = replace(PRESETS["dcase2026"], train_source=8, train_target=2, test_normal=3, test_anomaly=3, duration=1.0)
    return generate_dataset(p, tmp_path_factory.mktemp("synth2026") / "d", seed=1, machines=["fan", "valve"],
                            workers=1, probe=False)


def _run(recipe: str, data: Path, out: Path, cache: Path, *extra: str):
    sets = sum((["--set", s] for s in SMALL + list(extra)), [])
    res = CliRunner().invoke(app, ["run", recipe, "--data", str(data), "--out", str(out), "--device", "cpu",
                                   "--quiet", *sets], env={"AUSCULT_CACHE": str(cache), "AUSCULT_QUIET": "1"})
    assert res.exit_code == 0, res.output + repr(res.exception)
    return out


@pytest.mark.parametrize("recipe", ["dcase2026/autoencoder", "dcase2026/autoencoder_mc"])
def test_auscult_run_dcase2026_end_to_end(recipe, tree26, tmp_path):
    from auscult.data.index import DatasetIndex
    from auscult.data.groundtruth import read_ground_truth

    run = _run(recipe, tree26, tmp_path / "run", tmp_path / "cache")
    meta = json.loads((run / "run.json").read_text())
    assert meta["year"] == 2026 and meta["stage"] == "evaluated"
    idx = DatasetIndex.scan(tree26)
    for machine in ("fan", "valve"):
        tests = {c.name for c in idx.select(machine=machine, split="test")}
        assert len(tests) == 12 and all(n.rsplit("_", 2)[-2] == "noise" for n in tests)
        scores = _two_col(run / "submission" / f"anomaly_score_{machine}_section_00_test.csv")
        decisions = _two_col(run / "submission" / f"decision_result_{machine}_section_00_test.csv")
        assert set(scores) == tests == set(decisions)
        assert all(np.isfinite(float(v)) for v in scores.values()) and set(decisions.values()) <= {"0", "1"}
    assert len(read_ground_truth(run / "ground_truth", 2026)) == 24
    # the 2026 table: AUC (source), AUC (target), pAUC per machine type and their harmonic mean
    result = json.loads((run / "report" / "result.json").read_text())
    assert result["year"] == 2026 and result["protocol"] == "dcase2022-2026"
    assert {r["machine"] for r in result["machines"]} == {"fan", "valve"}
    rows = result["rows"]
    vals = [r[k] for r in rows for k in ("auc_source_vs_all_anomalies", "auc_target_vs_all_anomalies", "pauc_mcclish")]
    assert result["official_score"] == pytest.approx(len(vals) / sum(1.0 / max(v, 1e-12) for v in vals))


def test_autoencoder_mc_trains_on_both_mics_and_scores_the_one_asked(tree26, tmp_path):
    """Both channels reach training (twice the stacked vectors of the near-only run); the scores of
    ``mics.score=far`` equal scoring the far channel alone, and differ from the near mic's."""
    from auscult.data.index import DatasetIndex
    from auscult.data.source import AudioSource
    from auscult.methods import FitContext, build_method

    idx = DatasetIndex.scan(tree26)
    train = list(idx.select(machine="fan", split="train"))
    test = list(idx.select(machine="fan", split="test"))
    cfg = {"audio": {"sample_rate": 16000, "channel": "both", "length": "keep"},
           "features": {"n_fft": 1024, "hop_length": 512, "n_mels": 32, "power": 2.0},
           "model": {"context": 3, "hidden": 16, "bottleneck": 4, "n_layers": 1, "normalize": True},
           "train": {"epochs": 1, "batch_size": 64}, "score": {"kind": "mse"}}
    both = AudioSource(cfg["audio"])
    m = build_method("autoencoder_mc", cfg, FitContext(seed=0, quiet=True))
    m._training = True
    n_both = len(m.features(train, both))
    m._training = False
    near_only = build_method("autoencoder_mc", {**cfg, "mics": {"train": "near"}}, FitContext(seed=0, quiet=True))
    near_only._training = True
    assert n_both == 2 * len(near_only.features(train, both))
    m.fit(train, [], both)
    far_cfg = build_method("autoencoder_mc", {**cfg, "mics": {"score": "far"}})
    far_cfg.load_state_dict(m.state_dict())
    s_far_both = far_cfg.score(test, both)
    s_far_mono = m.score(test, AudioSource({**cfg["audio"], "channel": "far"}))
    s_near = m.score(test, both)
    np.testing.assert_allclose(s_far_both, s_far_mono, rtol=1e-6)
    np.testing.assert_allclose(s_near, m.score(test, AudioSource({**cfg["audio"], "channel": "near"})), rtol=1e-6)
    assert not np.allclose(s_near, s_far_mono)
    assert m.state_dict()["mics"] == {"train": "both", "score": "near", "norm": "shared", "backend": "shared"}
    assert "mic_norms" not in m.state_dict() and "mic_backends" not in m.state_dict()


@pytest.mark.parametrize("recipe,extra", [("dcase2026/autoencoder_mc", ()),
                                          ("dcase2026/autoencoder_mc", ("mics.norm=shared", "mics.backend=shared")),
                                          ("dcase2026/autoencoder", ("audio.channel=auto",))])
def test_a_2026_run_becomes_a_bundle_that_scores_as_the_run_did(recipe, extra, tree26, tmp_path):
    """The run's windows are the clips' length (not the channel count of a [2, T] clip), and the bundle
    scores the stereo clip itself, and a near-mic-only mono recording, exactly as the run scored the
    clip's near mic: the both-mic method's declared mic; the near-only AE's ``auto`` resolved with the
    run's year (2026 -> near), not the mean of the two mics."""
    import warnings

    import soundfile as sf

    from auscult.monitor.bundle import bundle_from_run, load_bundle

    run = _run(recipe, tree26, tmp_path / "run", tmp_path / "cache", "data.machines=[fan]", *extra)
    with open(run / "scores" / "test_scores.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    bundle_from_run(run, tmp_path / "b.auscult")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bundle = load_bundle(tmp_path / "b.auscult")
    assert bundle.window_samples == 16000  # 1 s clips
    assert bundle.channel("fan.section_00") == "near"
    for r in rows[:3]:
        x, sr = sf.read(r["path"], dtype="float32")
        assert x.shape[1] == 2
        mono = tmp_path / "near_only.wav"
        sf.write(mono, x[:, 0], sr, subtype="FLOAT")
        assert bundle.score_file(mono, machine="fan.section_00").score == pytest.approx(float(r["score"]), rel=1e-5)
        assert bundle.score_file(r["path"], machine="fan.section_00").score == \
            pytest.approx(float(r["score"]), rel=1e-5)
        assert bundle.score_waveform(x, sr, machine="fan.section_00").score == \
            pytest.approx(float(r["score"]), rel=1e-5)
