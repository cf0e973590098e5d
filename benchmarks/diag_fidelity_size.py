"""Is the simulator's fact 1 (a unit classifier beats the autoencoder on a multi-unit set) a data-size
effect? The experiment behind docs/synth.md ("Fact 1 and the training-set size").

Not part of CI. The protocol is tests/methods/test_fidelity.py's (gearbox, three units of one product
line, DCASE 2022 layout, 2 target training clips per unit, 4 s clips, severity 0.5-1, background on,
AE = recipes/synthetic/autoencoder.yaml at 20 epochs, OS-SCL = recipes/synthetic/osscl.yaml at the
test's size: 2 s crops, 32 mels, batch 16, at most 30 epochs with its held-out stop rule on every 9th
training clip; ``--fixed``: every clip trains for ``--epochs`` epochs and the last weights score, as the
published recipes do), except:

* the number of source training clips per unit is ``--sizes`` (the test: 16);
* the test set is ``--test`` normal + ``--test`` anomalous clips per unit and domain (the test: 5).

The simulator seeds every clip by (machine, section, domain, split, label, index), so one dataset per
data seed with the largest size holds every smaller training set as its first N clips, and every size
is scored on the same test clips (paired comparison). Each run appends one JSON line to ``--out``
with the mean per-section AUC, the per-section AUCs, the wall time and, per test clip, the score,
label, kind, severity and SNR (for the analysis of what the classifier keys on: ``--analyse``).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/diag_fidelity_size.py --seed 0 --sizes 16 64 160 --out runs.jsonl
    python benchmarks/diag_fidelity_size.py --analyse runs.jsonl
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

SECTIONS = ("00", "01", "02")


def make_data(root: Path, seed: int, n_max: int, n_test: int, background: bool) -> Path:
    from auscult.data.synth import Preset, generate_dataset

    out = root / f"gearbox_s{seed}_n{n_max}_t{n_test}{'' if background else '_nobg'}"
    if not (out / "metadata.csv").exists():
        preset = Preset("fidelity-size", "dcase2022", ("gearbox",), SECTIONS, n_max, 2, n_test, n_test, 4.0)
        generate_dataset(preset, out, seed=seed, severity_range=(0.5, 1.0), workers=1, overwrite=True,
                         probe=False, background=background)
    return out


def load(root: Path):
    from auscult.data.index import DatasetIndex

    meta = {}
    with open(root / "metadata.csv") as fh:
        for r in csv.DictReader(fh):
            meta[Path(r["file"]).name] = r
    idx = DatasetIndex.scan(root)
    train = sorted(idx.select(split="train"), key=lambda c: str(c.path))
    test = sorted(idx.select(split="test"), key=lambda c: str(c.path))
    return train, test, meta


def subset(train, meta, n: int):
    """The first ``n`` source training clips of every unit (all target ones)."""
    out = []
    for c in train:
        r = meta[c.path.name]
        if r["domain"] == "target" or int(r["index"]) < n:
            out.append(c)
    return out


def section_aucs(test, scores) -> list[float]:
    from auscult.eval.metrics import auc

    out = []
    for sec in SECTIONS:
        i = [k for k, c in enumerate(test) if c.section == sec]
        out.append(float(auc([test[k].label == "anomaly" for k in i], scores[i])))
    return out


def fit(method: str, train, train_seed: int, fixed: bool = False, epochs: int = 30):
    """``(fitted method, its AudioSource)`` with the CI test's settings."""
    import torch

    from auscult.data.source import AudioSource
    from auscult.methods import FitContext, build_method
    from auscult.recipes import load_recipe

    torch.set_num_threads(1)
    if method == "ae":
        cfg = load_recipe("synthetic/autoencoder")
        cfg["train"] = {**cfg["train"], "epochs": 20, "log_every": 0}
        audio = AudioSource(cfg["audio"], memory=True)
        return build_method("autoencoder", cfg, FitContext(seed=train_seed, quiet=True)).fit(train, [], audio), audio
    if method == "osscl":
        cfg = load_recipe("synthetic/osscl")
        cfg["audio"] = {**cfg["audio"], "duration": 2.0}
        cfg["features"] = {**cfg["features"], "n_mels": 32}
        cfg["train"] = {**cfg["train"], "epochs": epochs, "batch_size": 16, "log_every": 0}
        if fixed:  # the published recipe's fixed schedule: every clip trains, no stop rule, last weights
            cfg["train"]["patience"] = None
        audio = AudioSource(cfg["audio"], memory=True)
        val = [] if fixed else train[::9]
        m = build_method("osscl", cfg, FitContext(seed=train_seed, quiet=True)).fit(
            [c for c in train if c not in val], val, audio)
        return m, audio
    if method == "ssl4asd":
        cfg = load_recipe("synthetic/ssl4asd")
        cfg["train"] = {**cfg["train"], "log_every": 0}
        audio = AudioSource(cfg["audio"], memory=True)
        return build_method("ssl4asd", cfg, FitContext(seed=train_seed, quiet=True)).fit(train, [], audio), audio
    raise SystemExit(f"unknown method {method}")


