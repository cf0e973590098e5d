"""Why does ``bandstats``' explanation miss the fault? Its map taken apart, and candidate maps scored.

``bandstats`` explains a clip by summing, per (band, frame), the squared z-scores of each statistic's
per-frame contribution against the training clips (``BandStatsMethod.explain``): the frame's band
level against the training clips' band *means* (``mean``) and its change from the previous frame
against their band *flux* (``flux``). This script fits ``bandstats`` exactly as the localisation
benchmark does (:mod:`bench_localisation`: 40 normal clips of a held-out unit, ``auscult fit``),
stores per clip the band levels ``e_db`` (interior frames) and the training statistics, and scores
candidate maps built from them with the bundle's post-processing (:func:`~auscult.monitor.explain.tail_map`
with the 16 extra normal clips as reference, :func:`frame_curve`, :func:`summary_peak`) in the
pointing game of the benchmark. Stage 1 (fit + band levels) is cached per (machine, unit) in ``--cache``.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/diag_bandstats_map.py --seeds 0 1 2 --cache /tmp/bsdiag
    ... --where          # per clip: where the summary lands, and which component made the peak
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_localisation as bl  # noqa: E402

SR = bl.SR


def _cache(path: Path, machine: str, seed: int, n_fit: int = 40, n_normal: int = 16, duration: float = 10.0) -> None:
    import torch

    from auscult.data.synth import render_clip, unit_for
    from auscult.monitor.explain import interior_frames

    unit = unit_for(machine, "loc", seed)
    clips = bl.render_clips(machine, seed, 4, [0.5, 1.0], duration, first_seed=50_000)
    bundle, _, _ = bl.fit_unit(machine, seed, "bandstats", n_fit, duration)
    _, mm = bundle.model(None)
    m = mm.method
    fe, cfg = m.encoder.fe, m.encoder.feature_cfg
    (mu_m, sd_m), (mu_f, sd_f) = m._standardisation()

    def levels(w):
        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32))[None]
            power = fe.spectrogram.frame_power(x)
            e = torch.matmul(power, fe.bands.to(power.dtype).t())[0].T
            e_db = (10.0 * torch.log10(e.clamp_min(cfg.eps))).double().numpy()
        return e_db[:, interior_frames(e_db.shape[1], w.shape[0], cfg.n_fft, cfg.hop_length)]

    normal = np.stack([levels(render_clip(machine, unit=unit, seed=20_000 + i, duration=duration))
                       for i in range(n_normal)])
    faults = np.stack([levels(c.wave) for c in clips])
    bands = fe.bands.double().numpy()
    f_bins = np.arange(bands.shape[1]) * cfg.sample_rate / cfg.n_fft
    freqs = (bands @ f_bins) / np.maximum(bands.sum(axis=1), 1e-12)
    w0 = render_clip(machine, unit=unit, seed=20_000, duration=duration)
    n_all = 1 + w0.shape[0] // cfg.hop_length
    keep = interior_frames(n_all, w0.shape[0], cfg.n_fft, cfg.hop_length)
    times = (np.arange(n_all) * cfg.hop_length / cfg.sample_rate)[keep]
    if len(times) != normal.shape[-1]:
        raise RuntimeError(f"{len(times)} times for {normal.shape[-1]} frames")
    meta = {"machine": machine, "seed": seed, "clips": bl.clip_records(clips)}
    np.savez_compressed(path, normal=normal, faults=faults, freqs=freqs, times=times, mu_m=mu_m, sd_m=sd_m,
                        mu_f=mu_f, sd_f=sd_f, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))


def _load(path: Path):
    z = dict(np.load(path))
    meta = json.loads(bytes(z.pop("meta")).decode())
    return z, meta, bl.clips_from_records(meta["clips"], meta["machine"])


def _flux(e: np.ndarray) -> np.ndarray:
    return np.abs(np.diff(e, axis=1, prepend=e[:, :1]))


#: name -> (e_db [K, F], z) -> raw map [K, F]
def _variants() -> dict[str, Callable[[np.ndarray, dict], np.ndarray]]:
    zm = lambda e, z: (e - z["mu_m"][:, None]) / z["sd_m"][:, None]
    zf = lambda e, z: (_flux(e) - z["mu_f"][:, None]) / z["sd_f"][:, None]
    return {
        "shipped (mean^2 + flux^2)": lambda e, z: zm(e, z) ** 2 + zf(e, z) ** 2,
        "mean^2": lambda e, z: zm(e, z) ** 2,
        "flux^2": lambda e, z: zf(e, z) ** 2,
        "mean+ (excess level)": lambda e, z: np.maximum(zm(e, z), 0),
        "mean+^2 + flux+^2": lambda e, z: np.maximum(zm(e, z), 0) ** 2 + np.maximum(zf(e, z), 0) ** 2,
        "mean+ + flux+": lambda e, z: np.maximum(zm(e, z), 0) + np.maximum(zf(e, z), 0),
        "level dB above mean": lambda e, z: np.maximum(e - z["mu_m"][:, None], 0),
        "flux dB": lambda e, z: _flux(e),
        "flux+": lambda e, z: np.maximum(zf(e, z), 0),
        "flux dB above mean": lambda e, z: np.maximum(_flux(e) - z["mu_f"][:, None], 0),
    }


#: name -> (component variant names, how the per-component tail maps combine)
COMBOS = {
    "max(tail(level dB), tail(flux dB))": (("level dB above mean", "flux dB"), "max"),
    "sum(tail(level dB), tail(flux dB))": (("level dB above mean", "flux dB"), "sum"),
    "max(tail(mean+), tail(flux^2))": (("mean+ (excess level)", "flux^2"), "max"),
    "max(tail(mean^2), tail(flux^2))": (("mean^2", "flux^2"), "max"),
    "max(tail(level dB), tail(flux dB above))": (("level dB above mean", "flux dB above mean"), "max"),
    "max(tail(mean+), tail(flux+))": (("mean+ (excess level)", "flux+"), "max"),
}


def score(paths: Sequence[Path], names: Optional[Sequence[str]] = None, smooth: Optional[int] = None,
          neighbours: Optional[int] = None, where: bool = False, stage1: Optional[int] = None) -> dict[str, Any]:
    """``stage1``: when given, each component is first scaled as the method would (its own tail map
    with ``stage1`` frames of smoothing), combined, and then the bundle's tail map (``smooth``) is
    applied to the combination -- the two-stage pipeline of a bundle."""
    from auscult.monitor.explain import TAIL_NEIGHBOURS, TAIL_SMOOTH, tail_map, tail_reference

    smooth = TAIL_SMOOTH if smooth is None else smooth
    neighbours = TAIL_NEIGHBOURS if neighbours is None else neighbours
    out = {}
    single = {k: ((k,), "max") for k in _variants()}
    comps = _variants()
    for name, (parts, how) in {**single, **COMBOS}.items():
        if names and name not in names:
            continue
        per_run = []
        for p in paths:
            z, meta, clips = _load(p)
            s1 = smooth if stage1 is None else stage1
            refs = [tail_reference([comps[c](e, z) for e in z["normal"]], s1, neighbours) for c in parts]

            def combined(e):
                tms = [tail_map(comps[k](e, z), loc, scale, s1) for k, (loc, scale) in zip(parts, refs)]
                return np.maximum.reduce(tms) if how == "max" else np.sum(tms, axis=0)
            if stage1 is not None:
                loc2, scale2 = tail_reference([combined(e) for e in z["normal"]], smooth, neighbours)
            tfs = []
            for i in range(len(clips)):
                tf = combined(z["faults"][i])
                tfs.append(tail_map(tf, loc2, scale2, smooth) if stage1 is not None else tf)
            per_run.append(bl.point_cached_maps(tfs, z["times"], z["freqs"], clips, meta, name, where))
        out[name] = o = bl.summarise_units(per_run)
        print(f"{name:28s} smooth {smooth} nb {neighbours} stage1 {stage1}: " + bl.summary_line(o), flush=True)
    return out


def main(argv: Optional[Sequence[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--machines", nargs="+", default=["fan", "slider", "valve", "ToyTrain"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--cache", required=True)
    ap.add_argument("--variants", nargs="*", default=None)
    ap.add_argument("--smooth", nargs="+", type=int, default=[None])
    ap.add_argument("--neighbours", nargs="+", type=int, default=[None])
    ap.add_argument("--where", action="store_true")
    ap.add_argument("--stage1", nargs="+", type=int, default=[None], help="two-stage: the method's own smoothing")
    a = ap.parse_args(argv)
    d = Path(a.cache)
    d.mkdir(parents=True, exist_ok=True)
    paths = []
    for m in a.machines:
        for s in a.seeds:
            p = d / f"{m}_u{s}_bsdiag.npz"
            if not p.is_file():
                _cache(p, m, s)
                print(f"# cached {p.name}", flush=True)
            paths.append(p)
    for s1 in a.stage1:
        for sm in a.smooth:
            for nb in a.neighbours:
                score(paths, a.variants, sm, nb, a.where, s1)


if __name__ == "__main__":
    main()
