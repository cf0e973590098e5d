"""Does ``auscult fit`` give a useful monitor on real recordings, and does its threshold keep its promise?

Real data (``../shared/data`` or ``$AUSCULT_SHARED_DATA``): the DCASE 2021 gearbox section 00
clips. As the data README suggests, normals ``0000``-``0094`` are the "folder of normal recordings"
(linked into a temporary folder under plain names, as a user's own recordings would be), and the
other 100 normals + 105 anomalies are new audio to score. For each detector: the fit's choices,
AUC of the scores, and the decisions' false-alarm rate on the new normals (target 1 %) and
detection rate on the anomalies.

    .venv/bin/python benchmarks/bench_monitor_quality.py [--methods logmel_knn autoencoder] [--window 10]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def shared_root() -> Path:
    env = os.environ.get("AUSCULT_SHARED_DATA")
    root = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"
    if not root.is_dir():
        sys.exit(f"real clips not found at {root} (set AUSCULT_SHARED_DATA)")
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--methods", nargs="+", default=["logmel_knn", "autoencoder"])
    ap.add_argument("--window", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=0.01)
    args = ap.parse_args()

    from sklearn.metrics import roc_auc_score

    from auscult.monitor.fit import FitConfig, fit_bundle

    src = shared_root() / "dcase2021-gearbox-s00" / "dev_data" / "gearbox" / "source_test"
    clips = sorted(src.glob("*.wav"))
    train = [p for p in clips if "_normal_" in p.name and int(p.stem[-4:]) <= 94]
    test = [p for p in clips if p not in train]
    y = np.array(["_anomaly_" in p.name for p in test])
    print(f"# {len(train)} normal recordings to fit on; {int((~y).sum())} new normals and {int(y.sum())} anomalies "
          f"to score; target false-alarm rate {args.rate:g}", file=sys.stderr)
    print("| detector | fit s | fit / calibration windows | threshold | AUC | false alarms on new normals | "
          "anomalies flagged |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "gearbox"
        d.mkdir()
        for i, p in enumerate(train):
            (d / f"rec_{i:03d}.wav").symlink_to(p)
        for method in args.methods:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t0 = time.perf_counter()
                b, rep = fit_bundle(d, None, FitConfig(method=method, window_s=args.window,
                                                       false_alarm_rate=args.rate))
                fit_s = time.perf_counter() - t0
                res = [b.score_file(p) for p in test]
            r = rep.machines["gearbox"]
            s = np.array([x.score for x in res])
            dec = np.array([x.decision for x in res])
            print(f"| {method} | {fit_s:.0f} | {r['fit_windows']} / {r['calibration_windows']} | "
                  f"{r['threshold_method']} | {roc_auc_score(y, s):.3f} | {int(dec[~y].sum())}/{int((~y).sum())} | "
                  f"{int(dec[y].sum())}/{int(y.sum())} |")


if __name__ == "__main__":
    main()
