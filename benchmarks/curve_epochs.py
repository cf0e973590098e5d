"""Learning curves per epoch on the real gearbox folder: the held-out-normal loss the stop rule watches
and the test AUC of the weights of every epoch, from ONE training run per seed.

Not part of CI. ``bench_quality.py --curve`` retrains once per budget and keeps the best held-out epoch
within it; this script instead trains once for the recipe's whole budget (``train.patience=null``: no
early stop, the same held-out split as ``bench_quality.py``: ``data.holdout`` of the training normals
0000-0094, split by ``seed``), keeps a copy of the weights after every epoch, and afterwards scores
the test clips (normals 0095-0194, all anomalies) with each copy as the method would:

* ``ssl4asd``: the member's weights of epoch e, the k-means back-end refitted on the (non-held-out)
  training embeddings, score = min cosine distance (the method's ``score``);
* ``autoencoder``: the weights of epoch e, the Mahalanobis back-end refitted as ``fit`` does;
* ``clsia``: the query encoder of epoch e, batch norm re-estimated on the training clips and the kNN
  back-end refitted as ``fit`` does (one section: one model);
* ``protoasd``: the pre-training weights of epoch e, then (column ``+ft``) the recipe's fine-tuning
  from them (re-seeded identically for every e), then prototypes + covariance on the training
  embeddings and the method's Mahalanobis score; column ``pre`` skips the fine-tuning.

The test AUC is never used to choose anything. The columns ``rule`` replay the recipe's stop rule
(``train.patience``, ``train.min_delta``) on the recorded held-out losses: the epoch it keeps and
where it stops. Results go to ``--out`` (JSON lines, one per recipe and seed); ``--table-only``
prints the tables of a result file::

    PYTHONPATH=src .venv/bin/python benchmarks/curve_epochs.py --recipes synthetic/ssl4asd --seeds 0 1 2 \
        --threads 1 --out runs/curves/epochs.jsonl
    PYTHONPATH=src .venv/bin/python benchmarks/curve_epochs.py --table-only --out runs/curves/epochs.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

SUPPORTED = ("ssl4asd", "protoasd", "clsia", "autoencoder")


def _snapshots():
    """Patch ``_neural.BestWeights`` so every training stage that selects weights also keeps a copy
    of every epoch's weights (``store[stage_index] = [(epoch, state), ...]``)."""
    from auscult.methods import _neural as nu

    store: list[list] = []
    base = nu.BestWeights

    class EveryEpoch(base):
        def __init__(self) -> None:
            super().__init__()
            self.every: list = []
            store.append(self.every)

        def on_epoch_end(self, trainer, record) -> None:
            super().on_epoch_end(trainer, record)
            src = trainer.raw_model
            self.every.append((int(record["epoch"]), {k: v.detach().clone() for k, v in src.state_dict().items()}))

    nu.BestWeights = EveryEpoch
    return store, lambda: setattr(nu, "BestWeights", base)


def replay_rule(vals: list[float], patience, min_delta: float) -> dict:
    """The trainer's rule on a recorded curve: the kept epoch (lowest value counted as an improvement)
    and the epoch after which it stops (``None``: the whole budget runs)."""
    best, best_e, bad = None, None, 0
    for e, v in enumerate(vals):
        if v == v and (best is None or v < best - min_delta):
            best, best_e, bad = v, e, 0
        else:
            bad += 1
            if patience is not None and bad >= int(patience):
                return {"kept": best_e, "stopped_after": e}
    return {"kept": best_e, "stopped_after": None}