def score(method: str, m, audio, test) -> tuple[np.ndarray, dict]:
    """Scores of ``test``; for OS-SCL also the cross-entropy under every unit (the classifier's own
    task on unseen clips) and its training history."""
    import dataclasses

    scores = np.asarray(m.score(test, audio), dtype=np.float64)
    extra = {}
    if method == "osscl":
        ce = np.stack([m.score([dataclasses.replace(c, section=s) for c in test], audio) for s in SECTIONS], 1)
        extra["ce_all"] = ce.round(4).tolist()
        extra["epochs_run"] = len(m.history)
        extra["val_loss"] = [round(float(h.get("val_loss", float("nan"))), 4) for h in m.history]
        extra["selected"] = m.selected
    return scores, extra


def fit_score(method: str, train, test, train_seed: int, fixed: bool = False, epochs: int = 30):
    m, audio = fit(method, train, train_seed, fixed, epochs)
    scores, extra = score(method, m, audio, test)
    if method == "osscl":
        extra["fixed"], extra["epochs"] = fixed, epochs
    return scores, extra


def run(args) -> None:
    root = Path(args.root)
    data = make_data(root, args.seed, max(args.sizes), args.test, not args.no_background)
    train_all, test, meta = load(data)
    for n in args.sizes:
        train = subset(train_all, meta, n)
        for method in args.methods:
            t0 = time.perf_counter()
            scores, extra = fit_score(method, train, test, args.train_seed, args.fixed, args.epochs)
            wall = time.perf_counter() - t0
            secs = section_aucs(test, scores)
            rec = {"seed": args.seed, "train_seed": args.train_seed, "n_per_unit": n, "n_train": len(train),
                   "method": method, "background": not args.no_background, "auc": float(np.mean(secs)),
                   "section_auc": secs, "wall_s": round(wall, 1),
                   "clips": [{"section": c.section, "domain": c.domain, "label": c.label,
                              "kind": meta[c.path.name]["anomaly_kind"],
                              "severity": meta[c.path.name]["severity"], "snr_db": meta[c.path.name]["snr_db"],
                              "score": float(s)} for c, s in zip(test, scores)], **extra}
            with open(args.out, "a") as fh:
                fh.write(json.dumps(rec) + "\n")
            print(f"seed {args.seed} n {n:4d} {method:8s} AUC {rec['auc']:.3f} "
                  f"({' '.join(f'{a:.2f}' for a in secs)}) {wall:.0f} s", flush=True)


#: the installation's constants (sample_installation): where the microphone stands in which room...
ROOM_KEYS = ("mic_m", "far_ratio", "rt60_s", "drr_db", "room_seed")
#: ... and at which background level (the unit's place in the SNR range)
VARIANTS = ("orig", "nobg", "room", "snr", "install", "level")


