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

Every cell runs once per seed (``--seeds``, default 0 1 2: a run of these small-data trainings moves
by several points from seed to seed); the tables give mean +- standard deviation over the seeds (per
section cell, the harmonic means, the official score, the wall time) and, for recipes with a stop
rule (``train.patience`` on the ``data.holdout`` training normals), the epochs run and the epoch kept.
``--machines`` restricts the synthetic set to some machine types (a reduced grid: say so when quoting).

Learning curves (``--curve 1 2 4 8``): every recipe is also trained at each budget (``train.epochs``
= the budget, ``train.patience=null``: no early stop, the same held-out split). The methods still
keep the epoch with the best held-out loss *within* the budget, so a column is "the best held-out
epoch of a run of E epochs" (add ``--set data.holdout=0`` for the final weights of E epochs on every
training clip). A table gives this next to the stop rule's choice (the recipe as it is: epochs run /
epoch kept, its AUC).

A recipe whose file or method is missing is skipped with a printed note (methods land one by one).
Results are appended to ``--out`` (JSON lines, one per recipe, dataset, overrides and seed), so cells
can be run in separate processes and tabulated together with ``--table-only``::

    .venv/bin/python benchmarks/bench_quality.py                       # everything (long)
    .venv/bin/python benchmarks/bench_quality.py --datasets gearbox --recipes synthetic/osscl
    .venv/bin/python benchmarks/bench_quality.py --datasets gearbox --curve 1 2 4 8
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

DEFAULT_RECIPES = ["synthetic/logmel_knn", "synthetic/autoencoder", "synthetic/clsia", "synthetic/osscl",
                   "synthetic/ssl4asd", "synthetic/protoasd"]
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


def stop_info(method) -> list[dict]:
    """Per training stage (and per model of a group): epochs run, the epoch kept (lowest val_loss),
    whether the stop rule ended it, and the val_loss curve."""
    h = getattr(method, "history", None)
    if not h:
        return []
    if isinstance(h, dict):
        stages = list(h.items())
    elif isinstance(h[0], list):
        stages = [(f"member{i}", x) for i, x in enumerate(h)]
    else:
        stages = [("train", h)]
    out = []
    for name, recs in stages:
        ep = [r for r in recs if isinstance(r, dict) and r.get("kind", "epoch") == "epoch"]
        if not ep:
            continue
        vals = [(r["val_loss"], r["epoch"]) for r in ep if isinstance(r.get("val_loss"), (int, float))
                and r["val_loss"] == r["val_loss"]]
        out.append({"stage": name, "epochs_run": len(ep), "best_epoch": min(vals)[1] if vals else None,
                    "stopped_early": bool(ep[-1].get("stopped_early")),
                    "val_loss": [r.get("val_loss") for r in ep] if vals else None})
    return out


def run_cell(recipe: str, dataset: str, train, test, year: int, overrides, device: str, cache_dir, seed: int,
             tag: str = ""):
    """Fit one recipe per group on ``train``, score ``test``, evaluate; returns a result dict."""
    import numpy as np

    from auscult.data.source import AudioSource
    from auscult.engine import holdout_split
    from auscult.eval import evaluate_scores
    from auscult.methods import METHODS, FitContext, build_method
    from auscult.recipes import load_recipe

    if "train" not in load_recipe(recipe):  # nothing trains (logmel_knn): train.* overrides do not apply
        overrides = [o for o in overrides if not o.startswith("train.")]
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
    stops: list[dict] = []
    for key, gclips in groups.items():
        if h > 0 and len(gclips) >= 2:
            fit, val = holdout_split(gclips, h, seed=seed, key=lambda c: (c.machine, c.section, c.domain))
        else:
            fit, val = list(gclips), []
        t1 = time.perf_counter()
        method = build_method(cfg["method"], cfg, FitContext(device=device, seed=seed, group=key, quiet=True))
        method.fit(fit, val, audio)
        fit_s += time.perf_counter() - t1
        stops += [{**x, "group": key} for x in stop_info(method)]
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
        "tag": tag, "seed": seed, "wall_s": wall, "fit_s": fit_s, "n_train": len(train), "n_test": len(test),
        "rows": res.rows, "official_score": res.official_score, "aggregates": res.aggregates,
        "epochs": (cfg.get("train") or {}).get("epochs"), "patience": (cfg.get("train") or {}).get("patience"),
        "holdout": h, "stop": stops,
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


