"""ONNX export: one graph (conv-STFT front-end + network), sidecars, same scores as torch."""

from __future__ import annotations

import json

import numpy as np
import pytest

from monitor_testlib import SR, render, write_wav

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from auscult.monitor.export import OnnxScorer, export_onnx  # noqa: E402

#: relative tolerance between onnxruntime (float32 conv STFT) and the bundle (float64 torch.stft)
REL_TOL = 1e-4


@pytest.mark.parametrize("which", ["knn", "ae"])
def test_onnx_scores_equal_the_bundle(which, knn_fit, ae_fit, tmp_path):
    bundle = (knn_fit if which == "knn" else ae_fit)[0]
    waves = [render(800 + i) for i in range(3)] + [render(810, anomaly="rub")]
    res = export_onnx(bundle, tmp_path / "m.onnx", check_waves=waves)
    assert res.checked_clips == 4 and res.max_rel_diff < REL_TOL, res
    model = onnx.load(res.onnx)
    onnx.checker.check_model(model)
    ops = {n.op_type for n in model.graph.node}
    assert "Conv" in ops and not ({"STFT", "DFT"} & ops)  # the front-end is in the graph, as a convolution
    meta = json.loads(open(res.sidecar_json).read())
    mm = bundle.models["fan"]
    assert meta["threshold"] == mm.threshold_value and meta["method"] == mm.method.name
    assert meta["sample_rate"] == SR and meta["features"]["stft_impl"] == "conv"
    # a fresh scorer from the files alone: batch of equal-length clips, and another length
    sc = OnnxScorer(res.onnx)
    ref = mm.score_waves(waves[:3])
    np.testing.assert_allclose(sc.score(np.stack(waves[:3])), ref, rtol=REL_TOL)
    short = render(811, duration=1.7)
    np.testing.assert_allclose(sc.score(short), mm.score_waves([short]), rtol=REL_TOL)
    assert list(sc.decide(np.stack(waves[:3]))) == [s > mm.threshold_value for s in ref]


def test_export_cli(knn_fit, tmp_path):
    from typer.testing import CliRunner

    from auscult.cli import app

    _, _, path = knn_fit
    f = write_wav(tmp_path / "c.wav", render(820))
    res = CliRunner().invoke(app, ["export", str(path), "--onnx", str(tmp_path / "out.onnx"), "--check", str(f)])
    assert res.exit_code == 0, res.output
    assert "max rel diff" in res.output
    assert {p.name for p in tmp_path.iterdir()} >= {"out.onnx", "out.json", "out.npz"}


def test_score_command_with_a_bundle(knn_fit, tmp_path):
    """'auscult score BUNDLE FILES' (pipeline.cli dispatches to monitor.cli.score_files)."""
    from typer.testing import CliRunner

    from auscult.cli import app

    bundle, _, path = knn_fit
    a = write_wav(tmp_path / "a.wav", render(830))
    b = write_wav(tmp_path / "b.wav", render(831, anomaly="rub"))
    runner = CliRunner()
    res = runner.invoke(app, ["score", str(path), str(a), str(b), "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert [r["file"] for r in rows] == [str(a), str(b)]
    for r, f in zip(rows, (a, b)):
        ref = bundle.score_file(f)
        assert r["score"] == pytest.approx(ref.score) and r["decision"] == ref.decision
        assert r["threshold"] == ref.threshold and r["expected_false_alarm_rate"] == ref.expected_false_alarm_rate
    res = runner.invoke(app, ["score", str(path), str(a), "--csv"])
    assert res.exit_code == 0 and res.output.splitlines()[0].startswith("file,machine,score,decision,threshold")
    res = runner.invoke(app, ["score", str(path), str(a), str(tmp_path / "missing.wav")])
    assert res.exit_code == 1
    assert "missing.wav" in res.output and "file not found" in res.output  # reported, the other file scored
    assert str(a) in res.output and f"{bundle.score_file(a).score:.6g}" in res.output
    res = runner.invoke(app, ["score", str(path), str(a), "--machine", "pump"])
    assert res.exit_code != 0