def variant_tree(seed: int, n_max: int, n_test: int, out: Path, variant: str) -> Path:
    """The test clips of :func:`make_data`'s dataset, re-rendered with one thing changed (diagnosis only):

    * ``nobg``: no factory background;
    * ``room`` / ``snr`` / ``install``: the unit's machine with the *next* unit's room and microphone
      (``ROOM_KEYS``), background level (``snr_q``) or both;
    * ``level``: anomalous clips get the background at their own (faulty) machine's level instead of
      the healthy machine's, so that a louder fault does not raise the clip's SNR.
    """
    import soundfile as sf

    from auscult.data.synth import Preset, render_clip
    from auscult.data.synth.dsp import rms
    from auscult.data.synth.render import unit_for
    from auscult.data.synth.writer import SynthConfig, _clip_seed, plan

    if (out / "done").exists():
        return out
    preset = Preset("fidelity-size", "dcase2022", ("gearbox",), SECTIONS, n_max, 2, n_test, n_test, 4.0)
    cfg = SynthConfig(preset, seed=seed, severity_range=(0.5, 1.0))
    for job in plan(cfg):
        if job.split != "test":
            continue
        unit = unit_for(job.machine, job.section, seed)
        if variant in ("room", "snr", "install"):
            donor = unit_for(job.machine, SECTIONS[(SECTIONS.index(job.section) + 1) % len(SECTIONS)], seed)
            keys = {"room": ROOM_KEYS, "snr": ("snr_q",), "install": ROOM_KEYS + ("snr_q",)}[variant]
            unit = {**unit, **{k: donor[k] for k in keys}}
        kw = dict(seed=_clip_seed(seed, job), domain=job.domain, unit=unit, sample_rate=16000, duration=4.0)
        if variant == "level" and job.kind:
            faulty = render_clip(job.machine, anomaly=job.kind, severity=job.severity, background=False, **kw)
            clean = render_clip(job.machine, background=False, **kw).astype(np.float64)
            bg = render_clip(job.machine, background=True, **kw) - clean
            x = faulty + bg * rms(faulty) / rms(clean)
            x = x * min(1.0, 0.99 / np.max(np.abs(x)))
        else:
            x = render_clip(job.machine, anomaly=job.kind, severity=job.severity, background=variant != "nobg", **kw)
        path = out / job.relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), np.asarray(x, dtype=np.float32), 16000, subtype="PCM_16")
    (out / "done").write_text("")
    return out


def keys(args) -> None:
    """Train AE and OS-SCL (fixed schedule) once, score the test clips and their variants."""
    from auscult.data.index import DatasetIndex

    root = Path(args.root)
    n = max(args.sizes)
    data = make_data(root, args.seed, n, args.test, True)
    train_all, test, meta = load(data)
    train = subset(train_all, meta, n)
    fitted = {}
    for method in ("osscl", "ae"):
        t0 = time.perf_counter()
        fitted[method] = fit(method, train, args.train_seed, fixed=method == "osscl", epochs=args.epochs)
        print(f"fit {method}: {time.perf_counter() - t0:.0f} s", flush=True)
    for v in VARIANTS:
        if v == "orig":
            tv = test
        else:
            vroot = variant_tree(args.seed, n, args.test, root / f"{data.name}_{v}", v)
            tv = sorted(DatasetIndex.scan(vroot).select(split="test"), key=lambda c: str(c.path))
        assert [c.path.name for c in tv] == [c.path.name for c in test]
        rec = {"mode": "keys", "seed": args.seed, "n_per_unit": n, "variant": v, "epochs": args.epochs}
        for method, (m, audio) in fitted.items():
            sc, extra = score(method, m, audio, tv)
            rec[method] = float(np.mean(section_aucs(tv, sc)))
            if method == "osscl":
                ce = np.array(extra["ce_all"])
                own = np.array([SECTIONS.index(c.section) for c in tv])
                pred = ce.argmin(1)
                lab = np.array([c.label == "anomaly" for c in tv])
                rec["pred_own"] = float((pred == own)[~lab].mean())
                rec["pred_donor"] = float((pred == (own + 1) % len(SECTIONS))[~lab].mean())
                rec["pred_own_anomalies"] = float((pred == own)[lab].mean())
        with open(args.out, "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        print(f"{v:8s} AUC AE {rec['ae']:.3f} OS-SCL {rec['osscl']:.3f}; OS-SCL predicts (normals) own unit "
              f"{rec['pred_own']:.2f}, donor {rec['pred_donor']:.2f}; anomalies own {rec['pred_own_anomalies']:.2f}",
              flush=True)


def label(r: dict) -> str:
    """Method name, with OS-SCL's schedule: ``osscl`` (the CI test's: stop rule) or ``osscl-fixedE``."""
    return r["method"] + (f"-fixed{r['epochs']}" if r.get("fixed") else "")


