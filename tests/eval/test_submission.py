"""Submission writers, the name-joining evaluator and `auscult evaluate`."""

import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from auscult.cli import app
from auscult.data.groundtruth import write_ground_truth
from auscult.errors import SubmissionError
from auscult.eval.demo import demo_scored_clips
from auscult.eval.protocols import evaluate_scores
from auscult.eval.submission import evaluate_submission, read_submission_file, submission_filename, write_submission


def test_official_file_names():
    assert submission_filename("anomaly_score", "fan", "01", 2020) == "anomaly_score_fan_id_01.csv"
    assert submission_filename("anomaly_score", "fan", "03", 2021, "source") == "anomaly_score_fan_section_03_source_test.csv"
    assert submission_filename("decision_result", "fan", "03", 2021, "target") == "decision_result_fan_section_03_target_test.csv"
    for y in (2022, 2023, 2024, 2025):
        assert submission_filename("anomaly_score", "ToyCar", "00", y) == "anomaly_score_ToyCar_section_00_test.csv"
        assert submission_filename("decision_result", "ToyCar", "00", y) == "decision_result_ToyCar_section_00_test.csv"
    with pytest.raises(SubmissionError):
        submission_filename("decision_result", "fan", "01", 2020)
    with pytest.raises(SubmissionError):
        submission_filename("anomaly_score", "fan", "01", 2021)


def _setup(tmp_path, year, **kw):
    clips, scores, dec = demo_scored_clips(year, n_per_domain=kw.pop("n", 12), seed=kw.pop("seed", 7), **kw)
    write_ground_truth(clips, tmp_path / "gt", year)
    write_submission(clips, scores, dec, tmp_path / "sub", year)
    return clips, scores, dec


@pytest.mark.parametrize("year", [2020, 2021, 2023])
def test_roundtrip_equals_in_memory(tmp_path, year):
    clips, scores, dec = _setup(tmp_path, year, sections=("00", "01"))
    got = evaluate_submission(tmp_path / "sub", tmp_path / "gt", year)
    want = evaluate_scores(clips, scores, year, decisions=None if year == 2020 else dec)
    assert got.to_dict() == want.to_dict()


def test_rows_format_and_order_independence(tmp_path):
    _setup(tmp_path, 2023)
    f = tmp_path / "sub" / "anomaly_score_fan_section_00_test.csv"
    lines = f.read_text().splitlines()
    assert all(len(line.split(",")) == 2 and "/" not in line for line in lines)
    assert lines == sorted(lines)
    before = evaluate_submission(tmp_path / "sub", tmp_path / "gt", 2023).official_score
    # rows in another order (and sorted differently from the ground truth) change nothing
    f.write_text("\n".join(lines[::-1]) + "\n")
    assert evaluate_submission(tmp_path / "sub", tmp_path / "gt", 2023).official_score == before
    # ...but swapping two clips' scores does: values follow names, not positions
    a, b = lines[0].split(","), lines[-1].split(",")
    f.write_text("\n".join([f"{a[0]},{b[1]}"] + lines[1:-1] + [f"{b[0]},{a[1]}"]) + "\n")
    assert evaluate_submission(tmp_path / "sub", tmp_path / "gt", 2023).official_score != before


def _expect(tmp_path, *fragments):
    with pytest.raises(SubmissionError) as info:
        evaluate_submission(tmp_path / "sub", tmp_path / "gt", 2023)
    for frag in fragments:
        assert frag in str(info.value), str(info.value)


def test_missing_extra_duplicate_names_fail_loudly(tmp_path):
    _setup(tmp_path, 2023)
    f = tmp_path / "sub" / "anomaly_score_valve_section_00_test.csv"
    lines = f.read_text().splitlines()
    f.write_text("\n".join(lines[1:]) + "\n")
    _expect(tmp_path, "anomaly_score_valve_section_00_test.csv", "missing", lines[0].split(",")[0])
    f.write_text("\n".join(lines + ["stranger.wav,1.0"]) + "\n")
    _expect(tmp_path, "anomaly_score_valve_section_00_test.csv", "not in the ground truth", "stranger.wav")
    f.write_text("\n".join(lines + [lines[3]]) + "\n")
    _expect(tmp_path, "anomaly_score_valve_section_00_test.csv", "duplicate name")
    f.write_text("\n".join(lines[:-1] + [lines[-1].split(",")[0] + ",oops"]) + "\n")
    _expect(tmp_path, "is not a number")
    f.write_text("\n".join(lines[:-1] + ["dir/" + lines[-1]]) + "\n")
    _expect(tmp_path, "base file names only")


