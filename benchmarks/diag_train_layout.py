"""Does a fast path change what a small training learns? SSL4ASD's beats-chance test training, many seeds.

The training of ``tests/methods/test_ssl4asd.py::test_beats_chance_on_easy_anomalies`` (3 simulated
machine types, 25 training clips each, 5 s, severity 0.9-1, 6 epochs, batch 8) repeated for several
training seeds under one ``AUSCULT_FASTPATH`` setting; prints one JSON line per seed (mean AUC over
the three machine types, per-type AUCs, seconds) and a mean +- std line. Run it once per setting and
compare, e.g.::

    AUSCULT_FASTPATH=train_channels_last=0 OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/diag_train_layout.py --seeds 0-12
    AUSCULT_FASTPATH=train_channels_last=1 OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/diag_train_layout.py --seeds 0-12

The data set is generated once into ``--root`` (same bytes for the same code).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

MACHINES = ("bearing", "gearbox", "pump")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0-4", help="training seeds, e.g. 0-12 or 0,3,5")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--root", type=Path, default=Path("runs/diag_train_layout_data"))
    a = ap.parse_args()

    import sys

    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from seed_spread import parse_seeds  # the same seed-list syntax

    from auscult.data.index import DatasetIndex
    from auscult.data.source import AudioSource
    from auscult.data.synth import generate_dataset
    from auscult.engine import fastpath
    from auscult.eval.metrics import auc
    from auscult.methods import FitContext, build_method
    from auscult.recipes import load_recipe

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if not (a.root / ".complete").exists():
        generate_dataset("demo", a.root, seed=3, machines=MACHINES, scale=0.5, duration=5.0,
                         severity_range=(0.9, 1.0), workers=1, overwrite=True, probe=False)
        (a.root / ".complete").write_text("ok\n")
    idx = DatasetIndex.scan(a.root)
    train = sorted(idx.select(split="train"), key=lambda c: str(c.path))
    test = sorted(idx.select(split="test"), key=lambda c: str(c.path))
    audio = AudioSource(load_recipe("synthetic/ssl4asd")["audio"], memory=True)
    setting = fastpath.settings().to_dict()
    means = []
    for seed in parse_seeds(a.seeds):
        cfg = load_recipe("synthetic/ssl4asd")
        cfg["train"] = {**cfg["train"], "batch_size": 8, "log_every": 0, "epochs": a.epochs}
        cfg["backend"] = {**cfg["backend"], "n_init": 2}
        t = time.time()
        m = build_method("ssl4asd", cfg, FitContext(seed=seed, quiet=True)).fit(train, [], audio)
        s = m.score(test, audio)
        aucs = {k: float(auc([c.label == "anomaly" for c in test if c.machine == k],
                             s[[i for i, c in enumerate(test) if c.machine == k]])) for k in MACHINES}
        means.append(float(np.mean(list(aucs.values()))))
        print(json.dumps({"fastpath": setting, "seed": seed, "mean_auc": round(means[-1], 4),
                          "auc": {k: round(v, 4) for k, v in aucs.items()}, "seconds": round(time.time() - t, 1)}),
              flush=True)
    sd = statistics.stdev(means) if len(means) > 1 else float("nan")
    print(f"mean AUC over {len(means)} seeds: {statistics.mean(means):.3f} +- {sd:.3f}  ({setting})")


if __name__ == "__main__":
    main()