def analyse(path: str) -> None:
    from scipy.stats import spearmanr

    recs = [r for r in map(json.loads, open(path)) if r.get("mode") != "keys"]
    groups: dict = {}
    for r in recs:
        groups.setdefault((label(r), r["background"], r["n_per_unit"]), []).append(r)
    print("| method | background | clips/unit | seeds | mean per-section AUC | wall s |")
    print("|---|---|---|---|---|---|")
    for (m, bg, n), rs in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0])):
        a = np.array([r["auc"] for r in rs])
        print(f"| {m} | {'on' if bg else 'off'} | {n} | {len(rs)} ({','.join(str(r['seed']) for r in rs)}) | "
              f"{a.mean():.3f} ± {a.std():.3f} | {np.mean([r['wall_s'] for r in rs]):.0f} |")
    print("\nPer fault kind (mean per-section AUC of that kind's clips against the section's normals; mean over seeds)")
    kinds = sorted({c["kind"] for r in recs for c in r["clips"] if c["kind"]})
    print("| method | background | clips/unit | " + " | ".join(kinds) + " |")
    print("|---|---|---|" + "---|" * len(kinds))
    from auscult.eval.metrics import auc as _auc

    for (m, bg, n), rs in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0])):
        row = []
        for k in kinds:
            per_seed = []
            for r in rs:
                cl = r["clips"]
                per_sec = []
                for sec in SECTIONS:
                    i = [j for j, c in enumerate(cl) if c["section"] == sec and (c["label"] == "normal" or c["kind"] == k)]
                    y = [cl[j]["label"] == "anomaly" for j in i]
                    if any(y) and not all(y):
                        per_sec.append(_auc(y, np.array([cl[j]["score"] for j in i])))
                per_seed.append(np.mean(per_sec))
            row.append(f"{np.mean(per_seed):.2f}")
        print(f"| {m} | {'on' if bg else 'off'} | {n} | " + " | ".join(row) + " |")
    print("\nOS-SCL: what the score follows (per run; test clips, per section ranks pooled)")
    print("| run | seed | clips/unit | bg | epochs run (selected) | unit accuracy normals / anomalies | Spearman(score, SNR) normals | "
          "anomalies | AUC src / tgt |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in recs:
        if r["method"] != "osscl":
            continue
        cl = r["clips"]
        ce = np.array(r["ce_all"])
        own = np.array([SECTIONS.index(c["section"]) for c in cl])
        pred = ce.argmin(1)
        lab = np.array([c["label"] == "anomaly" for c in cl])
        snr = np.array([float(c["snr_db"]) for c in cl])
        sc = np.array([c["score"] for c in cl])
        dom = np.array([c["domain"] for c in cl])
        acc_n, acc_a = (pred == own)[~lab].mean(), (pred == own)[lab].mean()
        rho_n = spearmanr(sc[~lab], snr[~lab]).correlation if r["background"] else float("nan")
        rho_a = spearmanr(sc[lab], snr[lab]).correlation if r["background"] else float("nan")
        from auscult.eval.metrics import auc

        a_dom = [np.mean([auc(lab[(own == s) & (dom == d)], sc[(own == s) & (dom == d)]) for s in range(3)])
                 for d in ("source", "target")]
        print(f"| {label(r)} | {r['seed']} | {r['n_per_unit']} | {'on' if r['background'] else 'off'} | {r['epochs_run']} ({r.get('selected', '?')}) | {acc_n:.2f} / {acc_a:.2f} | "
              f"{rho_n:+.2f} | {rho_a:+.2f} | {a_dom[0]:.2f} / {a_dom[1]:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0, help="data seed")
    ap.add_argument("--train-seed", type=int, default=0)
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 64, 160])
    ap.add_argument("--test", type=int, default=10, help="normal (= anomalous) test clips per unit and domain")
    ap.add_argument("--methods", nargs="+", default=["ae", "osscl"])
    ap.add_argument("--no-background", action="store_true")
    ap.add_argument("--fixed", action="store_true",
                    help="OS-SCL without the stop rule: every epoch, the last weights (the published schedule)")
    ap.add_argument("--epochs", type=int, default=30, help="OS-SCL's epochs (the CI test: 30)")
    ap.add_argument("--root", default="/tmp/auscult-fidelity-size")
    ap.add_argument("--out", default="fidelity_size.jsonl")
    ap.add_argument("--analyse", metavar="JSONL")
    ap.add_argument("--keys", action="store_true",
                    help="what OS-SCL keys on: fit at the largest size, score variants of the test clips")
    args = ap.parse_args()
    if args.analyse:
        analyse(args.analyse)
    elif args.keys:
        keys(args)
    else:
        run(args)


if __name__ == "__main__":
    main()