def test_missing_extra_and_partial_files(tmp_path):
    _setup(tmp_path, 2023)
    sub = tmp_path / "sub"
    (sub / "anomaly_score_fan_section_00_test.csv").rename(sub / "anomaly_score_fan_section_07_test.csv")
    _expect(tmp_path, "missing anomaly-score file", "anomaly_score_fan_section_00_test.csv",
            "match no ground-truth group", "anomaly_score_fan_section_07_test.csv")
    (sub / "anomaly_score_fan_section_07_test.csv").rename(sub / "anomaly_score_fan_section_00_test.csv")
    (sub / "decision_result_ToyCar_section_00_test.csv").unlink()
    _expect(tmp_path, "decision files exist for some groups", "decision_result_ToyCar_section_00_test.csv")
    for p in sub.glob("decision_result_*"):
        p.unlink()
    r = evaluate_submission(sub, tmp_path / "gt", 2023)  # decisions are optional as a whole
    assert "f1_source" not in r.columns and r.official_score is not None
    d = tmp_path / "dec.csv"
    d.write_text("a.wav,0.5\n")
    with pytest.raises(SubmissionError, match="0 or 1"):
        read_submission_file(d, "decision_result")


def test_cli_prints_table_and_writes_outputs(tmp_path):
    _setup(tmp_path, 2023)
    res = CliRunner().invoke(app, ["evaluate", "--scores", str(tmp_path / "sub"), "--ground-truth", str(tmp_path / "gt"),
                                   "--year", "2023", "--report", str(tmp_path / "r.html"), "--out", str(tmp_path / "tables")])
    assert res.exit_code == 0, res.output
    want = evaluate_submission(tmp_path / "sub", tmp_path / "gt", 2023).official_score
    assert f"official score: {want:.4f}" in res.output
    assert "ToyCar" in res.output and "valve" in res.output
    assert (tmp_path / "r.html").stat().st_size > 10_000
    assert {p.name for p in (tmp_path / "tables").iterdir()} >= {"sections.csv", "sections.md", "machines.csv", "result.json"}


def test_cli_error_is_one_line_with_exit_code_2(tmp_path):
    _setup(tmp_path, 2023)
    (tmp_path / "sub" / "anomaly_score_fan_section_00_test.csv").unlink()
    out = subprocess.run([sys.executable, "-m", "auscult.cli", "evaluate", "--scores", str(tmp_path / "sub"),
                          "--ground-truth", str(tmp_path / "gt"), "--year", "2023"], capture_output=True, text=True)
    assert out.returncode == 2
    assert "anomaly_score_fan_section_00_test.csv" in out.stderr and "Traceback" not in out.stderr


def test_attribute_names_are_joined_through_ground_truth_attributes(tmp_path):
    clips, scores, dec = _setup(tmp_path, 2023)
    before = evaluate_submission(tmp_path / "sub", tmp_path / "gt", 2023)
    adir = tmp_path / "gt" / "ground_truth_attributes"
    adir.mkdir()
    f = tmp_path / "sub" / "anomaly_score_fan_section_00_test.csv"
    lines = f.read_text().splitlines()
    # publish an attribute-bearing alias for every fan clip and rename two rows in the submission
    names = [line.split(",")[0] for line in lines]
    (adir / "ground_truth_fan_section_00_test.csv").write_text(
        "".join(f"{n},{n[:-4]}_vel_12\n" for n in names))
    renamed = [f"{names[0][:-4]}_vel_12.wav,{lines[0].split(',')[1]}",
               f"{names[1][:-4]}_vel_12.wav,{lines[1].split(',')[1]}"] + lines[2:]
    f.write_text("\n".join(renamed) + "\n")
    assert evaluate_submission(tmp_path / "sub", tmp_path / "gt", 2023).to_dict() == before.to_dict()
    f.write_text("\n".join(renamed + [lines[0]]) + "\n")  # both spellings of one clip
    _expect(tmp_path, "appears twice")
