"""Why does the autoencoder's explanation miss the fault? Its map taken apart, and candidate maps scored.

The autoencoder explains a clip by the squared reconstruction residual of every (mel band, frame),
averaged over the stacked vectors that contain the frame (``AutoencoderMethod.explain`` before the
reference existed): two-sided (a frame quieter than its reconstruction counts as much as a louder
one) and in squared dB, so a band whose normal frames are hard to reconstruct and the loud normal
events the net never learnt outshine a fault that is only a little above what normal audio does.

This script fits the autoencoder exactly as the localisation benchmark does (:mod:`bench_localisation`:
40 normal clips of a held-out unit, ``auscult fit``: 30 fit, 10 held out for calibration), stores the
fitted state and the autoencoder's input frames (log-mel) of the 40 folder clips (which were fitted,
which held out), of 16 further normal clips and of the faulty clips, and scores candidate maps built
from the residuals. Each candidate is read as the bundle reads a map: ``tail_map`` against the
*calibration clips'* maps (what the bundle's own explanation uses; ``--ref extra`` uses the 16 further
normals instead), then :func:`frame_curve` and :func:`summary_peak`, in the benchmark's pointing game.
``shipped`` with the calibration reference reproduces the bundle's explanation (checked against the
bundle's summary peaks in stage 1). Stage 1 is cached per (machine, unit) in ``--cache``.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/diag_autoencoder_map.py --seeds 0 1 2 --cache /tmp/aediag
    ... --bias           # training clips' residuals against unseen normals' (how much the fit lowers them)
    ... --where          # per clip: where the summary lands
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_localisation as bl  # noqa: E402

SR = bl.SR


def _cache(path: Path, machine: str, seed: int, n_fit: int = 40, n_normal: int = 16, duration: float = 10.0) -> None:
    import torch

    from auscult.data.synth import render_clip, unit_for
    from auscult.engine import holdout_split
    from auscult.fileio import pack_tree
    from auscult.monitor.fit import FitConfig

    unit = unit_for(machine, "loc", seed)
    clips = bl.render_clips(machine, seed, 4, [0.5, 1.0], duration, first_seed=50_000)
    bundle, fit_s, folder = bl.fit_unit(machine, seed, "autoencoder", n_fit, duration, decoded=True)
    cfg = FitConfig(method="autoencoder", window_s=duration, seed=seed)
    _, mm = bundle.model(None)
    m = mm.method
    assert m.norm is None, "the fit preset does not standardise"
    fit_i, cal_i = holdout_split(list(range(n_fit)), cfg.calibration_fraction, seed=cfg.seed)

    def feats(w):
        cs, src = mm._clips([np.asarray(w, dtype=np.float32)])
        with torch.no_grad():
            return m.features(cs, src).data.numpy().astype(np.float32)  # [F, n_mels], dB

    fold = np.stack([feats(w) for w in folder])
    normal = np.stack([feats(render_clip(machine, unit=unit, seed=20_000 + i, duration=duration))
                       for i in range(n_normal)])
    faults = np.stack([feats(c.wave) for c in clips])
    peaks = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for c in clips:
            peaks.append(bl._summary_of(bundle.explain_waveform(c.wave, SR)))
    arrays: dict = {}
    state = pack_tree(m.state_dict(), arrays)
    meta = {"machine": machine, "seed": seed, "fit_s": fit_s, "fit_i": list(fit_i), "cal_i": list(cal_i),
            "state": state, "config": m.config, "n_samples": int(round(duration * SR)),
            "clips": bl.clip_records(clips)}
    np.savez_compressed(path, folder=fold, normal=normal, faults=faults, bundle_peak=np.asarray(peaks),
                        tail_loc=np.asarray(mm.calibration["tail_loc"]), tail_scale=np.asarray(mm.calibration["tail_scale"]),
                        **{f"state__{k}": np.asarray(v) for k, v in arrays.items()},
                        meta=np.frombuffer(json.dumps(meta, default=str).encode(), dtype=np.uint8))


class Unit:
    """One cached unit: the rebuilt method, per-clip residuals, the truths."""

    def __init__(self, path: Path):
        import torch

        from auscult.fileio import unpack_tree
        from auscult.methods import METHODS
        from auscult.monitor.explain import interior_frames

        z = dict(np.load(path))
        self.meta = meta = json.loads(bytes(z.pop("meta")).decode())
        arrays = {k[len("state__"):]: z.pop(k) for k in list(z) if k.startswith("state__")}
        arrays = {k: torch.from_numpy(v) if v.dtype != object else v for k, v in arrays.items()}
        self.m = METHODS.build("autoencoder", config=meta["config"])
        self.m.load_state_dict(unpack_tree(meta["state"], arrays))
        self.z = z
        cfg = self.m.feature_cfg
        n = z["folder"].shape[1]
        self.keep = interior_frames(n, int(meta["n_samples"]), cfg.n_fft, cfg.hop_length)
        self.times = (np.arange(n) * cfg.hop_length / cfg.sample_rate)[self.keep]
        from auscult.features import mel_center_frequencies
        self.freqs = np.asarray(mel_center_frequencies(cfg), dtype=np.float64)
        self.clips = bl.clips_from_records(meta["clips"], meta["machine"])
        self.fit = [z["folder"][i] for i in meta["fit_i"]]
        self.cal = [z["folder"][i] for i in meta["cal_i"]]
        self.normal = list(z["normal"])
        self.faults = list(z["faults"])

    def residual(self, f: np.ndarray) -> np.ndarray:
        """``x - x_hat`` per stacked vector and position ``[V, context, n_mels]``."""
        import torch

        from auscult.methods.autoencoder import _Features

        fe = _Features([torch.from_numpy(np.ascontiguousarray(f))], int(self.m.model_cfg["context"]))
        r = self.m._residuals(fe, "cpu").double().numpy()
        return r.reshape(r.shape[0], int(self.m.model_cfg["context"]), -1)


def overlap_mean(v: np.ndarray) -> np.ndarray:
    """Per-position values ``[V, ctx, M]`` -> per-frame mean over the vectors holding it ``[M, F]``."""
    n_vec, ctx, n_m = v.shape
    acc = np.zeros((n_vec + ctx - 1, n_m))
    cnt = np.zeros(n_vec + ctx - 1)
    for j in range(ctx):
        acc[j:j + n_vec] += v[:, j]
        cnt[j:j + n_vec] += 1
    return (acc / cnt[:, None]).T


#: raw component maps from the residual r (x - x_hat, dB) per vector position
COMPONENTS = {
    "sq": lambda r: overlap_mean(r ** 2),                  # what shipped: the MSE's decomposition
    "pos": lambda r: overlap_mean(np.maximum(r, 0.0)),       # input above its reconstruction, dB
    "pos2": lambda r: overlap_mean(np.maximum(r, 0.0) ** 2),
    "mean+": lambda r: np.maximum(overlap_mean(r), 0.0),     # mean residual, then one-sided
    "abs": lambda r: overlap_mean(np.abs(r)),
}

#: name -> (component, method-level normalisation): "raw" = none (the bundle's tail map alone),
#: "train" = tail_map against what the fitted (training) clips reached (smooth 1),
#: "train<k>" = the same with the training reference's scale times k (a guard against their own fit)
VARIANTS = {
    "shipped": ("sq", "raw"),
    "sq/train": ("sq", "train"),
    "pos": ("pos", "raw"),
    "pos/train": ("pos", "train"),
    "pos2": ("pos2", "raw"),
    "pos2/train": ("pos2", "train"),
    "mean+": ("mean+", "raw"),
    "mean+/train": ("mean+", "train"),
    "abs/train": ("abs", "train"),
}


def _maps(u: Unit, comp: str, which: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [COMPONENTS[comp](u.residual(f))[:, u.keep] for f in which]


def score(paths: Sequence[Path], names: Optional[Sequence[str]] = None, ref: str = "cal", where: bool = False,
          units: Optional[list] = None) -> dict[str, Any]:
    from auscult.monitor.explain import TAIL_SMOOTH, tail_map, tail_reference

    units = units or [Unit(p) for p in paths]
    out = {}
    for name, (comp, norm) in VARIANTS.items():
        if names and name not in names:
            continue
        per_run = []
        for u in units:
            def method_map(ms):
                if norm == "raw":
                    return ms
                k = float(norm[5:] or 1.0)
                loc, scale = tail_reference(_maps(u, comp, u.fit), smooth=1)
                return [tail_map(mp, loc, scale * k, smooth=1) for mp in ms]
            refs = method_map(_maps(u, comp, u.cal if ref == "cal" else u.normal))
            loc2, scale2 = tail_reference(refs, TAIL_SMOOTH)
            tfs = [tail_map(mp, loc2, scale2, TAIL_SMOOTH) for mp in method_map(_maps(u, comp, u.faults))]
            per_run.append(bl.point_cached_maps(tfs, u.times, u.freqs, u.clips, u.meta, name[:16], where))
        out[name] = o = bl.summarise_units(per_run)
        print(f"{name:14s} ref {ref:5s}: " + bl.summary_line(o), flush=True)
    return out


def check_shipped(u: Unit) -> float:
    """Share of faulty clips whose bundle summary peak the diag's ``shipped`` map reproduces."""
    from auscult.monitor.explain import TAIL_SMOOTH, frame_curve, summary_peak, tail_map, tail_reference

    loc, scale = tail_reference(_maps(u, "sq", u.cal), TAIL_SMOOTH)
    same = []
    for mp, pk in zip(_maps(u, "sq", u.faults), u.z["bundle_peak"]):
        tf = tail_map(mp, loc, scale, TAIL_SMOOTH)
        same.append(tuple(summary_peak(tf, frame_curve(tf))) == tuple(int(v) for v in pk))
    return float(np.mean(same))


