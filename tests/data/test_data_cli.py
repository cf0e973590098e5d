"""`auscult data scan` through typer's CliRunner and as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import soundfile as sf
from typer.testing import CliRunner

from auscult.cli import app

runner = CliRunner()


def _wav(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.full(32, 0.1, np.float32), 16000)


def _tree(root):
    for i in range(3):
        _wav(root / f"fan/train/section_00_source_train_normal_{i:04d}_m-n_W.wav")
    _wav(root / "fan/test/section_00_target_test_anomaly_0000_m-n_X.wav")
    _wav(root / "fan/train/oops.wav")


def test_scan_table(tmp_path):
    _tree(tmp_path)
    res = runner.invoke(app, ["data", "scan", str(tmp_path)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    out = res.output
    assert "4 clips" in out
    assert "oops.wav" in out and "matches no DCASE name" in out
    row_train = [ln for ln in out.splitlines() if "train" in ln and "fan" in ln]
    assert row_train and row_train[0].rstrip(" │|").split()[-1] == "3"


def test_scan_json_and_strict(tmp_path):
    _tree(tmp_path)
    res = runner.invoke(app, ["data", "scan", str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["clips"] == 4
    assert {(r["split"], r["label"], r["domain"], r["count"]) for r in d["counts"]} == {
        ("train", "normal", "source", 3), ("test", "anomaly", "target", 1)}
    assert [u["path"] for u in d["unparsed"]] == [str(tmp_path / "fan/train/oops.wav")]
    res = runner.invoke(app, ["data", "scan", str(tmp_path), "--json", "--strict"])
    assert res.exit_code == 1


def test_scan_real_tree_subprocess(shared_data):
    root = shared_data / "dcase2021-gearbox-s00"
    out = subprocess.run([sys.executable, "-m", "auscult.cli", "data", "scan", str(root), "--json"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    files = sorted(root.rglob("*.wav"))
    assert d["clips"] == len(files) and d["unparsed"] == []
    by = {r["label"]: r["count"] for r in d["counts"]}
    assert by == {"normal": sum("_normal_" in p.name for p in files),
                  "anomaly": sum("_anomaly_" in p.name for p in files)}


def test_scan_missing_folder_is_one_line_error(tmp_path):
    out = subprocess.run([sys.executable, "-m", "auscult.cli", "data", "scan", str(tmp_path / "nope")],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert "nope" in out.stderr and "Traceback" not in out.stderr


def test_scan_with_ground_truth(tmp_path):
    _wav(tmp_path / "eval/fan/test/section_03_0000.wav")
    _wav(tmp_path / "eval/fan/test/section_03_0001.wav")
    for sub, vals in (("ground_truth_data", (1, 0)), ("ground_truth_domain", (0, 1))):
        (tmp_path / "gt" / sub).mkdir(parents=True)
        (tmp_path / "gt" / sub / "ground_truth_fan_section_03_test.csv").write_text(
            f"section_03_0000.wav,{vals[0]}\nsection_03_0001.wav,{vals[1]}\n")
    res = runner.invoke(app, ["data", "scan", str(tmp_path / "eval"), "--json", "--ground-truth", str(tmp_path / "gt")])
    assert res.exit_code == 0, res.output
    rows = {(r["label"], r["domain"]): r["count"] for r in json.loads(res.output)["counts"]}
    assert rows == {("anomaly", "source"): 1, ("normal", "target"): 1}
    (tmp_path / "gt/ground_truth_data/ground_truth_fan_section_03_test.csv").write_text("section_03_0000.wav,1\n")
    (tmp_path / "gt/ground_truth_domain/ground_truth_fan_section_03_test.csv").write_text("section_03_0000.wav,0\n")
    res = runner.invoke(app, ["data", "scan", str(tmp_path / "eval"), "--ground-truth", str(tmp_path / "gt")])
    assert res.exit_code != 0
    assert "section_03_0001.wav" in str(res.exception)


def test_scan_folder_without_audio_fails_clearly(tmp_path):
    (tmp_path / "notes.txt").write_text("no audio here")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "attributes_00.csv").write_text("file_name,d1p,d1v\n")
    out = subprocess.run([sys.executable, "-m", "auscult.cli", "data", "scan", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0, out.stdout + out.stderr
    assert "no audio files" in out.stderr and str(tmp_path) in out.stderr and ".wav" in out.stderr
    assert "Traceback" not in out.stderr
    res = runner.invoke(app, ["data", "scan", str(tmp_path), "--json"])
    assert res.exit_code != 0


def test_scan_with_audio_but_nothing_parsed_exits_non_zero(tmp_path):
    _wav(tmp_path / "whatever" / "oops.wav")  # audio, but a name and layout nothing understands
    (tmp_path / "whatever" / "clip.ogg").write_bytes(b"OggS")  # a format auscult does not read
    res = runner.invoke(app, ["data", "scan", str(tmp_path)], env={"COLUMNS": "200"})
    assert res.exit_code == 1, res.output
    assert "oops.wav" in res.output and "clip.ogg" in res.output  # the unparsed files are still listed
    assert "none of the 2 audio file(s)" in res.output
