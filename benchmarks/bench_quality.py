"""Quality benchmark: every method recipe on (a) the synthetic ``small`` preset and (b) the real
DCASE 2021 gearbox clips, with the official-style table and the wall time per method.

Not part of CI. Budgets are the recipes' (``recipes/synthetic/*.yaml``: sized for 2 CPU cores);
``--set key=value`` overrides every recipe (e.g. ``--set train.epochs=2`` for a smoke run).

Datasets:

* ``synthetic``: ``auscult synth --preset small --seed 0`` (7 machine types, one section each,
  90 source + 10 target training clips, 10 + 10 test clips per domain and label, 10 s); generated
  into ``--synth-root`` when it is not there. Protocol: DCASE 2023 (AUC source / target vs all
  anomalies, pAUC, official score = harmonic mean of all of them).
* ``gearbox``: ``dcase2021-gearbox-s00`` from the shared real-clip folder (section 00, source
  domain, 195 normal + 105 anomalous test clips; no training split). Train on the normals
  ``0000``-``0094``, test on the other 100 normals and all 105 anomalies. Protocol: DCASE 2021
  (AUC and pAUC of the source domain).

A recipe whose file or method is missing is skipped with a printed note (methods land one by one).
Results are appended to ``--out`` (JSON lines, one per method and dataset), so cells can be run in
separate processes and tabulated together with ``--table-only``::

    .venv/bin/python benchmarks/bench_quality.py                       # everything (long)
    .venv/bin/python benchmarks/bench_quality.py --datasets gearbox --recipes synthetic/osscl
    .venv/bin/python benchmarks/bench_quality.py --table-only --out runs/bench_quality.jsonl
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

DEFAULT_RECIPES = ["synthetic/autoencoder", "synthetic/clsia", "synthetic/osscl", "synthetic/ssl4asd",
                   "synthetic/protoasd"]
GEARBOX_TRAIN_LAST = 94  # normals 0000-0094 train, the rest test


# ------------------------------------------------------------------------------------------------ data
def synthetic_split(root: Path):
    """``(train, test, year)`` of a generated dataset (generated first when missing)."""
    from auscult.data.index import DatasetIndex

    if not (root / "synth_config.json").is_file():
        from auscult.data.synth import generate_dataset

        print(f"# generating the synthetic 'small' preset into {root} ...", flush=True)
        generate_dataset("small", root, seed=0, workers=max(1, min(2, os.cpu_count() or 1)), overwrite=True)
    idx = DatasetIndex.scan(root)
    return list(idx.select(split="train")), list(idx.select(split="test")), 2023


def gearbox_split(root: Path):
    """``(train, test, year)``: normals 0000-0094 of section 00 for training, the rest for testing."""
    from auscult.data.index import DatasetIndex

    if not root.is_dir():
        raise FileNotFoundError(f"{root}: gearbox clips not found (set AUSCULT_SHARED_DATA or --gearbox-root)")
    idx = DatasetIndex.scan(root)
    clips = [c for c in idx.clips if c.section == "00"]
    train = [dataclasses.replace(c, split="train") for c in clips
             if c.label == "normal" and c.index <= GEARBOX_TRAIN_LAST]
    test = [c for c in clips if not (c.label == "normal" and c.index <= GEARBOX_TRAIN_LAST)]
    return train, test, 2021


def default_gearbox_root() -> Path:
    env = os.environ.get("AUSCULT_SHARED_DATA")
    base = Path(env) if env else ROOT.parent / "shared" / "data"
    return base / "dcase2021-gearbox-s00"


# ------------------------------------------------------------------------------------------------ run
def group_of(clip, model_per: str) -> str:
    if model_per == "all":
        return "all"
    if model_per == "machine":
        return clip.machine
    return f"{clip.machine}/section_{clip.section}"


def run_cell(recipe: str, dataset: str, train, test, year: int, overrides, device: str, cache_dir, seed: int):
    """Fit one recipe per group on ``train``, score ``test``, evaluate; returns a result dict."""
    import numpy as np

    from auscult.data.source import AudioSource
    from auscult.engine import holdout_split
    from auscult.eval import evaluate_scores
    from auscult.methods import METHODS, FitContext, build_method
    from auscult.recipes import load_recipe

    cfg = load_recipe(recipe, list(overrides))
    if cfg["method"] not in METHODS.names():
        raise LookupError(f"method {cfg['method']!r} is not registered")
    audio = AudioSource(cfg.get("audio") or {}, cache_dir=cache_dir, memory=True)
    model_per = cfg.get("model_per", "machine")
    groups: dict[str, list] = {}
    for c in train:
        groups.setdefault(group_of(c, model_per), []).append(c)
    h = float((cfg.get("data") or {}).get("holdout") or 0.0)
    scores = np.full(len(test), np.nan)
    t0 = time.perf_counter()
    fit_s = 0.0
    for key, gclips in groups.items():
        if h > 0 and len(gclips) >= 2:
            fit, val = holdout_split(gclips, h, seed=seed, key=lambda c: (c.machine, c.section, c.domain))
        else:
            fit, val = list(gclips), []
        t1 = time.perf_counter()
        method = build_method(cfg["method"], cfg, FitContext(device=device, seed=seed, group=key, quiet=True))
        method.fit(fit, val, audio)
        fit_s += time.perf_counter() - t1
        idx = [i for i, c in enumerate(test) if group_of(c, model_per) == key]
        if idx:
            scores[idx] = method.score([test[i] for i in idx], audio)
    wall = time.perf_counter() - t0
    if np.isnan(scores).any():
        missing = sorted({group_of(test[i], model_per) for i in np.flatnonzero(np.isnan(scores))})
        raise RuntimeError(f"no model for test groups {missing}")
    res = evaluate_scores(test, scores, year=year)
    return {
        "recipe": recipe, "method": cfg["method"], "dataset": dataset, "year": year, "overrides": list(overrides),
        "wall_s": wall, "fit_s": fit_s, "n_train": len(train), "n_test": len(test),
        "rows": res.rows, "official_score": res.official_score, "aggregates": res.aggregates,
        "epochs": (cfg.get("train") or {}).get("epochs"),
        "host": {"cpus": os.cpu_count(), "threads": _threads(), "python": platform.python_version(),
                 "load1": os.getloadavg()[0] if hasattr(os, "getloadavg") else None},
    }


def _threads() -> int:
    import torch

    return torch.get_num_threads()


# ------------------------------------------------------------------------------------------------ table
def _hmean(vals):
    from auscult.eval.metrics import harmonic_mean_official

    vals = [v for v in vals if v is not None]
    return harmonic_mean_official(vals) if vals else float("nan")


def summary_of(r: dict) -> dict:
    """Harmonic means over sections (and domains) of AUC and pAUC, as the official scores do."""
    rows = r["rows"]
    if r["year"] >= 2022:
        aucs = [x["auc_source_vs_all_anomalies"] for x in rows] + [x["auc_target_vs_all_anomalies"] for x in rows]
    else:
        aucs = [x["auc"] for x in rows]
    paucs = [x["pauc_mcclish"] for x in rows]
    return {"hmean_auc": _hmean(aucs), "hmean_pauc": _hmean(paucs), "official": r.get("official_score")}


def cell_text(r: dict, row: dict) -> str:
    if r["year"] >= 2022:
        return (f"{100 * row['auc_source_vs_all_anomalies']:.1f} / {100 * row['auc_target_vs_all_anomalies']:.1f}"
                f" / {100 * row['pauc_mcclish']:.1f}")
    return f"{100 * row['auc']:.1f} / {100 * row['pauc_mcclish']:.1f}"


def print_tables(results: list[dict]) -> None:
    for dataset in sorted({r["dataset"] for r in results}):
        rs = [r for r in results if r["dataset"] == dataset]
        methods = [r["recipe"].split("/")[-1] + (" " + " ".join(r["overrides"]) if r["overrides"] else "") for r in rs]
        year = rs[0]["year"]
        what = "AUC(source) / AUC(target) / pAUC" if year >= 2022 else "AUC / pAUC (source domain)"
        print(f"\n### {dataset} (DCASE {year} protocol; per section: {what}, %)\n")
        print("| section | " + " | ".join(methods) + " |")
        print("|---|" + "---|" * len(methods))
        keys = []
        for r in rs:
            for row in r["rows"]:
                k = (row["machine"], row["section"], row.get("domain"))
                if k not in keys:
                    keys.append(k)
        for k in keys:
            cells = []
            for r in rs:
                row = next((x for x in r["rows"] if (x["machine"], x["section"], x.get("domain")) == k), None)
                cells.append(cell_text(r, row) if row else "-")
            label = f"{k[0]} {k[1]}" + (f" ({k[2]})" if k[2] else "")
            print(f"| {label} | " + " | ".join(cells) + " |")
        sums = [summary_of(r) for r in rs]
        print("| **hmean AUC** | " + " | ".join(f"**{100 * s['hmean_auc']:.1f}**" for s in sums) + " |")
        print("| **hmean pAUC** | " + " | ".join(f"**{100 * s['hmean_pauc']:.1f}**" for s in sums) + " |")
        if any(s["official"] is not None for s in sums):
            print("| official score | " + " | ".join("-" if s["official"] is None else f"{100 * s['official']:.1f}"
                                                    for s in sums) + " |")
        print("| wall time (fit + score) | " + " | ".join(f"{r['wall_s']:.0f} s" for r in rs) + " |")
        print("| epochs | " + " | ".join(str(r.get("epochs")) for r in rs) + " |")


# ------------------------------------------------------------------------------------------------ main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipes", nargs="+", default=DEFAULT_RECIPES, help="recipe names or YAML paths")
    ap.add_argument("--datasets", nargs="+", default=["synthetic", "gearbox"], choices=["synthetic", "gearbox"])
    ap.add_argument("--synth-root", type=Path, default=Path("runs/bench_quality/synth-small"))
    ap.add_argument("--gearbox-root", type=Path, default=None)
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="key=value for every recipe")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache-dir", type=Path, default=Path("runs/bench_quality/cache"))
    ap.add_argument("--out", type=Path, default=Path("runs/bench_quality/results.jsonl"))
    ap.add_argument("--table-only", action="store_true", help="only print the table of --out")
    args = ap.parse_args(argv)

    results: list[dict] = []
    if args.out.is_file():  # the last result of each (recipe, dataset, overrides) wins
        seen: dict = {}
        for line in args.out.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                seen[(r["recipe"], r["dataset"], tuple(r["overrides"]))] = r
        results = list(seen.values())
    if args.table_only:
        print_tables(results)
        return 0

    from auscult.engine.runtime import tune_allocator

    tune_allocator()
    import torch

    torch.set_num_threads(args.threads)
    from auscult.recipes import find_recipe

    splits = {}
    for ds in args.datasets:
        try:
            splits[ds] = synthetic_split(args.synth_root) if ds == "synthetic" else gearbox_split(
                args.gearbox_root or default_gearbox_root())
        except FileNotFoundError as e:
            print(f"# skipping dataset {ds}: {e}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for ds, (train, test, year) in splits.items():
        for recipe in args.recipes:
            try:
                find_recipe(recipe)
            except Exception as e:  # noqa: BLE001 - a missing recipe is a note, not a failure
                print(f"# skipping {recipe}: {e}")
                continue
            print(f"# {ds}: {recipe} ({len(train)} train / {len(test)} test clips, {args.threads} threads) ...",
                  flush=True)
            try:
                r = run_cell(recipe, ds, train, test, year, args.overrides, args.device, args.cache_dir, args.seed)
            except LookupError as e:
                print(f"# skipping {recipe}: {e}")
                continue
            s = summary_of(r)
            print(f"#   hmean AUC {100 * s['hmean_auc']:.1f}, hmean pAUC {100 * s['hmean_pauc']:.1f}, "
                  f"{r['wall_s']:.0f} s", flush=True)
            results = [x for x in results if not (x["recipe"] == recipe and x["dataset"] == ds
                                                  and x["overrides"] == r["overrides"])] + [r]
            with open(args.out, "a") as f:
                f.write(json.dumps(r, default=float) + "\n")
    print_tables(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