def _ms(vals, scale: float = 100.0, fmt: str = "{:.1f}") -> str:
    """``mean ± std`` (sample std over seeds; a single value is printed alone)."""
    import numpy as np

    v = np.asarray([x for x in vals if x is not None], dtype=float) * scale
    if v.size == 0:
        return "-"
    if v.size == 1:
        return fmt.format(v[0])
    return f"{fmt.format(v.mean())} ± {fmt.format(v.std(ddof=1))}"


def cell_keys(r: dict) -> list[str]:
    return (["auc_source_vs_all_anomalies", "auc_target_vs_all_anomalies", "pauc_mcclish"] if r["year"] >= 2022
            else ["auc", "pauc_mcclish"])


def column_of(r: dict) -> str:
    name = r["recipe"].split("/")[-1]
    extra = " ".join(o for o in r["overrides"] if not o.startswith("train.epochs=") and o != "train.patience=null")
    return name + (f" {extra}" if extra else "") + (f" [{r['tag']}]" if r.get("tag") else "")


def stop_text(rs: list[dict]) -> str:
    """Epochs run / epoch kept (1-based) of the first stage, over seeds (and groups): 'run a-b, kept c-d'."""
    runs, kept = [], []
    for r in rs:
        for st in r.get("stop") or []:
            if st["stage"] in ("finetune",):
                continue
            runs.append(st["epochs_run"])
            if st["best_epoch"] is not None:
                kept.append(st["best_epoch"] + 1)
    if not runs:
        return "-"
    rng = lambda v: f"{min(v)}" if min(v) == max(v) else f"{min(v)}-{max(v)}"  # noqa: E731
    return f"run {rng(runs)}" + (f", kept {rng(kept)}" if kept else "")


def print_tables(results: list[dict]) -> None:
    for dataset in sorted({r["dataset"] for r in results}):
        rs_all = [r for r in results if r["dataset"] == dataset and not r.get("curve")]
        if not rs_all:
            continue
        cols: dict[str, list[dict]] = {}
        for r in rs_all:
            cols.setdefault(column_of(r), []).append(r)
        year = rs_all[0]["year"]
        what = "AUC(source) / AUC(target) / pAUC" if year >= 2022 else "AUC / pAUC (source domain)"
        seeds = sorted({r["seed"] for r in rs_all})
        print(f"\n### {dataset} (DCASE {year} protocol; per section: {what}, %; mean ± std over seeds {seeds})\n")
        names = list(cols)
        print("| section | " + " | ".join(names) + " |")
        print("|---|" + "---|" * len(names))
        keys = []
        for r in rs_all:
            for row in r["rows"]:
                k = (row["machine"], row["section"], row.get("domain"))
                if k not in keys:
                    keys.append(k)
        for k in keys:
            cells = []
            for n in names:
                rows = [x for r in cols[n] for x in r["rows"] if (x["machine"], x["section"], x.get("domain")) == k]
                if not rows:
                    cells.append("-")
                    continue
                cells.append(" / ".join(_ms([x[c] for x in rows]) for c in cell_keys(cols[n][0])))
            label = f"{k[0]} {k[1]}" + (f" ({k[2]})" if k[2] else "")
            print(f"| {label} | " + " | ".join(cells) + " |")
        sums = {n: [summary_of(r) for r in cols[n]] for n in names}
        print("| **hmean AUC** | " + " | ".join(f"**{_ms([s['hmean_auc'] for s in sums[n]])}**" for n in names) + " |")
        print("| **hmean pAUC** | " + " | ".join(f"**{_ms([s['hmean_pauc'] for s in sums[n]])}**" for n in names) + " |")
        if any(s["official"] is not None for n in names for s in sums[n]):
            print("| official score | " + " | ".join(_ms([s["official"] for s in sums[n]]) for n in names) + " |")
        print("| seeds | " + " | ".join(str(len(cols[n])) for n in names) + " |")
        print("| wall time (fit + score), s | " + " | ".join(_ms([r["wall_s"] for r in cols[n]], 1.0, "{:.0f}")
                                                            for n in names) + " |")
        print("| max epochs (patience) | " + " | ".join(
            f"{cols[n][0].get('epochs')} ({cols[n][0].get('patience')})" for n in names) + " |")
        print("| epochs run / kept (stop rule) | " + " | ".join(stop_text(cols[n]) for n in names) + " |")
    print_curves(results)


