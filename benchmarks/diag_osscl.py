"""OS-SCL's cross-entropy score on small simulated sets, by training budget: the experiments behind
docs/methods/osscl.md and the anomaly test in tests/methods/test_osscl.py.

Not part of CI. Every experiment trains ``recipes/synthetic/osscl.yaml`` shrunk to the CI test's
size (2 s centre crops, 32 mels, batch 16; every epoch runs, the epoch with the lowest held-out
cross-entropy scores, as in the test) on a small synthetic set with easy anomalies (severity
0.9-1), for seeds 0, 1, 2, and prints the mean per-section AUC of the cross-entropy score:

* ``budget``: the CI test's data (pump + gearbox, 3 units each, DCASE 2022 layout, 12 + 2 training
  clips and ``--test-clips`` (the test: 4) normal + anomalous test clips per unit and domain) at
  ``--epochs`` (default 4; the test's model: 30; the paper: 300); ``--ae`` also trains the synthetic
  autoencoder recipe on the same clips;
* ``units``: more classes: pump + gearbox + fan with 6 units each, DCASE 2020 layout (no domains);
* ``big``: 4x the training clips per unit (48 + 4);
* ``swap``: the classifier's grip on its own proxy task -- test normals scored as the same unit
  number of the next machine type (machine swap) or as the next unit of the same type (unit swap):
  AUC of "scored as another class" vs "scored as its own class" (1.0 = classes perfectly told apart,
  0.5 = not at all), next to the anomaly AUC and the per-kind AUCs;
  ``--fixed`` gives every unit one operating point and no factory background (units easy to tell
  apart; a diagnosis-only patch of the simulator, not a simulator option).

Usage::

    .venv/bin/python benchmarks/diag_osscl.py budget --epochs 300 --seeds 0 1 2 3 4 --ae
    .venv/bin/python benchmarks/diag_osscl.py budget --epochs 300 --test-clips 8
    .venv/bin/python benchmarks/diag_osscl.py swap --epochs 10
    .venv/bin/python benchmarks/diag_osscl.py swap --fixed --epochs 10
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

SEEDS = (0, 1, 2)


def fix_operating_points() -> None:
    """Diagnosis-only patch: each unit runs at one operating point (drawn from the unit's constants)."""
    from auscult.data.synth.machines import MACHINES

    for cls in {type(m) for m in MACHINES.values()}:
        orig = cls.sample_params

        def sample_params(self, rng, unit, domain, _orig=orig):
            key = json.dumps(unit, sort_keys=True, default=str).encode()
            seed = int.from_bytes(hashlib.sha256(key).digest()[:4], "little")
            return _orig(self, np.random.default_rng(seed), unit, "source")

        cls.sample_params = sample_params


def dataset(root: Path, name: str, layout: str, machines, n_units: int, train_src: int, train_tgt: int,
            test_each: int, background: bool = True):
    from auscult.data.index import DatasetIndex
    from auscult.data.synth import Preset, generate_dataset

    out = root / name
    if not (out / "synth_config.json").is_file():
        sections = tuple(f"{i:02d}" for i in range(n_units))
        generate_dataset(Preset(name, layout, tuple(machines), sections, train_src, train_tgt, test_each, test_each, 5.0),
                         out, seed=3, severity_range=(0.9, 1.0), background=background, workers=1, overwrite=True,
                         probe=False)
    idx = DatasetIndex.scan(out)
    train = sorted(idx.select(split="train"), key=lambda c: str(c.path))
    test = sorted(idx.select(split="test"), key=lambda c: str(c.path))
    return out, train, test


def holdout_split(train):
    """The test module's split: every 14th training clip held out for model selection."""
    val = train[::14]
    return [c for c in train if c not in val], val


def fit(train, seed: int, epochs: int):
    from auscult.data.source import AudioSource
    from auscult.methods import FitContext, build_method
    from auscult.recipes import load_recipe

    cfg = load_recipe("synthetic/osscl")
    cfg["audio"] = {**cfg["audio"], "duration": 2.0}
    cfg["features"] = {**cfg["features"], "n_mels": 32}
    cfg["train"] = {**cfg["train"], "batch_size": 16, "log_every": 0, "patience": None, "epochs": epochs}
    fit_clips, val = holdout_split(train)
    audio = AudioSource(cfg["audio"], memory=True)
    return build_method("osscl", cfg, FitContext(seed=seed, quiet=True)).fit(fit_clips, val, audio), audio


def fit_ae(train, seed: int):
    """The synthetic autoencoder recipe on the same training clips and held-out split as ``fit``."""
    from auscult.data.source import AudioSource
    from auscult.methods import FitContext, build_method
    from auscult.recipes import load_recipe

    cfg = load_recipe("synthetic/autoencoder")
    fit_clips, val = holdout_split(train)
    audio = AudioSource(cfg["audio"], memory=True)
    return build_method("autoencoder", cfg, FitContext(seed=seed, quiet=True)).fit(fit_clips, val, audio), audio


def section_aucs(test, scores) -> float:
    from auscult.eval.metrics import auc

    out = []
    for key in sorted({(c.machine, c.section) for c in test}):
        idx = [i for i, c in enumerate(test) if (c.machine, c.section) == key]
        out.append(auc([test[i].label == "anomaly" for i in idx], scores[idx]))
    return float(np.mean(out))


def kind_aucs(root: Path, test, scores) -> dict[str, float]:
    import csv

    meta = {(r["machine"], Path(r["file"]).name): r["anomaly_kind"] for r in csv.DictReader(open(root / "metadata.csv"))}
    res: dict[str, list[float]] = {}
    for i, c in enumerate(test):
        if c.label != "anomaly":
            continue
        normals = [scores[j] for j, d in enumerate(test)
                   if d.label == "normal" and (d.machine, d.section) == (c.machine, c.section)]
        res.setdefault(f"{c.machine}/{meta[(c.machine, c.path.name)]}", []).append(float(np.mean(scores[i] > np.array(normals))))
    return {k: round(float(np.mean(v)), 2) for k, v in sorted(res.items())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("experiment", choices=("budget", "units", "big", "swap"))
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--fixed", action="store_true", help="swap: one operating point per unit, no background")
    ap.add_argument("--root", type=Path, default=ROOT / "runs" / "diag_osscl")
    ap.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    ap.add_argument("--test-clips", type=int, default=4, help="budget/swap: test clips per unit, domain and label")
    ap.add_argument("--ae", action="store_true", help="also the synthetic autoencoder recipe on the same clips")
    a = ap.parse_args(argv)
    from auscult.eval.metrics import auc

    if a.fixed:
        fix_operating_points()
    if a.experiment in ("budget", "swap") and not a.fixed:
        name = "units" if a.test_clips == 4 else f"units_t{a.test_clips}"
        root, train, test = dataset(a.root, name, "dcase2022", ("pump", "gearbox"), 3, 12, 2, a.test_clips)
    elif a.experiment == "swap":
        root, train, test = dataset(a.root, "fixed_units", "dcase2020", ("fan", "pump", "gearbox"), 3, 30, 0, 8,
                                    background=False)
    elif a.experiment == "units":
        root, train, test = dataset(a.root, "many_units", "dcase2020", ("pump", "gearbox", "fan"), 6, 14, 0, 6)
    else:
        root, train, test = dataset(a.root, "big", "dcase2022", ("pump", "gearbox"), 3, 48, 4, 8)
    print(f"# {a.experiment}: {len(train)} training / {len(test)} test clips, {a.epochs} epochs, data {root}")
    for seed in a.seeds:
        t0 = time.perf_counter()
        m, audio = fit(train, seed, a.epochs)
        s = m.score(test, audio)
        line = f"seed {seed}: anomaly AUC (mean over sections) {section_aucs(test, s):.3f}"
        if a.experiment == "swap":
            normals = [c for c in test if c.label == "normal"]
            units = sorted({c.section for c in normals})
            nxt = {u: units[(i + 1) % len(units)] for i, u in enumerate(units)}
            own = m.score(normals, audio)
            other = m.score([dataclasses.replace(c, section=nxt[c.section]) for c in normals], audio)
            swap = auc([0] * len(own) + [1] * len(other), np.r_[own, other])
            types = sorted({c.machine for c in normals})
            nxt_type = {t: types[(i + 1) % len(types)] for i, t in enumerate(types)}
            as_type = m.score([dataclasses.replace(c, machine=nxt_type[c.machine]) for c in normals], audio)
            mswap = auc([0] * len(own) + [1] * len(as_type), np.r_[own, as_type])
            line += f", machine-swap AUC {mswap:.3f}, unit-swap AUC {swap:.3f}, per kind {kind_aucs(root, test, s)}"
        print(f"{line} ({time.perf_counter() - t0:.0f} s)", flush=True)
        if a.ae:
            t0 = time.perf_counter()
            m, audio = fit_ae(train, seed)
            print(f"seed {seed}: autoencoder (synthetic recipe, whole clips) anomaly AUC (mean over sections) "
                  f"{section_aucs(test, m.score(test, audio)):.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