def bias(units: Sequence[Unit], comp: str = "pos") -> None:
    """How much lower the fitted clips' residual maps are than unseen normal clips': per band, the
    ratio of medians and of maxima (equal numbers of clips: 10 fitted vs the 10 calibration clips,
    16 fitted vs the 16 further normals), and the maximum over all 30 fitted clips vs the 26 unseen."""
    for u in units:
        fit = _maps(u, comp, u.fit)
        cal = _maps(u, comp, u.cal)
        nor = _maps(u, comp, u.normal)

        def st(ms):
            a = np.concatenate(ms, axis=1)
            return np.median(a, axis=1), a.max(axis=1), float(a.mean())
        f10, c10, f16, n16, f30, un = st(fit[:10]), st(cal), st(fit[:16]), st(nor), st(fit), st(cal + nor)
        r = lambda a, b, i: float(np.median(a[i] / np.maximum(b[i], 1e-9)))
        # how much the neighbour-pooled maxima of 30 fitted clips vary across bands against 26 unseen
        from auscult.monitor.explain import tail_scale
        q = tail_scale(f30[0], f30[1]) / tail_scale(un[0], un[1])
        print(f"bias {comp} {u.meta['machine']:8s} u{u.meta['seed']}: mean fit/unseen {f16[2] / n16[2]:.2f} "
              f"median-per-band fit/unseen 10v10 {r(f10, c10, 0):.2f} 16v16 {r(f16, n16, 0):.2f}  "
              f"max-per-band 10v10 {r(f10, c10, 1):.2f} 16v16 {r(f16, n16, 1):.2f} 30 fitted v 26 unseen {r(f30, un, 1):.2f}  "
              f"pooled scale 30 fitted / 26 unseen per band: 10/50/90 % {np.quantile(q, 0.1):.2f} {np.median(q):.2f} "
              f"{np.quantile(q, 0.9):.2f}",
              flush=True)


