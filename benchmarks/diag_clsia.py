"""Why CLSIA scores below chance on the synthetic ``small`` preset: the experiments behind
docs/methods/clsia.md ("When it works and when it does not").

Not part of CI. Each run trains ``recipes/synthetic/clsia.yaml`` (optionally with ``--set``
overrides) once per machine type of the chosen data set and seed, embeds the training and test clips,
and scores the test clips with several back-ends on the *same* embeddings, so the back-end, the
target domain and the orientation of the score can be told apart from the learned representation:

* ``recipe``: the method's own ``score`` (kNN k = 1, Euclidean, min over the section's source and
  target training clips, as the recipe);
* ``knn_cos``: 1-NN cosine distance; ``knn_src``: 1-NN Euclidean against the *source* training clips
  only; ``knn_dom``: against the training clips of the test clip's own domain; ``maha``: Mahalanobis
  distance to the training embeddings (Ledoit-Wolf covariance);
* ``mel_knn``: the same 1-NN (Euclidean, min over domains) on the time-averaged, pre-normalised
  log-mel the encoder sees -- the input space, no network (is the data itself separable this way?).

Fits get no held-out clips (``val = []``): the recipe's fixed schedule, as in the figures of
docs/benchmarks.md before the stop rule, whatever ``data.holdout`` / ``train.patience`` say.

Per section it prints AUC(source normals vs all anomalies), AUC(target normals vs all anomalies)
(the DCASE 2023 protocol) and the within-domain AUCs (source normals vs source anomalies, target vs
target), averaged over sections, and the official score of ``recipe``. ``--untrained`` replaces
training by a learning rate of 1e-12 for one epoch (random encoder, batch norm re-estimated on the
training clips): what the view pipeline and the objective add over a random network.

Usage (data: ``--root`` of a generated set, default the small preset generated on first use)::

    .venv/bin/python benchmarks/diag_clsia.py --seeds 0 1 2
    .venv/bin/python benchmarks/diag_clsia.py --seeds 0 1 2 --untrained
    .venv/bin/python benchmarks/diag_clsia.py --seeds 0 1 2 --set augment.logmixupexp.alpha=0 --tag nomix
    .venv/bin/python benchmarks/diag_clsia.py --seeds 0 --untrained --layers     # per-stage 1-NN
    .venv/bin/python benchmarks/diag_clsia.py --chance 300                      # what random scores get
    .venv/bin/python benchmarks/diag_clsia.py --gearbox --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

SCORES = ("recipe", "knn_cos", "knn_src", "knn_dom", "maha", "mel_knn")


def _pdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(d, 0.0))


def _nn(test: np.ndarray, train: np.ndarray) -> np.ndarray:
    return _pdist(test.astype(np.float64), train.astype(np.float64)).min(1)


def _maha(test: np.ndarray, train: np.ndarray) -> np.ndarray:
    from sklearn.covariance import LedoitWolf

    lw = LedoitWolf().fit(train.astype(np.float64))
    d = test.astype(np.float64) - lw.location_
    return np.sqrt(np.einsum("ij,jk,ik->i", d, lw.precision_, d))


def mel_means(method, clips, audio) -> np.ndarray:
    """Time-averaged log-mel, pre-normalised with the section model's statistics ``[N, n_mels]``."""
    import torch

    fe = method.frontend
    key = method._model_for(clips[0])
    mean, std = method.models[key]["prenorm"]
    rows = []
    with torch.no_grad():
        for _, xb in audio.iter_batches(list(clips), 32):
            rows.append(((fe(xb) - mean) / std).mean(-1).numpy())
    return np.concatenate(rows, 0)


def all_scores(method, train, test, audio) -> dict[str, np.ndarray]:
    """Every score of ``SCORES`` for the test clips of one fitted (per machine type) method."""
    e_tr, e_te = method.train_embeddings, method.embed(test, audio)
    dom_tr = np.array([c.domain for c in train])
    out = {"recipe": np.asarray(method.score(test, audio), dtype=np.float64)}
    n_tr = e_tr / np.linalg.norm(e_tr, axis=1, keepdims=True)
    n_te = e_te / np.linalg.norm(e_te, axis=1, keepdims=True)
    out["knn_cos"] = 1.0 - (n_te @ n_tr.T).max(1)
    out["knn_src"] = _nn(e_te, e_tr[dom_tr == "source"])
    out["knn_dom"] = np.array([_nn(e_te[i:i + 1], e_tr[dom_tr == c.domain])[0] for i, c in enumerate(test)])
    out["maha"] = _maha(e_te, e_tr)
    m_tr, m_te = mel_means(method, train, audio), mel_means(method, test, audio)
    out["mel_knn"] = _nn(m_te, m_tr)
    return out


def layer_features(method, clips, audio) -> dict[str, np.ndarray]:
    """Per MobileFaceNet stage of the section's encoder (eval mode, after training): the activation
    averaged over frequency and time (``<stage>``, a channel vector) and averaged over time only
    (``<stage>/f``, channels x frequency rows: where in frequency is kept)."""
    import torch

    key = method._model_for(clips[0])
    enc = method.models[key]["encoder"].eval()
    mean, std = method.models[key]["prenorm"]
    stages = {"stem": enc.stem, "dw": enc.dw, **{f"block{i}": b for i, b in enumerate(enc.blocks)},
              "expand": enc.expand, "gdconv": enc.gdconv, "embedding": enc.project}
    got: dict[str, list] = {}
    hooks = []
    for name, mod in stages.items():
        def hook(m, inp, out, name=name):
            got.setdefault(name, []).append(out.mean((2, 3)).numpy())
            if out.shape[2] > 1:
                got.setdefault(name + "/f", []).append(out.mean(3).flatten(1).numpy())
        hooks.append(mod.register_forward_hook(hook))
    try:
        with torch.no_grad():
            for _, xb in audio.iter_batches(list(clips), 32):
                enc(((method.frontend(xb) - mean) / std).unsqueeze(1))
    finally:
        for h in hooks:
            h.remove()
    return {k: np.concatenate(v, 0) for k, v in got.items()}


