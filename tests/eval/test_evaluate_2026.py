"""DCASE 2026 evaluation: submission names, the official protocol on a hand-worked case, the
evaluation-set path (anonymised names, two-channel clips), and `auscult run` on a 2026 tree.

The expected numbers are worked out by hand in the comments (or by the independent reference
implementations in tests/eval/test_metrics.py), never copied from the implementation.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from auscult.audio import AudioConfig
from auscult.cli import app
from auscult.data import DatasetIndex
from auscult.data.groundtruth import read_ground_truth, write_ground_truth
from auscult.data.source import AudioSource
from auscult.eval.demo import demo_scored_clips
from auscult.eval.protocols import evaluate_scores, protocol_name
from auscult.eval.submission import evaluate_submission, submission_filename, write_submission
from tests.data.gen2026 import write_clip
from tests.eval.test_metrics import hand_roc, mann_whitney_auc, mcclish, partial_area

runner = CliRunner()


def test_2026_submission_and_ground_truth_names():
    # as the organisers' 2026 baseline writes them (and 2026 submission packages use them)
    assert submission_filename("anomaly_score", "ToyDrone", "00", 2026) == "anomaly_score_ToyDrone_section_00_test.csv"
    assert submission_filename("decision_result", "BlowerDustCollector", "00", 2026) == \
        "decision_result_BlowerDustCollector_section_00_test.csv"
    assert protocol_name(2026) == protocol_name(2023) == "dcase2022-2026"


# ------------------------------------------------------------------ a hand-worked 2026 case
# One machine type (ToyCarEmu, section 00), eval-set names anonymised (section_00_0000.wav ...).
#   source normals  1, 2, 3, 4          target normals  2.5, 5, 6, 7
#   source anomalies 4.5, 8             target anomalies 3.5, 9
# AUC(source) = source normals vs all 4 anomalies: 4.5 beats 4 normals, 8 beats 4, 3.5 beats 3,
#   9 beats 4 -> 15/16.
# AUC(target) = target normals vs all anomalies: 4.5 beats 1 (2.5), 8 beats 4, 3.5 beats 1, 9 beats 4
#   -> 10/16.
# pAUC (p = 0.1) over all 12 clips: in descending order 9 A, 8 A, 7 N, ...: TPR is 2/4 before the
#   first normal, whose FPR step (1/8) already passes 0.1, so the raw partial area is 0.5 * 0.1 = 0.05;
#   McClish: 0.5 * (1 + (0.05 - 0.005) / (0.1 - 0.005)) = 0.5 * (1 + 9/19) = 14/19.
# Official score = 3 / (16/15 + 16/10 + 19/14) = 3 * 210 / (224 + 336 + 285) = 630/845 = 126/169.
# Decisions (threshold 4.75): source clips -> TP 1 (8), FN 1 (4.5), FP 0: P 1, R 1/2, F1 2/3;
#   target clips -> TP 1 (9), FN 1 (3.5), FP 3 (5, 6, 7): P 1/4, R 1/2, F1 1/3.
HAND = [  # (domain, label, score)
    ("source", 0, 1.0), ("source", 0, 2.0), ("source", 0, 3.0), ("source", 0, 4.0),
    ("target", 0, 2.5), ("target", 0, 5.0), ("target", 0, 6.0), ("target", 0, 7.0),
    ("source", 1, 4.5), ("source", 1, 8.0), ("target", 1, 3.5), ("target", 1, 9.0),
]


def _write_hand_case(root: Path, attribute_names: bool = False) -> None:
    order = [11, 3, 7, 0, 9, 5, 1, 10, 4, 8, 2, 6]  # anonymised names do not follow the labels
    gt_data, gt_dom, gt_attr, scores, decisions = [], [], [], [], []
    for k, i in enumerate(order):
        dom, lab, s = HAND[i]
        name = f"section_00_{k:04d}.wav"
        real = f"section_00_{dom}_test_{'anomaly' if lab else 'normal'}_{k:04d}_car_A1_noise_{1 if dom == 'source' else 2}"
        gt_data.append(f"{name},{lab}")
        gt_dom.append(f"{name},{0 if dom == 'source' else 1}")
        gt_attr.append(f"{name},{real}")
        shown = f"{real}.wav" if attribute_names and k % 2 else name
        scores.append(f"{shown},{s}")
        decisions.append(f"{shown},{int(s > 4.75)}")
    for sub, rows in (("ground_truth_data", gt_data), ("ground_truth_domain", gt_dom),
                      ("ground_truth_attributes", gt_attr)):
        (root / "gt" / sub).mkdir(parents=True, exist_ok=True)
        (root / "gt" / sub / "ground_truth_ToyCarEmu_section_00_test.csv").write_text("\n".join(rows) + "\n")
    (root / "sub").mkdir(exist_ok=True)
    (root / "sub" / "anomaly_score_ToyCarEmu_section_00_test.csv").write_text("\n".join(scores[::-1]) + "\n")
    (root / "sub" / "decision_result_ToyCarEmu_section_00_test.csv").write_text("\n".join(decisions) + "\n")


@pytest.mark.parametrize("attribute_names", [False, True])
def test_cli_evaluate_2026_hand_worked(tmp_path, attribute_names):
    _write_hand_case(tmp_path, attribute_names)
    res = runner.invoke(app, ["evaluate", "--scores", str(tmp_path / "sub"), "--ground-truth", str(tmp_path / "gt"),
                              "--year", "2026", "--json"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.output)
    assert r["year"] == 2026 and r["protocol"] == "dcase2022-2026"
    (row,) = r["rows"]
    assert row["auc_source_vs_all_anomalies"] == pytest.approx(15 / 16, abs=1e-12)
    assert row["auc_target_vs_all_anomalies"] == pytest.approx(10 / 16, abs=1e-12)
    assert row["pauc_mcclish"] == pytest.approx(14 / 19, abs=1e-12)
    assert r["official_score"] == pytest.approx(126 / 169, abs=1e-12)
    assert float(Fraction(126, 169)) == pytest.approx(3 / (16 / 15 + 16 / 10 + 19 / 14))
    assert (row["precision_source"], row["recall_source"], row["f1_source"]) == pytest.approx((1, 1 / 2, 2 / 3))
    assert (row["precision_target"], row["recall_target"], row["f1_target"]) == pytest.approx((1 / 4, 1 / 2, 1 / 3))
    assert (row["n_normal_source"], row["n_normal_target"], row["n_anomaly_source"], row["n_anomaly_target"]) == (4, 4, 2, 2)


def test_cli_evaluate_guesses_the_2022_2026_protocol(tmp_path):
    _write_hand_case(tmp_path)
    res = runner.invoke(app, ["evaluate", "--scores", str(tmp_path / "sub"), "--ground-truth", str(tmp_path / "gt")])
    assert res.exit_code == 0, res.output
    assert "2022-2026 protocol" in res.output and "official score: 0.7456" in res.output  # 126/169 = 0.74556


def test_2026_protocol_on_the_eval_machine_types_matches_references(tmp_path):
    machines = ("ToyDrone", "ToothBrush", "SewingMachine", "BlowerDustCollector", "Sander")
    clips, scores, dec = demo_scored_clips(2026, machines=machines, n_per_domain=15, seed=11)
    write_ground_truth(clips, tmp_path / "gt", 2026)
    write_submission(clips, scores, dec, tmp_path / "sub", 2026)
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == sorted(
        f"{k}_{m}_section_00_test.csv" for m in machines for k in ("anomaly_score", "decision_result"))
    assert len(read_ground_truth(tmp_path / "gt", 2026)) == len(clips)
    r = evaluate_submission(tmp_path / "sub", tmp_path / "gt", 2026)
    values = []
    for m in machines:
        idx = [i for i, c in enumerate(clips) if c.machine == m]
        y = np.array([clips[i].label == "anomaly" for i in idx], dtype=int)
        d = np.array([clips[i].domain for i in idx])
        s = scores[idx]
        src, tgt = (y == 1) | (d == "source"), (y == 1) | (d == "target")
        values += [mann_whitney_auc(y[src], s[src]), mann_whitney_auc(y[tgt], s[tgt]),
                   mcclish(partial_area(hand_roc(y, s), 0.1), 0.1)]
    assert r.official_score == pytest.approx(len(values) / sum(1 / v for v in values), abs=1e-12)
    assert r.to_dict() == evaluate_scores(clips, scores, 2026, decisions=dec).to_dict()


# ------------------------------------------------------------------ the evaluation-set path
def test_eval_set_with_anonymised_two_channel_clips(tmp_path):
    """An evaluation-set tree (training clips with attributes, anonymised test names, two channels)
    -> scan (2026 from the channel counts) -> ground truth joined -> scored per channel policy ->
    official submission files -> evaluated. Every clip is constant per channel: near 0.1 for normals
    and 0.3 for anomalies, far 0.4 for normals and 0.2 for anomalies (a noisy far mic that hides the
    fault), so the RMS score ranks every anomaly above every normal on the near channel (AUCs 1,
    pAUC 1, official 1) and below every normal on the far channel (AUCs 0; pAUC: raw area 0 ->
    McClish 0.5 * (1 - 0.005/0.095) = 9/19)."""
    root = tmp_path / "eval_data" / "raw"
    truth = []
    for m in ("Sander", "ToyDrone"):
        for i in range(3):
            write_clip(root / m / "train" / f"section_00_source_train_normal_{i:04d}_noise_1.wav", 0.1, 0.4)
        write_clip(root / m / "train" / "section_00_target_train_normal_0000_noise_2.wav", 0.1, 0.4)
        k = 0
        for dom in ("source", "target"):
            for lab in (1, 0, 0, 1, 0):
                name = f"section_00_{k:04d}.wav"
                write_clip(root / m / "test" / name, 0.3 if lab else 0.1, 0.2 if lab else 0.4)
                truth.append((m, name, lab, dom))
                k += 1
    for sub, col in (("ground_truth_data", 2), ("ground_truth_domain", 3)):
        for m in ("Sander", "ToyDrone"):
            (tmp_path / "gt" / sub).mkdir(parents=True, exist_ok=True)
            rows = [f"{t[1]},{t[col] if col == 2 else int(t[3] == 'target')}" for t in truth if t[0] == m]
            (tmp_path / "gt" / sub / f"ground_truth_{m}_section_00_test.csv").write_text("\n".join(rows) + "\n")

    ix = DatasetIndex.scan(tmp_path / "eval_data")
    assert {c.year for c in ix.clips} == {2026} and ix.channel_counts() == {2: len(ix)}
    tests = ix.select(split="test")
    assert {(c.layout, c.label, c.domain) for c in tests} == {("dcase-anonymous", None, None)}
    ix = ix.join_ground_truth(tmp_path / "gt")  # the 2022-2026 layout is detected
    tests = ix.select(split="test")
    assert sorted((c.machine, c.name, int(c.label == "anomaly"), c.domain) for c in tests) == sorted(truth)

    def run(policy):
        audio = AudioSource(AudioConfig() if policy is None else AudioConfig(channel=policy))
        scores = np.array([np.sqrt(np.mean(audio.load(c).astype(np.float64) ** 2)) for c in tests])
        out = tmp_path / f"sub_{policy}"
        write_submission(tests, scores, None, out, 2026)
        return scores, evaluate_submission(out, tmp_path / "gt", 2026)

    scores, near = run(None)  # the default policy reads the near mic of 2026 clips
    assert scores == pytest.approx([0.3 if c.label == "anomaly" else 0.1 for c in tests], abs=1e-7)
    rows = (tmp_path / "sub_None" / "anomaly_score_Sander_section_00_test.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows] == [f"section_00_{k:04d}.wav" for k in range(10)]
    assert near.official_score == pytest.approx(1.0)
    _, far = run("far")
    for row in far.rows:
        assert row["auc_source_vs_all_anomalies"] == row["auc_target_vs_all_anomalies"] == 0.0
        assert row["pauc_mcclish"] == pytest.approx(9 / 19, abs=1e-12)
    assert run("near")[1].to_dict() == near.to_dict()


# ------------------------------------------------------------------ `auscult run` on a 2026 tree
def test_auscult_run_on_a_2026_tree(tmp_path):
    """A recipe with ``year: 2026`` validates and runs end to end on a generated two-channel tree."""
    root = tmp_path / "dev_data"
    rng = np.random.default_rng(0)
    for i in range(6):
        write_clip(root / "valveEmu/train" / f"section_00_source_train_normal_{i:04d}_v_1_noise_1.wav",
                   0.1 + 0.01 * rng.random(), 0.3, n=4000)
    write_clip(root / "valveEmu/train/section_00_target_train_normal_0000_v_2_noise_2.wav", 0.1, 0.3, n=4000)
    for dom in ("source", "target"):
        for lab in ("normal", "anomaly"):
            for i in range(2):
                write_clip(root / "valveEmu/test" / f"section_00_{dom}_test_{lab}_{i:04d}_v_1_noise_1.wav",
                           0.3 if lab == "anomaly" else 0.1, 0.3, n=4000)
    recipe = tmp_path / "ae2026.yaml"
    recipe.write_text(
        "method: autoencoder\nyear: 2026\n"
        "features: {n_fft: 512, hop_length: 256, n_mels: 16, power: 2.0}\n"
        "model: {context: 2, hidden: 16, bottleneck: 4, n_layers: 2}\n"
        "train: {epochs: 1, batch_size: 64, lr: 0.001, optimizer: adam}\n"
        "score: {kind: mse}\ndata: {holdout: 0}\n")
    out = tmp_path / "run"
    res = runner.invoke(app, ["run", str(recipe), "--data", str(tmp_path), "--out", str(out), "--device", "cpu",
                              "--quiet"], env={"AUSCULT_CACHE": str(tmp_path / "cache"), "AUSCULT_QUIET": "1"})
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert json.loads((out / "run.json").read_text())["year"] == 2026
    names = {p.name for p in (out / "submission").iterdir()}
    assert names == {"anomaly_score_valveEmu_section_00_test.csv", "decision_result_valveEmu_section_00_test.csv"}
    assert len(read_ground_truth(out / "ground_truth", 2026)) == 8
    # the near-mic cache entries were the ones filled (default policy on 2026 clips)
    from auscult.data.cache import WaveformCache

    clip = root / "valveEmu/train/section_00_source_train_normal_0000_v_1_noise_1.wav"
    assert WaveformCache(tmp_path / "cache", AudioConfig(channel="near")).entry_path(clip).is_file()
    assert not WaveformCache(tmp_path / "cache", AudioConfig(channel="mean")).entry_path(clip).is_file()
