"""Why does ``logmel_knn``'s explanation miss the fault? Its map taken apart, and candidate maps scored.

``logmel_knn`` explains a clip by the squared z-score of every (band, frame) log-mel value against the
*nearest training clip's* band mean and spread (``LogMelKNN.explain`` before the reference existed).
This script fits ``logmel_knn`` exactly as the localisation benchmark does (:mod:`bench_localisation`:
40 normal clips of a held-out unit, ``auscult fit``), stores per clip the log-mel frames (interior
frames) of the training clips, of 16 further normal clips and of the faulty clips, plus the method's
bank, and scores candidate maps with the bundle's post-processing (:func:`~auscult.monitor.explain.tail_map`
with the 16 extra normals as reference, :func:`frame_curve`, :func:`summary_peak`) in the benchmark's
pointing game. Stage 1 is cached per (machine, unit) in ``--cache``.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/diag_logmel_knn_map.py --seeds 0 1 2 --cache /tmp/knndiag
    ... --where          # per clip: where the summary lands
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_localisation as bl  # noqa: E402

SR = bl.SR


def _cache(path: Path, machine: str, seed: int, n_fit: int = 40, n_normal: int = 16, duration: float = 10.0) -> None:

    from auscult.data.synth import render_clip, unit_for
    from auscult.monitor.explain import interior_frames

    unit = unit_for(machine, "loc", seed)
    clips = bl.render_clips(machine, seed, 4, [0.5, 1.0], duration, first_seed=50_000)
    bundle, _, waves = bl.fit_unit(machine, seed, "logmel_knn", n_fit, duration)
    train_waves = {f"rec_{i:03d}.wav": w for i, w in enumerate(waves)}
    _, mm = bundle.model(None)
    m = mm.method
    cfg = m.feature_cfg

    def lm(w):
        x = m._logmel(w)
        return x[:, interior_frames(x.shape[1], w.shape[0], cfg.n_fft, cfg.hop_length)], x.shape[1]

    floor = float(m.opts["sd_floor_db"])
    full = {n: m._logmel(w) for n, w in train_waves.items()}
    st = {n: np.concatenate([x.mean(axis=1), np.sqrt(x.var(axis=1) + floor ** 2)]) for n, x in full.items()}
    used = []  # the bank's rows name windows, not files: match each row with the file of its statistics
    for row in m.bank:
        n, dist = min(((n, float(np.abs(v - row).max())) for n, v in st.items()), key=lambda t: t[1])
        if dist > 0.05:  # the wav file is 16-bit: a few thousandths of a dB
            raise RuntimeError(f"bank row matches no training file ({dist:.3g} dB)")
        used.append(n)
    train = np.stack([lm(train_waves[n])[0] for n in used]).astype(np.float32)
    normal = np.stack([lm(render_clip(machine, unit=unit, seed=20_000 + i, duration=duration))[0]
                       for i in range(n_normal)]).astype(np.float32)
    faults = np.stack([lm(c.wave)[0] for c in clips]).astype(np.float32)
    w0 = render_clip(machine, unit=unit, seed=20_000, duration=duration)
    n_all = m._logmel(w0).shape[1]
    keep = interior_frames(n_all, w0.shape[0], cfg.n_fft, cfg.hop_length)
    times = (np.arange(n_all) * cfg.hop_length / cfg.sample_rate)[keep]
    from auscult.features import mel_center_frequencies
    freqs = np.asarray(mel_center_frequencies(cfg), dtype=np.float64)
    meta = {"machine": machine, "seed": seed, "n_train": len(used),
            "clips": bl.clip_records(clips)}
    np.savez_compressed(path, train=train, normal=normal, faults=faults, bank=m.bank, mu=m.mu, sd=m.sd,
                        freqs=freqs, times=times, floor=float(m.opts["sd_floor_db"]),
                        meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))


def _load(path: Path):
    z = dict(np.load(path))
    meta = json.loads(bytes(z.pop("meta")).decode())
    for k in ("train", "normal", "faults"):
        z[k] = z[k].astype(np.float64)
    return z, meta, bl.clips_from_records(meta["clips"], meta["machine"])


def _nn(lm: np.ndarray, z: dict, exclude: Optional[int] = None) -> int:
    """Row of the bank nearest (standardised summaries) to the clip of log-mel ``lm``, as explain()."""
    floor = float(z["floor"])
    st = np.concatenate([lm.mean(axis=1), np.sqrt(lm.var(axis=1) + floor ** 2)])
    d = (((z["bank"] - st) / z["sd"]) ** 2).sum(axis=1)
    if exclude is not None:
        d[exclude] = np.inf
    return int(np.argmin(d))


def _shipped(lm, z, exclude=None):
    n = lm.shape[0]
    r = _nn(lm, z, exclude)
    return ((lm - z["bank"][r, :n][:, None]) / z["bank"][r, n:][:, None]) ** 2


def _components(lm, z, exclude=None):
    n = lm.shape[0]
    mu_mean = z["bank"][:, :n].mean(axis=0)  # training clips' band mean
    r = _nn(lm, z, exclude)
    return {
        "level+": np.maximum(lm - mu_mean[:, None], 0.0),
        "level|": np.abs(lm - mu_mean[:, None]),
        "nnlevel+": np.maximum(lm - z["bank"][r, :n][:, None], 0.0),
        "dev": np.abs(lm - lm.mean(axis=1, keepdims=True)),
        "flux": np.abs(np.diff(lm, axis=1, prepend=lm[:, :1])),
    }


#: name -> (components, combine); every component first over the highest value any training frame reached
#: (tail_reference, smooth 1) unless "raw"
VARIANTS: dict[str, tuple[tuple[str, ...], str]] = {
    "shipped": (("shipped",), "raw"),
    "level+": (("level+",), "tail"),
    "level|": (("level|",), "tail"),
    "nnlevel+": (("nnlevel+",), "tail"),
    "dev": (("dev",), "tail"),
    "level+ + dev": (("level+", "dev"), "tail"),
    "level+ + dev + flux": (("level+", "dev", "flux"), "tail"),
    "nnlevel+ + dev": (("nnlevel+", "dev"), "tail"),
    "level+ + nnlevel+ + dev": (("level+", "nnlevel+", "dev"), "tail"),
    "dev + flux": (("dev", "flux"), "tail"),
    "level+ + flux": (("level+", "flux"), "tail"),
    "level| + dev": (("level|", "dev"), "tail"),
    "max(level+, dev)": (("level+", "dev"), "tailmax"),
    "shipped/tail": (("shipped",), "tail"),
}


def score(paths: Sequence[Path], names: Optional[Sequence[str]] = None, where: bool = False,
          s1: int = 1) -> dict[str, Any]:
    from auscult.monitor.explain import TAIL_NEIGHBOURS, TAIL_SMOOTH, tail_map, tail_reference

    out = {}
    for name, (parts, how) in VARIANTS.items():
        if names and name not in names:
            continue
        per_run = []
        for p in paths:
            z, meta, clips = _load(p)

            def comps(lm, exclude=None):
                c = _components(lm, z, exclude) if parts != ("shipped",) else {}
                c["shipped"] = _shipped(lm, z, exclude)
                return c
            if how != "raw":
                tr = [comps(lm, j) for j, lm in enumerate(z["train"])]
                refs = {k: tail_reference([t[k] for t in tr], s1, TAIL_NEIGHBOURS) for k in parts}

            def method_map(lm):
                c = comps(lm)
                if how == "raw":
                    return c[parts[0]]
                tms = [tail_map(c[k], *refs[k], smooth=s1) for k in parts]
                return np.maximum.reduce(tms) if how == "tailmax" else np.sum(tms, axis=0)
            loc2, scale2 = tail_reference([method_map(lm) for lm in z["normal"]], TAIL_SMOOTH, TAIL_NEIGHBOURS)
            tfs = [tail_map(method_map(z["faults"][i]), loc2, scale2, TAIL_SMOOTH) for i in range(len(clips))]
            per_run.append(bl.point_cached_maps(tfs, z["times"], z["freqs"], clips, meta, name[:16], where))
        out[name] = o = bl.summarise_units(per_run)
        print(f"{name:18s} s1 {s1}: " + bl.summary_line(o), flush=True)
    return out


def main(argv: Optional[Sequence[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--machines", nargs="+", default=["fan", "slider", "valve", "ToyTrain"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--cache", required=True)
    ap.add_argument("--variants", nargs="*", default=None)
    ap.add_argument("--where", action="store_true")
    ap.add_argument("--stage1", type=int, default=1)
    ap.add_argument("--cache-only", action="store_true")
    a = ap.parse_args(argv)
    d = Path(a.cache)
    d.mkdir(parents=True, exist_ok=True)
    paths = []
    for m in a.machines:
        for s in a.seeds:
            p = d / f"{m}_u{s}_knndiag.npz"
            if not p.is_file():
                _cache(p, m, s)
                print(f"# cached {p.name}", flush=True)
            paths.append(p)
    if not a.cache_only:
        score(paths, a.variants, a.where, a.stage1)


if __name__ == "__main__":
    main()
