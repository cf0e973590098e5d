"""Protocols per year against references computed here from the definitions."""

from pathlib import Path

import numpy as np
import pytest

from auscult.data.clip import Clip
from auscult.errors import DataError
from auscult.eval.demo import demo_scored_clips
from auscult.eval.metrics import MetricInputError
from auscult.eval.protocols import evaluate_scores, summarize
from tests.eval.test_metrics import mann_whitney_auc, mcclish, hand_roc, partial_area


def ref_pauc(y, s, p=0.1):
    return mcclish(partial_area(hand_roc(y, s), p), p)


def ref_hmean(values):
    return len(values) / sum(1 / v for v in values)


def _arrays(clips, scores, machine, section):
    idx = [i for i, c in enumerate(clips) if c.machine == machine and c.section == section]
    y = np.array([clips[i].label == "anomaly" for i in idx], dtype=int)
    d = np.array([clips[i].domain for i in idx], dtype=object)
    return y, d, scores[idx]


def test_2023_protocol_matches_reference():
    clips, scores, dec = demo_scored_clips(2023, machines=("fan", "ToyCar"), sections=("00", "01"), n_per_domain=20, seed=3)
    r = evaluate_scores(clips, scores, 2023, decisions=dec)
    assert [(row["machine"], row["section"]) for row in r.rows] == [
        ("ToyCar", "00"), ("ToyCar", "01"), ("fan", "00"), ("fan", "01")]
    values = []
    for row in r.rows:
        y, d, s = _arrays(clips, scores, row["machine"], row["section"])
        src = (y == 1) | (d == "source")
        tgt = (y == 1) | (d == "target")
        want = (mann_whitney_auc(y[src], s[src]), mann_whitney_auc(y[tgt], s[tgt]), ref_pauc(y, s))
        got = (row["auc_source_vs_all_anomalies"], row["auc_target_vs_all_anomalies"], row["pauc_mcclish"])
        assert got == pytest.approx(want, abs=1e-12)
        values += list(want)
        assert row["n_normal_source"] == row["n_anomaly_target"] == 20
    assert r.official_score == pytest.approx(ref_hmean(values), abs=1e-12)
    assert "12 values" in r.official_definition
    fan = next(m for m in r.machines if m["machine"] == "fan")
    fan_rows = [row for row in r.rows if row["machine"] == "fan"]
    assert fan["auc_source_mean"] == pytest.approx(np.mean([x["auc_source_vs_all_anomalies"] for x in fan_rows]))
    assert fan["mauc"] == pytest.approx(min(min(x["auc_source_vs_all_anomalies"], x["auc_target_vs_all_anomalies"]) for x in fan_rows))
    assert {"hmean_f1_source", "hmean_f1_target", "hmean_auc_source"} <= set(r.aggregates)


def test_2021_protocol_uses_each_domains_own_clips():
    clips, scores, dec = demo_scored_clips(2021, machines=("pump",), sections=("00", "01"), n_per_domain=15, seed=4)
    r = evaluate_scores(clips, scores, 2021, decisions=dec)
    assert len(r.rows) == 4
    values = []
    for row in r.rows:
        y, d, s = _arrays(clips, scores, row["machine"], row["section"])
        m = d == row["domain"]
        want = (mann_whitney_auc(y[m], s[m]), ref_pauc(y[m], s[m]))
        assert (row["auc"], row["pauc_mcclish"]) == pytest.approx(want, abs=1e-12)
        values += list(want)
    assert r.official_score == pytest.approx(ref_hmean(values), abs=1e-12)


def test_2020_protocol_per_id_and_machine_mean():
    clips, scores, _ = demo_scored_clips(2020, machines=("fan", "pump"), sections=("01", "03"), n_per_domain=10, seed=5)
    r = evaluate_scores(clips, scores, 2020)
    assert r.official_score is None and "no single official score" in r.official_definition
    for row in r.rows:
        y, _, s = _arrays(clips, scores, row["machine"], row["section"])
        assert row["auc"] == pytest.approx(mann_whitney_auc(y, s), abs=1e-12)
        assert row["pauc_mcclish"] == pytest.approx(ref_pauc(y, s), abs=1e-12)
    for m in r.machines:
        rs = [row for row in r.rows if row["machine"] == m["machine"]]
        assert m["auc_mean"] == pytest.approx(np.mean([x["auc"] for x in rs]))
        assert m["pauc_mean"] == pytest.approx(np.mean([x["pauc_mcclish"] for x in rs]))
    assert all(k.startswith("unofficial") for k in r.aggregates)


def test_order_of_clips_does_not_matter():
    clips, scores, dec = demo_scored_clips(2023, n_per_domain=10, seed=6)
    perm = np.random.default_rng(0).permutation(len(clips))
    a = evaluate_scores(clips, scores, 2023, decisions=dec)
    b = evaluate_scores([clips[i] for i in perm], scores[perm], 2023, decisions=dec[perm])
    assert a.to_dict() == b.to_dict()


def test_2022_official_uses_63_values():
    rows = [
        {"machine": f"m{m}", "section": f"0{s}", "auc_source_vs_all_anomalies": 0.6 + 0.01 * m,
         "auc_target_vs_all_anomalies": 0.5 + 0.01 * s, "pauc_mcclish": 0.55}
        for m in range(7) for s in range(3)
    ]
    official, definition, aggregates, machines, _ = summarize(rows, 2022)
    vals = [v for r in rows for v in (r["auc_source_vs_all_anomalies"], r["auc_target_vs_all_anomalies"], r["pauc_mcclish"])]
    assert len(vals) == 63 and "63 values" in definition
    assert official == pytest.approx(ref_hmean(vals))
    assert len(machines) == 7


def _clip(name, label, domain="source", machine="fan", section="00"):
    return Clip(path=Path(name), machine=machine, section=section, domain=domain, split="test", label=label)


def test_errors_name_the_problem():
    ok = [_clip("a.wav", "normal"), _clip("b.wav", "anomaly"), _clip("c.wav", "normal", "target")]
    with pytest.raises(DataError, match="no ground-truth label"):
        evaluate_scores(ok + [_clip("d.wav", None)], [1, 2, 3, 4], 2023)
    with pytest.raises(DataError, match="no domain"):
        evaluate_scores(ok + [_clip("d.wav", "normal", None)], [1, 2, 3, 4], 2023)
    with pytest.raises(DataError, match="appears twice"):
        evaluate_scores(ok + [_clip("a.wav", "normal")], [1, 2, 3, 4], 2023)
    with pytest.raises(MetricInputError, match="fan section 00: AUC"):
        evaluate_scores([_clip("a.wav", "normal"), _clip("c.wav", "normal", "target")], [1, 2], 2023)
    with pytest.raises(MetricInputError, match="non-finite"):
        evaluate_scores(ok, [1, np.inf, 3], 2023)
    with pytest.raises(MetricInputError, match="2 scores for 3 clips"):
        evaluate_scores(ok, [1, 2], 2023)
    with pytest.raises(DataError, match="year"):
        evaluate_scores(ok, [1, 2, 3], 2019)
    r = evaluate_scores(ok, [1, 3, 2], 2023)  # the smallest valid 2023 section
    assert r.rows[0]["auc_source_vs_all_anomalies"] == 1.0 and r.rows[0]["auc_target_vs_all_anomalies"] == 1.0