def print_curves(results: list[dict]) -> None:
    """AUC (hmean over sections and domains) vs training budget, and the stop rule's choice."""
    curves = [r for r in results if r.get("curve")]
    for dataset in sorted({r["dataset"] for r in curves}):
        rs = [r for r in curves if r["dataset"] == dataset]
        budgets = sorted({r["curve"] for r in rs})
        recipes = sorted({r["recipe"] for r in rs})
        print(f"\n### learning curves on {dataset}: hmean AUC (%) vs training budget (no early stop; the best"
              f" held-out epoch within the budget is kept), mean ± std over seeds\n")
        print("| recipe | " + " | ".join(f"{b} ep" for b in budgets) + " | stop rule: AUC | stop rule: epochs run / kept |")
        print("|---|" + "---|" * (len(budgets) + 2))
        for rec in recipes:
            cells = [_ms([summary_of(r)["hmean_auc"] for r in rs if r["recipe"] == rec and r["curve"] == b])
                     for b in budgets]
            stop = [r for r in results if r["dataset"] == dataset and r["recipe"] == rec and not r.get("curve")
                    and not r["overrides"]]
            print(f"| {rec.split('/')[-1]} | " + " | ".join(cells) + f" | {_ms([summary_of(r)['hmean_auc'] for r in stop])}"
                  f" | {stop_text(stop)} |")


# ------------------------------------------------------------------------------------------------ main
def load_results(path: Path, more: tuple = ()) -> list[dict]:
    """The last result of each (recipe, dataset, overrides, tag, seed, curve) in ``path`` (then ``more``)."""
    seen: dict = {}
    for p in [path, *more]:
        if not p.is_file():
            continue
        for line in p.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                r.setdefault("seed", 0)
                seen[(r["recipe"], r["dataset"], tuple(r["overrides"]), r.get("tag", ""), r["seed"], r.get("curve"))] = r
    return list(seen.values())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipes", nargs="+", default=DEFAULT_RECIPES, help="recipe names or YAML paths")
    ap.add_argument("--datasets", nargs="+", default=["synthetic", "gearbox"], choices=["synthetic", "gearbox"])
    ap.add_argument("--synth-root", type=Path, default=Path("runs/bench_quality/synth-small"))
    ap.add_argument("--gearbox-root", type=Path, default=None)
    ap.add_argument("--machines", nargs="*", default=None, help="synthetic: only these machine types (reduced grid)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="key=value for every recipe")
    ap.add_argument("--tag", default="", help="a label for this grid (e.g. the machines of a reduced grid)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--curve", type=int, nargs="*", default=None,
                    help="also train each recipe at these budgets (epochs, no stop rule): learning curves")
    ap.add_argument("--curve-only", action="store_true", help="only the --curve budgets (the main cells run elsewhere)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cache-dir", type=Path, default=Path("runs/bench_quality/cache"))
    ap.add_argument("--out", type=Path, default=Path("runs/bench_quality/results.jsonl"))
    ap.add_argument("--table-only", action="store_true", help="only print the table of --out")
    ap.add_argument("--merge", type=Path, nargs="*", default=[], help="more result files to tabulate with --out")
    args = ap.parse_args(argv)

    results = load_results(args.out, tuple(args.merge))
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
    if args.machines and "synthetic" in splits:
        tr, te, yr = splits["synthetic"]
        splits["synthetic"] = ([c for c in tr if c.machine in args.machines],
                               [c for c in te if c.machine in args.machines], yr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    runs = [] if args.curve_only else [(None, [])]
    runs += [(b, [f"train.epochs={b}", "train.patience=null"]) for b in (args.curve or [])]
    for ds, (train, test, year) in splits.items():
        for recipe in args.recipes:
            try:
                find_recipe(recipe)
            except Exception as e:  # noqa: BLE001 - a missing recipe is a note, not a failure
                print(f"# skipping {recipe}: {e}")
                continue
            for budget, extra in runs:
                if budget is not None and recipe.endswith("logmel_knn"):
                    continue  # nothing trains
                for seed in args.seeds:
                    print(f"# {ds}: {recipe} seed {seed}{'' if budget is None else f' budget {budget}'} "
                          f"({len(train)} train / {len(test)} test clips, {args.threads} threads) ...", flush=True)
                    try:
                        r = run_cell(recipe, ds, train, test, year, list(args.overrides) + extra, args.device,
                                     args.cache_dir, seed, tag=args.tag)
                    except LookupError as e:
                        print(f"# skipping {recipe}: {e}")
                        break
                    r["curve"] = budget
                    s = summary_of(r)
                    print(f"#   hmean AUC {100 * s['hmean_auc']:.1f}, hmean pAUC {100 * s['hmean_pauc']:.1f}, "
                          f"{r['wall_s']:.0f} s, stop {stop_text([r])}", flush=True)
                    with open(args.out, "a") as f:
                        f.write(json.dumps(r, default=float) + "\n")
    print_tables(load_results(args.out, tuple(args.merge)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