def run_one(recipe: str, seed: int, train, test, audio, extra: list[str]) -> dict:
    from auscult.backends import BackendMeta
    from auscult.engine import holdout_split
    from auscult.engine.runtime import seed_everything
    from auscult.eval import evaluate_scores
    from auscult.methods import FitContext, build_method
    from auscult.methods import _neural as nu
    from auscult.recipes import load_recipe

    rule_cfg = load_recipe(recipe, list(extra))
    cfg = load_recipe(recipe, list(extra) + ["train.patience=null"])
    if cfg["method"] not in SUPPORTED:
        raise SystemExit(f"{recipe}: method {cfg['method']!r} is not supported here ({SUPPORTED})")
    h = float((cfg.get("data") or {}).get("holdout") or 0.0)
    if h <= 0:
        raise SystemExit(f"{recipe}: no data.holdout, so no held-out loss to plot")
    fit, val = holdout_split(list(train), h, seed=seed, key=lambda c: (c.machine, c.section, c.domain))
    store, restore = _snapshots()
    t0 = time.perf_counter()
    try:
        m = build_method(cfg["method"], cfg, FitContext(device="cpu", seed=seed, quiet=True))
        m.fit(fit, val, audio)
    finally:
        restore()
    fit_s = time.perf_counter() - t0
    hist = m.history
    if isinstance(hist, dict):  # protoasd: stages; clsia: one model per section
        hist = hist["pretrain"] if "pretrain" in hist else next(iter(hist.values()))
    elif hist and isinstance(hist[0], list):  # ssl4asd: one history per ensemble member
        hist = hist[0]
    if len(store) != 1:
        raise SystemExit(f"{recipe}: {len(store)} selecting training stages (models); this script plots one")
    ep = [r for r in hist if r.get("kind", "epoch") == "epoch"]
    keys = [k for k in ("val_loss", "val_loss_class", "val_loss_exchange") if k in ep[0]]
    curve = {k: [r.get(k) for r in ep] for k in keys}
    snaps = store[0]
    assert [e for e, _ in snaps] == [r["epoch"] for r in ep], "one snapshot per recorded epoch"

    def auc_of(scores):
        rows = evaluate_scores(test, scores, year=2021).rows
        return rows[0]["auc"], rows[0]["pauc_mcclish"]

    points = []
    t1 = time.perf_counter()
    if cfg["method"] == "ssl4asd":
        meta = BackendMeta.from_clips(fit)
        model = m.models[0]
        for e, state in snaps:
            model.load_state_dict(state)
            model.eval()
            m.backends[0] = nu.build_backend(m.backend_cfg, {"name": "kmeans"}).fit(m._embed_with(model, fit, audio), meta)
            a, p = auc_of(m.score(test, audio))
            points.append({"epoch": e, "auc": a, "pauc": p})
    elif cfg["method"] == "autoencoder":
        dev = next(m.net.parameters()).device
        for e, state in snaps:
            m.net.load_state_dict(state)
            m.net.eval()
            if m.score_cfg["kind"] == "mahalanobis":  # as fit: the back-end on the training + held-out clips
                m._fit_backend(list(fit) + list(val), audio, dev)
            a, p = auc_of(m.score(test, audio))
            points.append({"epoch": e, "auc": a, "pauc": p})
    elif cfg["method"] == "clsia":
        (key,) = m.models
        enc = m.models[key]["encoder"]
        anchors = [c for c in fit if key == "*" or m.section_key(c) == key]
        bs = min(int((cfg.get("train") or {}).get("batch_size", 16)), len(anchors))
        for e, state in snaps:  # the MoCo model's state: its query encoder is what scores
            enc.load_state_dict({k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")})
            enc.eval()
            with nu.torch_threads(m.threads):
                if m.opts["recalibrate_bn"]:
                    m._recalibrate_bn(key, anchors, audio, bs)
                m._fit_backend(fit, audio)
            a, p = auc_of(m.score(test, audio))
            points.append({"epoch": e, "auc": a, "pauc": p})
    else:  # protoasd
        from auscult.data.datasets import ClipDataset
        from auscult.methods.protoasd import attribute_class

        cid = {k: i for i, k in enumerate(m.classes)}
        targets = [cid[attribute_class(c)] for c in fit]
        ds = ClipDataset(fit, audio, targets=targets)

        def score_now():
            m.net.eval()
            m.train_embeddings = m.embed(fit, audio)
            m._fit_prototypes()
            return auc_of(m.score(test, audio))

        for e, state in snaps:
            m.net.load_state_dict(state)
            a0, p0 = score_now()
            m.net.load_state_dict(state)
            seed_everything(seed)
            with nu.torch_threads(m.threads):
                m._finetune(ds, fit, targets)
            a1, p1 = score_now()
            points.append({"epoch": e, "auc_pre": a0, "pauc_pre": p0, "auc": a1, "pauc": p1})
    tcfg = rule_cfg.get("train") or {}
    rule = replay_rule(curve["val_loss"], tcfg.get("patience"), float(tcfg.get("min_delta") or 0.0))
    return {"recipe": recipe, "method": cfg["method"], "seed": seed, "overrides": list(extra),
            "epochs": (cfg.get("train") or {}).get("epochs"), "patience": tcfg.get("patience"),
            "n_fit": len(fit), "n_val": len(val), "n_test": len(test), "curve": curve, "points": points,
            "rule": rule, "fit_s": fit_s, "curve_s": time.perf_counter() - t1,
            "host": {"cpus": os.cpu_count(), "load1": os.getloadavg()[0]}}


def _ms(v, scale=100.0):
    import numpy as np

    v = np.asarray([x for x in v if x is not None], float) * scale
    if v.size == 0:
        return "-"
    return f"{v.mean():.1f}" if v.size == 1 else f"{v.mean():.1f} ± {v.std(ddof=1):.1f}"


def print_tables(results: list[dict]) -> None:
    import numpy as np

    for recipe in sorted({r["recipe"] for r in results}):
        rs = sorted([r for r in results if r["recipe"] == recipe], key=lambda r: r["seed"])
        seeds = [r["seed"] for r in rs]
        n = min(len(r["points"]) for r in rs)
        pro = "auc_pre" in rs[0]["points"][0]
        print(f"\n### {recipe} on gearbox: per epoch, mean ± std over seeds {seeds} (test AUC / pAUC %, "
              f"held-out loss; one run of {rs[0]['epochs']} epochs per seed, no early stop)\n")
        head = "| epoch | held-out val_loss |" + (" exchange term |" if "val_loss_exchange" in rs[0]["curve"] else "")
        head += (" AUC pre-trained only | AUC + fine-tuning | pAUC + fine-tuning |" if pro else " AUC | pAUC |")
        print(head)
        print("|" + "---|" * (head.count("|") - 1))
        for i in range(n):
            vl = [r["curve"]["val_loss"][i] for r in rs]
            cells = [f"{np.mean(vl):.4f} ± {np.std(vl, ddof=1):.4f}" if len(vl) > 1 else f"{vl[0]:.4f}"]
            if "val_loss_exchange" in rs[0]["curve"]:
                vx = [r["curve"]["val_loss_exchange"][i] for r in rs]
                cells.append(f"{np.mean(vx):.4f}")
            pts = [r["points"][i] for r in rs]
            if pro:
                cells.append(_ms([p["auc_pre"] for p in pts]))
            cells += [_ms([p["auc"] for p in pts]), _ms([p["pauc"] for p in pts])]
            print(f"| {i + 1} | " + " | ".join(cells) + " |")
        kept = [r["rule"]["kept"] for r in rs]
        stops = [r["rule"]["stopped_after"] for r in rs]
        at_rule = [r["points"][r["rule"]["kept"]]["auc"] for r in rs if r["rule"]["kept"] is not None]
        best = [max(p["auc"] for p in r["points"]) for r in rs]
        last = [r["points"][-1]["auc"] for r in rs]
        print(f"\nstop rule replayed on the held-out loss (patience {rs[0]['patience']}): kept epochs "
              f"{[k + 1 if k is not None else None for k in kept]}, stopped after "
              f"{[s + 1 if s is not None else 'end' for s in stops]}; AUC at the kept epoch {_ms(at_rule)}, at the "
              f"last epoch {_ms(last)}, best epoch in hindsight (test data: not a usable rule) {_ms(best)}. "
              f"Training run {_ms([r['fit_s'] for r in rs], 1.0)} s, scoring every epoch "
              f"{_ms([r['curve_s'] for r in rs], 1.0)} s (load1 at the end "
              f"{', '.join('%.1f' % r['host']['load1'] for r in rs)}).")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipes", nargs="+", default=["synthetic/ssl4asd", "synthetic/protoasd"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="key=value for every recipe")
    ap.add_argument("--gearbox-root", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache-dir", type=Path, default=Path("runs/bench_quality/cache"))
    ap.add_argument("--out", type=Path, default=Path("runs/curves/epochs.jsonl"))
    ap.add_argument("--table-only", action="store_true")
    args = ap.parse_args(argv)

    def load():
        if not args.out.is_file():
            return []
        seen = {}
        for line in args.out.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                seen[(r["recipe"], r["seed"], tuple(r["overrides"]))] = r
        return list(seen.values())

    if args.table_only:
        print_tables(load())
        return 0
    import torch

    from bench_quality import default_gearbox_root, gearbox_split

    from auscult.data.source import AudioSource
    from auscult.recipes import load_recipe

    torch.set_num_threads(args.threads)
    train, test, _ = gearbox_split(args.gearbox_root or default_gearbox_root())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for recipe in args.recipes:
        audio = AudioSource(load_recipe(recipe).get("audio") or {}, cache_dir=args.cache_dir, memory=True)
        for seed in args.seeds:
            print(f"# {recipe} seed {seed} ...", flush=True)
            r = run_one(recipe, seed, train, test, audio, args.overrides)
            print(f"#   val_loss {[round(v, 4) for v in r['curve']['val_loss']]}\n#   AUC "
                  f"{[round(100 * p['auc'], 1) for p in r['points']]}; rule {r['rule']}; "
                  f"fit {r['fit_s']:.0f} s, curve {r['curve_s']:.0f} s", flush=True)
            with open(args.out, "a") as f:
                f.write(json.dumps(r, default=float) + "\n")
    print_tables(load())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
