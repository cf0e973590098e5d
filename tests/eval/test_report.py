import base64
import csv
import re

import numpy as np
import pytest

from auscult.eval.demo import demo_scored_clips
from auscult.eval.protocols import evaluate_scores
from auscult.eval.report import group_threshold, markdown_table, write_report, write_tables

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module", params=[2020, 2021, 2023])
def result(request):
    year = request.param
    clips, scores, dec = demo_scored_clips(year, machines=("fan", "ToyCar"), sections=("00",), n_per_domain=15, seed=2)
    thresholds = {("fan", "00"): 2.5}
    return evaluate_scores(clips, scores, year, decisions=None if year == 2020 else dec, thresholds=thresholds)


def test_report_is_self_contained(tmp_path, result):
    p = write_report(result, tmp_path / "sub" / "report.html")
    text = p.read_text()
    imgs = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert len(imgs) == 3
    for b in imgs:
        data = base64.b64decode(b)
        assert data.startswith(PNG) and len(data) > 5000
    # no external resources
    assert not re.search(r'(src|href)="(http|/|\.)', text)
    for row in result.rows:
        assert f"{row['pauc_mcclish']:.4f}" in text
    if result.official_score is not None:
        assert f"{result.official_score:.4f}" in text
    for m in result.machines:
        assert m["machine"] in text


def test_tables_csv_and_markdown(tmp_path, result):
    paths = write_tables(result, tmp_path)
    assert {p.name for p in paths} == {f"{n}.{e}" for n in ("sections", "machines", "summary") for e in ("csv", "md")}
    with (tmp_path / "sections.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(result.rows)
    for got, want in zip(rows, result.rows):
        assert float(got["pauc_mcclish"]) == want["pauc_mcclish"]  # full precision in CSV
    md = (tmp_path / "sections.md").read_text().splitlines()
    assert len(md) == 2 + len(result.rows) and md[1].startswith("|---")
    summary = (tmp_path / "summary.csv").read_text()
    assert "official_score" in summary


def test_thresholds_drawn_from_given_value_or_decisions(result):
    g = {(g.machine, g.section): g for g in result.groups}
    assert group_threshold(g[("fan", "00")]) == (2.5, "threshold")
    thr, how = group_threshold(g[("ToyCar", "00")])
    if result.year == 2020:
        assert thr is None  # no decisions, no threshold
    elif thr is not None:
        toy = g[("ToyCar", "00")]
        assert how == "boundary of the decisions"
        assert ((toy.scores > thr).astype(int) == toy.decisions).all()


def test_markdown_table_formatting():
    md = markdown_table([{"machine": "fan", "auc": 0.123456, "n_normal": 3}], ["machine", "auc", "n_normal"])
    assert md.splitlines() == ["| machine | AUC | # normal |", "|---|---:|---:|", "| fan | 0.1235 | 3 |"]


def test_report_for_a_subset_with_one_domain(tmp_path):
    clips, scores, dec = demo_scored_clips(2021, machines=("fan", "pump"), n_per_domain=8, seed=3)
    keep = [i for i, c in enumerate(clips) if c.domain == "source"]
    clips, scores, dec = [clips[i] for i in keep], scores[keep], dec[keep]
    r = evaluate_scores(clips, scores, 2021, decisions=dec)
    assert [row["domain"] for row in r.rows] == ["source", "source"]
    text = write_report(r, tmp_path / "r.html").read_text()
    assert text.count("data:image/png;base64,") == 3


def _git_head():
    import subprocess
    from pathlib import Path

    import auscult

    pkg = Path(auscult.__file__).resolve().parent
    r = subprocess.run(["git", "-C", str(pkg), "rev-parse", "HEAD"], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else None


@pytest.fixture(scope="module")
def small_result():
    clips, scores, dec = demo_scored_clips(2023, machines=("fan",), sections=("00",), n_per_domain=10, seed=3)
    return evaluate_scores(clips, scores, 2023, decisions=dec)


def test_report_states_its_provenance(tmp_path, small_result):
    """Every report says what produced it: version, git commit when auscult runs from a checkout, date;
    with a run's provenance also the recipe (resolved), seed and data root."""
    import html as html_mod

    from auscult import __version__

    result = small_result
    text = write_report(result, tmp_path / "plain.html", dpi=30).read_text()
    assert "Provenance" in text and f"auscult {__version__}" in text
    head = _git_head()
    assert (head[:12] in text) if head else ("not available" in text)
    assert re.search(r"report written</th><td>\d{4}-\d\d-\d\dT", text)
    prov = {"recipe": "synthetic/autoencoder", "recipe_resolved": "method: autoencoder\nseed: 7\n<script>x</script>",
            "seed": 7, "data_root": "/data/plant <A&B>", "run_created": "2026-01-02T03:04:05+00:00",
            "git_commit": "0123456789abcdef0123456789abcdef01234567-dirty"}
    text = write_report(result, tmp_path / "run.html", provenance=prov, dpi=30).read_text()
    for value in ("synthetic/autoencoder", "/data/plant &lt;A&amp;B&gt;", "2026-01-02T03:04:05+00:00",
                  "0123456789abcdef0123456789abcdef01234567-dirty", f"auscult {__version__}"):
        assert value in text, value
    assert re.search(r"seed</th><td>7</td>", text)
    assert html_mod.escape("method: autoencoder\nseed: 7\n<script>x</script>") in text  # the resolved recipe, escaped
    assert "<script>x</script>" not in text


def test_run_provenance_reads_the_run_folder(tmp_path):
    import json

    from auscult.eval.report import run_provenance

    (tmp_path / "config.yaml").write_text("name: synthetic/autoencoder\nmethod: autoencoder\nseed: 3\n")
    (tmp_path / "run.json").write_text(json.dumps({"seed": 3, "data": "/d/root", "created": "2026-01-01T00:00:00+00:00",
                                                   "versions": {"auscult": "9.9.9", "torch": "2.x"},
                                                   "git_commit": "abc123"}))
    p = run_provenance(tmp_path)
    assert p["recipe"] == "synthetic/autoencoder" and "method: autoencoder" in p["recipe_resolved"]
    assert (p["seed"], p["data_root"], p["git_commit"], p["trained_with"]) == (3, "/d/root", "abc123", "auscult 9.9.9")
    assert p["run_directory"] == str(tmp_path)
    (tmp_path / "run.json").write_text(json.dumps({"seed": 3}))  # an older run: says what it does not know
    assert run_provenance(tmp_path)["git_commit"] == "not recorded"
