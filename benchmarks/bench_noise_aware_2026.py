"""Noise-aware training on simulated DCASE 2026 clips: near-only AE vs the AE trained on both mics.

For each seed: generate the simulator's ``dcase2026`` preset at a small size (two-microphone clips:
near mic = channel 0, far mic = channel 1; see ``src/auscult/data/synth/stereo.py``), then per
machine type train

* ``ae_near``  -- the autoencoder baseline on the near channel only (the organisers' choice, channel 0);
* ``ae_mc``    -- ``autoencoder_mc``: the same network, trained on the near *and* far channels
  (both mics in training only);
* ``ae_far``   -- (reference) the same network on the far channel only;
* ``ae_mc_pm`` -- ``autoencoder_mc`` with per-microphone statistics (``mics.norm``/``mics.backend: per_mic``);
* ``ae_mc_pmb`` -- ae_mc's network with its back-end refitted per microphone (no training of its own);
* ``ts_far``   -- a teacher-student prototype (benchmark only): a far-mic student mapped onto ae_near;

and score every test clip twice, on its near channel and on its far channel alone (single-mic
scoring). Reported: the DCASE 2026 (= 2023-2025) official score (harmonic mean of AUC source,
AUC target and pAUC over all machines) and the mean AUC, mean ± std over seeds, with wall times;
each variant's paired difference to ae_near per seed; and why AUC(target) is low (AUC within the
target domain, within the source domain, and target vs source normals).

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/bench_noise_aware_2026.py --seeds 0,1,2 \
        --root /tmp/bench26 --out runs/bench_noise_aware_2026.jsonl --score both

``--severity LO,HI`` sets the range the test anomalies' severities are drawn from (the simulator's
default 0.1,1.0). At this data size (60 source clips, 20 epochs) the default range leaves anomalies
barely separable within a domain (within-domain AUC 0.48-0.61), too close to chance for a channel
effect of a few hundredths to show; the figures in docs/benchmarks.md therefore use strong faults,
``--severity 1.0,1.0`` (every anomaly at the simulator's largest fault). The generated data's
parameters are recorded in ``<root>/seed<N>/bench_params.json``; a cached root of other parameters is
refused.

``--score both`` trains each network once and scores it with MSE and with the selective
Mahalanobis back-end (training does not depend on the score kind). The default machine types are
six of the preset's seven (ToyCarEmu left out): the set the figures in docs/benchmarks.md were
measured on (the aliases render the same audio as the simulator's names did then).

Results are appended to ``--out`` (one JSON line per seed and variant); ``--table-only`` prints the
table from that file.
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

VARIANTS = {"ae_near": ("autoencoder", "near"), "ae_mc": ("autoencoder_mc", "both"),
            "ae_far": ("autoencoder", "far"), "ae_mc_pm": ("autoencoder_mc", "both"),
            "ae_mc_pmb": ("autoencoder_mc", "both"), "ts_far": ("autoencoder", "near")}
# ts_far (a prototype, benchmark only): teacher-student. The teacher is ae_near (needs ae_near in
# --variants; its near rows are the teacher's, i.e. ae_near's). A student network of the same shape
# maps a far-mic stacked log-mel vector (standardised with the far mic's training statistics) to
# the teacher's standardised near-mic vector of the same frames (paired training clips: both
# channels of one recording). A far-mic clip is scored by the teacher on the student's output:
# MSE of S(x) - T(S(x)), or the selective Mahalanobis back-end on those residual blocks, fitted on
# the training clips' far channels. Both channels in training only; at test time the far mic alone.
# ae_mc_pm: mics.norm = mics.backend = per_mic (one standardisation and one Mahalanobis back-end per
# microphone; its MSE rows differ from ae_mc's by the standardisation only).
# ae_mc_pmb: not a training of its own -- ae_mc's network with its back-end refitted per microphone
# (mics.backend: per_mic; shared standardisation); Mahalanobis rows only, needs ae_mc in --variants.
MICS = {"ae_mc_pm": {"norm": "per_mic", "backend": "per_mic"}}


def dataset(root: Path, seed: int, args) -> Path:
    from dataclasses import replace

    from auscult.data.synth import PRESETS, generate_dataset

    out = root / f"seed{seed}"
    want = data_params(args)
    waited = 0
    while out.exists() and not (out / "metadata.csv").is_file() and waited < 1800:  # another process writes it
        time.sleep(10)
        waited += 10
    if (out / "metadata.csv").is_file():
        check_params(out, want)
        return out
    p = replace(PRESETS["dcase2026"], train_source=args.train_source, train_target=args.train_target,
                test_normal=args.test_per_label, test_anomaly=args.test_per_label, duration=args.duration)
    machines = args.machines.split(",") if args.machines else None
    # written aside, then renamed: two benchmark processes may share --root
    tmp = out.with_name(f"{out.name}.tmp{os.getpid()}")
    generate_dataset(p, tmp, seed=seed, machines=machines, workers=1, probe=False, overwrite=True,
                     severity_range=args.severity)
    (tmp / PARAMS).write_text(json.dumps(want, sort_keys=True) + "\n")
    try:
        os.rename(tmp, out)
    except OSError:  # another process was first: same seed, same bytes
        import shutil

        shutil.rmtree(tmp)
    return out


PARAMS = "bench_params.json"


def data_params(args) -> dict:
    """What the generated data depends on besides the seed (recorded next to it, checked on reuse)."""
    return {"train_source": args.train_source, "train_target": args.train_target,
            "test_per_label": args.test_per_label, "duration": args.duration,
            "severity": list(args.severity), "machines": args.machines}


def check_params(out: Path, want: dict) -> None:
    """A cached ``--root`` holds data of other parameters (e.g. another ``--severity``): refuse to reuse it
    rather than measure the wrong clips. A tree without the record (written before it existed) is one
    generated with the default severity 0.1-1.0."""
    f = out / PARAMS
    have = json.loads(f.read_text()) if f.is_file() else None
    if have is None:
        if tuple(want["severity"]) != (0.1, 1.0):
            raise SystemExit(f"{out} holds data generated without a parameter record (severity 0.1,1.0); "
                             f"use another --root for --severity {want['severity'][0]:g},{want['severity'][1]:g}")
        return
    diff = {k: (have.get(k), v) for k, v in want.items() if have.get(k) != v}
    if diff:
        raise SystemExit(f"{out} holds data generated with other parameters "
                         f"({', '.join(f'{k}: {a} there, {b} asked' for k, (a, b) in diff.items())}); "
                         "use another --root or the same parameters")


def severity(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--severity must be 'lo,hi' (e.g. 0.6,1.0), got {text!r}") from None
    if not 0.0 <= lo <= hi <= 1.0:
        raise argparse.ArgumentTypeError(f"--severity needs 0 <= lo <= hi <= 1, got {text!r}")
    return lo, hi


def config(method: str, channel: str, args, seed: int, mics: dict | None = None) -> dict:
    extra = {}
    if mics:
        extra["mics"] = dict(mics)
        if args.score == "mse":
            extra["mics"]["backend"] = "shared"
    return {**extra, "method": method, "seed": seed,
            "audio": {"sample_rate": 16000, "channel": channel, "length": "keep"},
            "features": {"n_fft": 1024, "hop_length": 512, "n_mels": 128, "power": 2.0},
            "model": {"context": 5, "hidden": 128, "bottleneck": 8, "n_layers": 4, "normalize": True},
            "train": {"epochs": args.epochs, "batch_size": 512, "lr": 1e-3, "log_every": 10_000},
            "score": {"kind": "mahalanobis" if args.score in ("mahalanobis", "both") else "mse"}}


def run_seed(seed: int, args) -> list[dict]:
    import numpy as np

    from auscult.data.index import DatasetIndex
    from auscult.data.source import AudioSource
    from auscult.eval.protocols import evaluate_scores
    from auscult.methods import FitContext, build_method

    root = dataset(Path(args.root), seed, args)
    clips = list(DatasetIndex.scan(root / "dev_data").clips)
    train = [c for c in clips if c.split == "train"]
    test = [c for c in clips if c.split == "test"]
    machines = sorted({c.machine for c in clips})
    mono = {ch: AudioSource({"sample_rate": 16000, "channel": ch, "length": "keep"}) for ch in ("near", "far")}
    rows = []
    # warm-up (torch kernels, mel matrices) so that the first variant's time is not inflated
    build_method("autoencoder", config("autoencoder", "near", args, seed)).features(train[:1], mono["near"])
    for name, (method, channel) in VARIANTS.items():
        if name not in args.variants or name in ("ae_mc_pmb", "ts_far"):
            continue
        pmb = name == "ae_mc" and "ae_mc_pmb" in args.variants and args.score != "mse"
        src = AudioSource({"sample_rate": 16000, "channel": channel, "length": "keep"})
        # --score both: one network per machine, scored both ways (the score kind changes only what is
        # fitted *after* training: the Mahalanobis back-end on the training residuals)
        kinds = ("mse", "mahalanobis") if args.score == "both" else (args.score,)
        ts = name == "ae_near" and "ts_far" in args.variants
        keys = [(name, k, mic) for k in kinds for mic in ("near", "far")]
        if pmb:
            keys += [("ae_mc_pmb", "mahalanobis", mic) for mic in ("near", "far")]
        if ts:
            keys += [("ts_far", k, mic) for k in kinds for mic in ("near", "far")]
        scores = {key: np.zeros(len(test)) for key in keys}
        t0 = time.perf_counter()
        fit_s = 0.0
        score_s = {k: 0.0 for k in kinds}
        refit_s = 0.0
        ts_s = 0.0
        for m in machines:
            tr = [c for c in train if c.machine == m]
            idx = [i for i, c in enumerate(test) if c.machine == m]
            meth = build_method(method, config(method, channel, args, seed, MICS.get(name)),
                                FitContext(seed=seed, group=m, quiet=True))
            t1 = time.perf_counter()
            meth.fit(tr, [], src)
            fit_s += time.perf_counter() - t1
            for k in kinds:
                meth.score_cfg["kind"] = k
                t1 = time.perf_counter()
                for mic in ("near", "far"):
                    if hasattr(meth, "select_mic"):  # the scored mic's statistics (per_mic variants)
                        meth.select_mic(mic)
                    scores[(name, k, mic)][idx] = meth.score([test[i] for i in idx], mono[mic])
                score_s[k] += time.perf_counter() - t1
            if ts:  # the near network is the teacher; a student maps the far mic onto it
                t1 = time.perf_counter()
                student = fit_student(meth, tr, mono, args, seed)
                for k in kinds:
                    meth.score_cfg["kind"] = k
                    scores[("ts_far", k, "near")][idx] = scores[(name, k, "near")][idx]
                    scores[("ts_far", k, "far")][idx] = student.score([test[i] for i in idx], k)
                ts_s += time.perf_counter() - t1
            if pmb:  # the same network, its back-end refitted per microphone
                meth.score_cfg["kind"] = "mahalanobis"
                t1 = time.perf_counter()
                meth.refit_backend(tr, src, "per_mic")
                for mic in ("near", "far"):
                    meth.select_mic(mic)
                    scores[("ae_mc_pmb", "mahalanobis", mic)][idx] = meth.score([test[i] for i in idx], mono[mic])
                refit_s += time.perf_counter() - t1
        wall = time.perf_counter() - t0 - refit_s - ts_s
        if args.scores_dir:
            d = Path(args.scores_dir)
            d.mkdir(parents=True, exist_ok=True)
            np.savez(d / f"seed{seed}_{name}.npz", names=np.asarray([c.name for c in test]),
                     machine=np.asarray([c.machine for c in test]), domain=np.asarray([c.domain for c in test]),
                     label=np.asarray([c.label for c in test]),
                     **{f"{v}__{k}__{mic}": sc for (v, k, mic), sc in scores.items()})
        for (v, k, mic) in keys:
            res = evaluate_scores(test, scores[(v, k, mic)], 2026)
            aucs = [r for r in res.rows]
            row = {"seed": seed, "variant": v, "score": k, "test_mic": mic, "official": res.official_score,
                   "auc_source": float(np.mean([r["auc_source_vs_all_anomalies"] for r in aucs])),
                   "auc_target": float(np.mean([r["auc_target_vs_all_anomalies"] for r in aucs])),
                   "pauc": float(np.mean([r["pauc_mcclish"] for r in aucs])),
                   "auc_mean": float(np.mean([r["auc_all"] for r in aucs])),
                   "per_machine": {r["machine"]: round(float(r["auc_all"]), 4) for r in aucs},
                   **domain_diag(test, scores[(v, k, mic)]),
                   "wall_s": round(wall + {"ae_mc_pmb": refit_s, "ts_far": ts_s}.get(v, 0.0), 1),
                   "fit_s": round(fit_s, 1), "score_s": round(score_s[k] if v == name else refit_s, 1),
                   "epochs": args.epochs, "trained_with": args.score, "load_avg": os.getloadavg()[0],
                   "severity": list(args.severity), "train_source": args.train_source,
                   "duration": args.duration}
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


class Student:
    """``ts_far``: the far-mic student of a near-mic teacher autoencoder (see VARIANTS)."""

    def __init__(self, teacher, net, far_norm, mono):
        self.teacher, self.net, self.far_norm, self.mono = teacher, net, far_norm, mono
        self.backend = None

    def far_features(self, clips):
        t = self.teacher
        keep = t.norm
        t.norm = self.far_norm  # the teacher's front-end, the far mic's standardisation
        try:
            return t.features(clips, self.mono["far"])
        finally:
            t.norm = keep

    def residuals(self, feats):
        import torch

        out = []
        with torch.no_grad():
            for i in range(0, len(feats), 4096):
                y = self.net(feats.gather(torch.arange(i, min(i + 4096, len(feats)))))
                out.append(y - self.teacher.net(y))
        return torch.cat(out, 0)

    def summary(self, clips):
        import numpy as np

        feats = self.far_features(clips)
        res = self.residuals(feats).double()
        n_mels = self.teacher.feature_cfg.n_mels
        mse = np.asarray([float((res[feats.owner == j] ** 2).mean()) for j in range(len(clips))])
        dbar = np.stack([res[feats.owner == j].reshape(-1, n_mels).mean(0).numpy() for j in range(len(clips))])
        return mse, dbar, feats, res

    def fit_backend(self, clips):
        import numpy as np

        from auscult.backends import BACKENDS, BackendMeta

        _, _, feats, res = self.summary(clips)
        n_mels = self.teacher.feature_cfg.n_mels
        ctx = self.teacher.model_cfg["context"]
        rep = np.repeat(feats.owner.numpy(), ctx)
        be = BACKENDS.build("selective_mahalanobis", shrinkage="none", center=False, group_by="section")
        self.backend = be.fit(res.reshape(-1, n_mels).numpy(), BackendMeta.from_clips([clips[i] for i in rep]))

    def score(self, clips, kind):
        from auscult.backends import BackendMeta

        mse, dbar, _, _ = self.summary(clips)
        return mse if kind == "mse" else self.backend.score(dbar, BackendMeta.from_clips(clips))


def fit_student(teacher, train, mono, args, seed) -> Student:
    import torch

    from auscult.engine import seed_everything

    seed_everything(seed)
    raw = teacher.norm
    teacher.norm = None
    try:
        far_raw = teacher.features(train, mono["far"])
    finally:
        teacher.norm = raw
    d = far_raw.data.double()
    far_norm = (d.mean(0).float(), d.std(0).clamp_min(1e-3).float())
    st = Student(teacher, teacher._build_net(), far_norm, mono)
    far = st.far_features(train)
    near = teacher.features(train, mono["near"])  # the teacher's own standardisation
    if far.lengths != near.lengths:
        raise SystemExit("ts_far: near and far channels give different frame counts")
    net = st.net
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    n = len(far)
    for _ in range(args.epochs):
        net.train()
        for idx in torch.randperm(n).split(512):
            x, y = far.gather(idx), near.gather(idx)
            loss = ((net(x) - y) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    st.fit_backend(list(train))
    return st


def domain_diag(test, scores) -> dict:
    """Why AUC(target) can be below 0.5, per machine then averaged: the official AUC(target) pairs the
    target normals with the anomalies of *both* domains. ``auc_target_within`` pairs them with the target
    anomalies only, ``auc_source_within`` the source normals with the source anomalies only, and
    ``auc_tn_vs_sn`` asks how often a target normal scores above a source normal (0.5 = the model does
    not see the domain shift; near 1 = target normals look anomalous to it)."""
    import numpy as np

    from auscult.eval.metrics import auc

    out = {"auc_target_within": [], "auc_source_within": [], "auc_tn_vs_sn": []}
    for m in sorted({c.machine for c in test}):
        sel = [i for i, c in enumerate(test) if c.machine == m]

        def pick(dom, lab):
            return [i for i in sel if test[i].domain == dom and test[i].label == lab]

        def a(neg, pos):
            y = np.r_[np.zeros(len(neg)), np.ones(len(pos))]
            return float(auc(y, np.r_[scores[neg], scores[pos]]))
        out["auc_target_within"].append(a(pick("target", "normal"), pick("target", "anomaly")))
        out["auc_source_within"].append(a(pick("source", "normal"), pick("source", "anomaly")))
        out["auc_tn_vs_sn"].append(a(pick("source", "normal"), pick("target", "normal")))
    return {k: float(np.mean(v)) for k, v in out.items()}


def table(rows: list[dict]) -> str:
    import numpy as np

    def ms(rs, k):
        if not all(k in r for r in rs):  # rows written before the column existed
            return "–"
        v = np.asarray([r[k] for r in rs], dtype=float)
        return f"{v.mean():.3f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.3f}"

    out = ["| score | variant | test mic | official score | AUC source | AUC target | pAUC | mean AUC | "
           "wall s / seed | seeds |", "|---|---|---|---|---|---|---|---|---|---|"]
    diag = ["", "Why AUC(target) is low (means over machine types, then mean ± std over seeds): AUC(target) as "
            "official (target normals vs the anomalies of both domains), within the target domain only, within "
            "the source domain only, and target normals vs source normals (0.5 = the score ignores the domain).",
            "", "| score | variant | test mic | AUC target (official) | AUC target within | AUC source within | "
            "target vs source normals |", "|---|---|---|---|---|---|---|"]
    for kind in ("mse", "mahalanobis"):
        for mic in ("near", "far"):
            for name in VARIANTS:
                rs = [r for r in rows if r["variant"] == name and r["test_mic"] == mic and r.get("score", "mse") == kind]
                if not rs:
                    continue
                out.append(f"| {kind} | {name} | {mic} | {ms(rs, 'official')} | {ms(rs, 'auc_source')} | "
                           f"{ms(rs, 'auc_target')} | {ms(rs, 'pauc')} | {ms(rs, 'auc_mean')} | "
                           f"{np.mean([r['wall_s'] for r in rs]):.0f} | "
                           f"{','.join(str(r['seed']) for r in rs)} |")
                if all("auc_tn_vs_sn" in r for r in rs):
                    diag.append(f"| {kind} | {name} | {mic} | {ms(rs, 'auc_target')} | {ms(rs, 'auc_target_within')} | "
                                f"{ms(rs, 'auc_source_within')} | {ms(rs, 'auc_tn_vs_sn')} |")
    # paired by seed: what a both-mic variant changes against the near-only network, same seed and data
    # the within-domain columns say whether a change is in how the anomalies separate (not in the domain offset)
    out += ["", "| score | test mic | variant − ae_near | Δ official | Δ AUC source | Δ AUC target | Δ pAUC | "
            "Δ mean AUC | Δ AUC within source | Δ AUC within target | Δ official per seed | seeds |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for kind in ("mse", "mahalanobis"):
        for mic in ("near", "far"):
            pick = {(r["variant"], r["seed"]): r for r in rows
                    if r["test_mic"] == mic and r.get("score", "mse") == kind}
            for name in VARIANTS:
                if name == "ae_near":
                    continue
                seeds = sorted(s for (v, s) in pick if v == name and ("ae_near", s) in pick)
                if not seeds:
                    continue

                def dv(k):
                    return np.asarray([pick[(name, s)][k] - pick[("ae_near", s)][k] for s in seeds])

                def d(k):
                    if not all(k in pick[(v, s)] for v in (name, "ae_near") for s in seeds):
                        return "–"
                    v = dv(k)
                    return f"{v.mean():+.3f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.3f}"
                out.append(f"| {kind} | {mic} | {name} | {d('official')} | {d('auc_source')} | {d('auc_target')} | "
                           f"{d('pauc')} | {d('auc_mean')} | {d('auc_source_within')} | {d('auc_target_within')} | "
                           f"{', '.join(f'{x:+.3f}' for x in dv('official'))} | "
                           f"{','.join(map(str, seeds))} |")
    return "\n".join(out + (diag if len(diag) > 5 else []))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--root", default="/tmp/bench_noise_aware_2026")
    ap.add_argument("--out", default="runs/bench_noise_aware_2026.jsonl")
    ap.add_argument("--machines", default="ToyCar,bearingEmu,fan,gearboxEmu,sliderEmu,valveEmu",
                    help="comma-separated machine types of the dcase2026 preset (empty: all seven)")
    ap.add_argument("--variants", default="ae_near,ae_mc,ae_far")
    ap.add_argument("--train-source", type=int, default=60)
    ap.add_argument("--train-target", type=int, default=6)
    ap.add_argument("--test-per-label", type=int, default=15)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--severity", type=severity, default=(0.1, 1.0),
                    help="anomaly severity range lo,hi of the generated test clips (the simulator's default "
                         "0.1,1.0; 0.6,1.0 = strong faults only, the setting where anomalies separate within a "
                         "domain at this data size -- see docs/benchmarks.md)")
    ap.add_argument("--score", default="mse", choices=("mse", "mahalanobis", "both"),
                    help="the AE's score: MSE (2023-2026 baseline), selective Mahalanobis (2022 baseline), or both "
                         "(each network trained once and scored both ways)")
    ap.add_argument("--scores-dir", default=None, help="also save every test clip's scores (npz per seed and variant)")
    ap.add_argument("--table-only", action="store_true")
    args = ap.parse_args()
    args.variants = args.variants.split(",")
    out = Path(args.out)
    if not args.table_only:
        import torch

        torch.set_num_threads(1)
        out.parent.mkdir(parents=True, exist_ok=True)
        for s in [int(x) for x in args.seeds.split(",")]:
            for r in run_seed(s, args):
                with open(out, "a") as fh:
                    fh.write(json.dumps(r) + "\n")
    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    print(table(rows))


if __name__ == "__main__":
    main()
