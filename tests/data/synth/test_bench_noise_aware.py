"""``benchmarks/bench_noise_aware_2026.py --severity``: the generated test anomalies take their
severities from the asked range, the range is recorded next to the data, and a cached ``--root`` of
other parameters is refused instead of silently measured (a tiny tree: one machine, 0.5 s clips)."""

from __future__ import annotations

import argparse
import csv
import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "bench_noise_aware_2026.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_noise_aware_2026", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _args(bench, severity: str, **kw):
    ns = dict(train_source=2, train_target=1, test_per_label=3, duration=0.5, machines="fan",
              severity=bench.severity(severity))
    ns.update(kw)
    return argparse.Namespace(**ns)


def test_severity_parsing(bench):
    assert bench.severity("0.6,1.0") == (0.6, 1.0)
    assert bench.severity("1,1") == (1.0, 1.0)
    for bad in ("0.6", "a,b", "0.9,0.6", "0.5,1.5", "-0.1,0.5"):
        with pytest.raises(argparse.ArgumentTypeError, match="--severity"):
            bench.severity(bad)


def test_dataset_uses_and_records_the_severity(bench, tmp_path):
    out = bench.dataset(tmp_path, 0, _args(bench, "0.6,1.0"))
    rows = list(csv.DictReader(open(out / "metadata.csv")))
    sev = [float(r["severity"]) for r in rows if r["label"] == "anomaly"]
    assert len(sev) == 6  # 3 per domain
    assert all(0.6 <= s <= 1.0 for s in sev)
    assert all(float(r["severity"]) == 0.0 for r in rows if r["label"] == "normal")
    # reused with the same parameters, refused with others (the cached clips would be the wrong ones)
    assert bench.dataset(tmp_path, 0, _args(bench, "0.6,1.0")) == out
    with pytest.raises(SystemExit, match="severity"):
        bench.dataset(tmp_path, 0, _args(bench, "0.1,1.0"))
    with pytest.raises(SystemExit, match="train_source"):
        bench.dataset(tmp_path, 0, _args(bench, "0.6,1.0", train_source=3))


def test_unrecorded_tree_counts_as_default_severity(bench, tmp_path):
    out = bench.dataset(tmp_path, 1, _args(bench, "0.1,1.0"))
    (out / bench.PARAMS).unlink()  # a tree written before the record existed
    assert bench.dataset(tmp_path, 1, _args(bench, "0.1,1.0")) == out
    with pytest.raises(SystemExit, match="another --root"):
        bench.dataset(tmp_path, 1, _args(bench, "0.6,1.0"))


def test_table_pairs_by_seed_and_tolerates_old_rows(bench):
    def row(variant, seed, mic, official, within=None):
        r = {"seed": seed, "variant": variant, "score": "mse", "test_mic": mic, "official": official,
             "auc_source": official, "auc_target": official, "pauc": official, "wall_s": 1.0}
        if within is not None:
            r.update(auc_mean=official, auc_source_within=within, auc_target_within=within, auc_tn_vs_sn=0.5)
        return r

    rows = [row("ae_near", 0, "far", 0.50, 0.55), row("ae_mc", 0, "far", 0.53, 0.60),
            row("ae_near", 1, "far", 0.40, 0.50), row("ae_mc", 1, "far", 0.41, 0.52),
            row("ae_mc", 2, "far", 0.90, 0.90)]  # seed 2 has no ae_near: not paired
    text = bench.table(rows)
    line = next(ln for ln in text.splitlines() if ln.startswith("| mse | far | ae_mc |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[3] == "+0.020 ± 0.014"  # Δ official: +0.03, +0.01
    assert cells[8] == "+0.035 ± 0.021"  # Δ within source: +0.05, +0.02
    assert cells[10] == "+0.030, +0.010" and cells[11] == "0,1"
    old = bench.table([row("ae_near", 0, "far", 0.5), row("ae_mc", 0, "far", 0.6)])  # rows of an earlier version
    line = next(ln for ln in old.splitlines() if ln.startswith("| mse | far | ae_mc |"))
    assert "| – |" in line and "+0.100" in line