def main(argv: Optional[Sequence[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--machines", nargs="+", default=["fan", "slider", "valve", "ToyTrain"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--cache", required=True)
    ap.add_argument("--variants", nargs="*", default=None)
    ap.add_argument("--ref", choices=["cal", "extra", "both"], default="cal")
    ap.add_argument("--where", action="store_true")
    ap.add_argument("--bias", nargs="*", default=None, metavar="COMP")
    ap.add_argument("--check", action="store_true", help="does 'shipped' reproduce the bundle's summary peaks?")
    ap.add_argument("--cache-only", action="store_true")
    a = ap.parse_args(argv)
    d = Path(a.cache)
    d.mkdir(parents=True, exist_ok=True)
    paths = []
    for mach in a.machines:
        for s in a.seeds:
            p = d / f"{mach}_u{s}_aediag.npz"
            if not p.is_file():
                t0 = time.perf_counter()
                _cache(p, mach, s)
                print(f"# cached {p.name} in {time.perf_counter() - t0:.0f} s", flush=True)
            paths.append(p)
    if a.cache_only:
        return
    units = [Unit(p) for p in paths]
    if a.check:
        for u in units:
            print(f"check {u.meta['machine']} u{u.meta['seed']}: shipped reproduces {100 * check_shipped(u):.0f}% "
                  f"of the bundle's summary peaks (fit {u.meta['fit_s']:.0f} s)", flush=True)
    if a.bias is not None:
        for comp in a.bias or ["pos", "sq"]:
            bias(units, comp)
        return
    for ref in (["cal", "extra"] if a.ref == "both" else [a.ref]):
        score(paths, a.variants, ref, a.where, units)


if __name__ == "__main__":
    main()