def aucs(test, s: np.ndarray) -> dict[str, float]:
    """Mean over sections of AUC(src normals vs all anomalies), AUC(tgt normals vs all anomalies),
    and within-domain AUCs."""
    from auscult.eval.metrics import auc

    res: dict[str, list[float]] = {"src_all": [], "tgt_all": [], "src_src": [], "tgt_tgt": []}
    for key in sorted({(c.machine, c.section) for c in test}):
        idx = [i for i, c in enumerate(test) if (c.machine, c.section) == key]
        an = [i for i in idx if test[i].label == "anomaly"]
        for dom, k_all, k_in in (("source", "src_all", "src_src"), ("target", "tgt_all", "tgt_tgt")):
            no = [i for i in idx if test[i].label == "normal" and test[i].domain == dom]
            if not no:
                continue
            res[k_all].append(auc([0] * len(no) + [1] * len(an), np.r_[s[no], s[an]]))
            an_d = [i for i in an if test[i].domain == dom]
            if an_d:
                res[k_in].append(auc([0] * len(no) + [1] * len(an_d), np.r_[s[no], s[an_d]]))
    return {k: float(np.mean(v)) for k, v in res.items() if v}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--untrained", action="store_true", help="lr 1e-12 for 1 epoch: a random encoder")
    ap.add_argument("--machines", nargs="*", default=None, help="only these machine types")
    ap.add_argument("--gearbox", action="store_true", help="the real gearbox clips instead of the simulator")
    ap.add_argument("--root", type=Path, default=ROOT / "runs" / "bench_quality" / "synth-small")
    ap.add_argument("--layers", action="store_true",
                    help="also 1-NN on every encoder stage's activations (mean over time / over time and frequency)")
    ap.add_argument("--chance", type=int, default=0, metavar="N",
                    help="only print the official score of N draws of uniformly random scores on the test set")
    ap.add_argument("--tag", default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "diag_clsia" / "results.jsonl")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)

    import torch

    torch.set_num_threads(a.threads)
    from bench_quality import default_gearbox_root, gearbox_split, synthetic_split

    from auscult.data.source import AudioSource
    from auscult.eval import evaluate_scores
    from auscult.methods import FitContext, build_method
    from auscult.recipes import load_recipe

    train, test, year = gearbox_split(default_gearbox_root()) if a.gearbox else synthetic_split(a.root)
    if a.machines:
        train = [c for c in train if c.machine in a.machines]
        test = [c for c in test if c.machine in a.machines]
    if a.chance:
        rng = np.random.default_rng(0)
        o = 100 * np.array([evaluate_scores(test, rng.random(len(test)), year=year).official_score
                            for _ in range(a.chance)])
        print(f"# random scores, {a.chance} draws, {len(test)} test clips: official {o.mean():.1f} ± {o.std():.1f}, "
              f"5-95 % {np.percentile(o, 5):.1f}-{np.percentile(o, 95):.1f}")
        return 0
    sets = list(a.overrides) + (["train.epochs=1", "train.lr=1e-12"] if a.untrained else [])
    cfg = load_recipe("synthetic/clsia", sets)
    audio = AudioSource(cfg["audio"], memory=True)
    tag = a.tag or ("untrained" if a.untrained else "recipe") + ("" if not a.overrides else " " + " ".join(a.overrides))
    data = "gearbox" if a.gearbox else str(a.root.name)
    print(f"# {tag} on {data}: {len(train)} train / {len(test)} test clips, seeds {a.seeds}", flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    for seed in a.seeds:
        t0 = time.perf_counter()
        scores = {k: np.zeros(len(test)) for k in SCORES}
        for m in sorted({c.machine for c in train}):
            tr = [c for c in train if c.machine == m]
            ti = [i for i, c in enumerate(test) if c.machine == m]
            meth = build_method("clsia", cfg, FitContext(seed=seed, quiet=True)).fit(tr, [], audio)
            for k, v in all_scores(meth, tr, [test[i] for i in ti], audio).items():
                scores[k][ti] = v
            if a.layers:
                f_tr, f_te = layer_features(meth, tr, audio), layer_features(meth, [test[i] for i in ti], audio)
                for k in f_tr:
                    scores.setdefault("L:" + k, np.zeros(len(test)))[ti] = _nn(f_te[k], f_tr[k])
        wall = time.perf_counter() - t0
        res = {k: aucs(test, v) for k, v in scores.items()}
        official = evaluate_scores(test, scores["recipe"], year=year).official_score
        row = {"tag": tag, "data": data, "seed": seed, "sets": sets, "wall_s": wall, "official": official, "aucs": res}
        with open(a.out, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"seed {seed} ({wall:.0f} s): official {100 * official:.1f}", flush=True)
        for k in scores:
            print("   " + f"{k:8s} " + "  ".join(f"{n} {100 * v:5.1f}" for n, v in res[k].items()), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
