"""`auscult evaluate` error messages for paths that do not exist."""

from __future__ import annotations

import subprocess
import sys


def _evaluate(*args):
    return subprocess.run([sys.executable, "-m", "auscult.cli", "evaluate", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_missing_ground_truth_says_not_found(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "anomaly_score_fan_section_00_test.csv").write_text("a.wav,1.0\n")
    for extra in ([], ["--year", "2023"]):
        r = _evaluate("--scores", tmp_path / "sub", "--ground-truth", "/missing/gt", *extra)
        assert r.returncode == 2, r.stderr
        assert "/missing/gt" in r.stderr and "not found" in r.stderr, r.stderr
        assert "cannot tell the year" not in r.stderr and "Traceback" not in r.stderr


def test_missing_scores_folder_says_not_found(tmp_path):
    (tmp_path / "gt").mkdir()
    r = _evaluate("--scores", tmp_path / "nope", "--ground-truth", tmp_path / "gt", "--year", "2023")
    assert r.returncode == 2 and "nope" in r.stderr and "not found" in r.stderr, r.stderr


def test_run_form_with_missing_ground_truth_says_not_found(tmp_path):
    import json

    (tmp_path / "submission").mkdir()
    (tmp_path / "submission" / "anomaly_score_fan_section_00_test.csv").write_text("a.wav,1.0\n")
    (tmp_path / "run.json").write_text(json.dumps({"stage": "scored", "year": 2023, "ground_truth": None}))
    r = _evaluate(tmp_path, "--ground-truth", "/missing/gt")
    assert r.returncode == 2 and "/missing/gt" in r.stderr and "not found" in r.stderr, r.stderr
