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
