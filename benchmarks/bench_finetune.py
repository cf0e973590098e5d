"""Several units of one machine: fine-tune the shipped encoder on them as classes, or keep it frozen?

Protocol (docs/benchmarks.md, "Simulated units never seen in pre-training", extended to several
units): per (machine, seed), a folder of ``--units`` units of one machine type (sections ``00``,
``01``, ... of the simulator at that seed; the encoder's pre-training only ever used sections
``p00``-``p07`` at seed ``1000 + s``, so no unit here was seen in pre-training), ``--n-train``
normal 10 s clips per unit, and per unit ``--test-normal`` normals and ``--test-anomaly`` anomalies
of every kind at severities U(0.1, 1) (``generate_dataset`` with a no-domain preset, as
``bench_small_data.py``). Detectors, side by side in one run, each through the Method API with the
same clips:

* ``encoder_knn`` -- the shipped encoder frozen + local-density k-NN, one model per unit;
* ``encoder_ft`` -- the shipped encoder fine-tuned on all units as classes (``--epochs``), then the
  same k-NN per unit (one model for the folder);
* ``bandstats`` -- the ``auto`` default for small folders, one model per unit.

Per unit: AUC and pAUC (max FPR 0.1, McClish) on its own test clips; reported as mean ± std over
the units (and over the per-seed means), with the fit wall time of each detector per (machine, seed).
Results are appended to ``--out`` after every (machine, seed); ``--resume`` skips those done.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_finetune.py --machines gearbox fan --seeds 0 1 2 \
        --cache /tmp/bench_ft --out /tmp/bench_ft/ft.json --resume
    python benchmarks/bench_finetune.py --table-only /tmp/bench_ft/ft.json
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def dataset(machine: str, seed: int, units: int, n_train: int, n_normal: int, n_anomaly: int, cache: Path):
    from auscult.data.synth import Preset, generate_dataset, load_metadata

    sections = tuple(f"{k:02d}" for k in range(units))
    preset = Preset("bench-finetune", "dcase2020", (machine,), sections, n_train, 0, n_normal, n_anomaly, 10.0,
                    "several units of one machine, no domains")
    root = cache / f"ft-{machine}-u{units}-n{n_train}-t{n_normal}x{n_anomaly}-seed{seed}"
    if not (root / "metadata.csv").is_file():
        print(f"# generating {root.name} ...", flush=True)
        generate_dataset(preset, root, seed=seed, workers=1, overwrite=True, probe=False)
    return root, load_metadata(root)


def run_one(machine: str, seed: int, args) -> dict[str, Any]:
    import soundfile as sf
    import torch

    from auscult.data.source import WaveformSource
    from auscult.eval.metrics import auc, pauc_mcclish
    from auscult.methods import METHODS, FitContext

    torch.set_num_threads(1)
    root, rows = dataset(machine, seed, args.units, args.n_train, args.test_normal, args.test_anomaly, Path(args.cache))
    src = WaveformSource({"sample_rate": 16000, "channel": "mean", "length": "keep"})
    train, test, y = [], [], []
    for r in sorted(rows, key=lambda r: (r["section"], r["split"], r["label"], int(r["index"]))):
        x, fs = sf.read(str(root / r["file"]), dtype="float32")
        c = src.add(x, machine, section=r["section"], split=r["split"], label=r["label"])
        if r["split"] == "train":
            train.append(c)
        else:
            test.append(c)
            y.append(int(r["label"] == "anomaly"))
    y = np.array(y)
    sections = sorted({c.section for c in train})
    out: dict[str, Any] = {"machine": machine, "seed": seed, "units": sections, "n_train": args.n_train,
                           "detectors": {}}

    def evaluate(name: str, scores: np.ndarray, fit_s: float, extra: Optional[dict] = None) -> None:
        per = {}
        for s in sections:
            m = np.array([c.section == s for c in test])
            per[s] = {"auc": 100 * auc(y[m], scores[m]), "pauc": 100 * pauc_mcclish(y[m], scores[m], 0.1)}
        out["detectors"][name] = {"per_unit": per, "fit_s": round(fit_s, 1), **(extra or {})}
        print(f"{machine} seed {seed} {name:18s} AUC " + " ".join(f"{v['auc']:.1f}" for v in per.values())
              + "  pAUC " + " ".join(f"{v['pauc']:.1f}" for v in per.values()) + f"  fit {fit_s:.0f} s", flush=True)

    for name in args.detectors:
        base, _, ep = name.partition("@")
        ep, _, lr = ep.partition(":")
        cfg: dict[str, Any] = {"audio": {"sample_rate": 16000, "channel": "mean", "length": "keep"}}
        if base == "encoder_ft":
            cfg["encoder_ft"] = {"epochs": int(ep or args.epochs), **({"lr": float(lr)} if lr else {})}
        if METHODS.get(base).factory.classes is not None:  # one model over all units
            t0 = time.perf_counter()
            m = METHODS.build(base, config=cfg, context=FitContext(seed=seed, quiet=True)).fit(train, [], src)
            fit_s = time.perf_counter() - t0
            scores = m.score(test, src)
            evaluate(name, np.asarray(scores), fit_s, {"history": getattr(m, "history", [])})
        else:  # one model per unit
            scores, fit_s = np.zeros(len(test)), 0.0
            for s in sections:
                t0 = time.perf_counter()
                m = METHODS.build(base, config=cfg, context=FitContext(seed=seed, quiet=True))
                m.fit([c for c in train if c.section == s], [], src)
                fit_s += time.perf_counter() - t0
                idx = [i for i, c in enumerate(test) if c.section == s]
                scores[idx] = m.score([test[i] for i in idx], src)
            evaluate(name, scores, fit_s)
    out["uptime"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    return out


def _ms(v: Sequence[float]) -> str:
    return f"{np.mean(v):.1f} ± {np.std(v, ddof=1) if len(v) > 1 else 0.0:.1f}"


def print_table(runs: Sequence[dict[str, Any]]) -> None:
    dets = list(dict.fromkeys(d for r in runs for d in r["detectors"]))
    machines = list(dict.fromkeys(r["machine"] for r in runs))
    print("\n| detector | " + " | ".join(f"{m} AUC / pAUC (units)" for m in machines) + " | all units AUC / pAUC | "
          "fit s per (machine, seed) |")
    print("|---|" + "---|" * (len(machines) + 2))
    for d in dets:
        cells, allauc, allp, fits = [], [], [], []
        for m in machines:
            a = [u["auc"] for r in runs if r["machine"] == m and d in r["detectors"] for u in r["detectors"][d]["per_unit"].values()]
            p = [u["pauc"] for r in runs if r["machine"] == m and d in r["detectors"] for u in r["detectors"][d]["per_unit"].values()]
            fits += [r["detectors"][d]["fit_s"] for r in runs if r["machine"] == m and d in r["detectors"]]
            allauc += a
            allp += p
            cells.append(f"{_ms(a)} / {_ms(p)} ({len(a)})" if a else "-")
        print(f"| {d} | " + " | ".join(cells) + f" | {_ms(allauc)} / {_ms(allp)} | {np.mean(fits):.0f} |")
    print("\nper seed (mean over its units), AUC:")
    for d in dets:
        print(f"  {d:18s} " + "  ".join(
            f"{r['machine']}/s{r['seed']} {np.mean([u['auc'] for u in r['detectors'][d]['per_unit'].values()]):.1f}"
            for r in runs if d in r["detectors"]))


def main(argv: Optional[Sequence[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--machines", nargs="+", default=["gearbox", "fan"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--units", type=int, default=3)
    ap.add_argument("--n-train", type=int, default=50)
    ap.add_argument("--test-normal", type=int, default=25)
    ap.add_argument("--test-anomaly", type=int, default=25)
    ap.add_argument("--epochs", type=int, default=5,
                    help="encoder_ft epochs (a detector 'encoder_ft@E' or 'encoder_ft@E:LR' overrides epochs and lr)")
    ap.add_argument("--detectors", nargs="+", default=["bandstats", "encoder_knn", "encoder_ft"])
    ap.add_argument("--cache", default="/tmp/bench_ft")
    ap.add_argument("--out", default=None)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--table-only", nargs="+", default=None)
    a = ap.parse_args(argv)
    if a.table_only:
        print_table([r for f in a.table_only for r in json.loads(Path(f).read_text())["runs"]])
        return
    Path(a.cache).mkdir(parents=True, exist_ok=True)
    out = Path(a.out) if a.out else None
    doc = json.loads(out.read_text()) if (out and a.resume and out.is_file()) else {"runs": []}
    doc["python"] = platform.python_version()
    for machine in a.machines:
        for seed in a.seeds:
            if any(r["machine"] == machine and r["seed"] == seed and set(a.detectors) <= set(r["detectors"])
                   for r in doc["runs"]):
                continue
            r = run_one(machine, seed, a)
            doc["runs"] = [x for x in doc["runs"] if not (x["machine"] == machine and x["seed"] == seed)] + [r]
            if out:
                out.write_text(json.dumps(doc, indent=1))
    print_table(doc["runs"])


if __name__ == "__main__":
    main()
