"""Does an explanation point at the fault? A pointing game on simulated faults with known time and band.

:func:`localisation_benchmark` takes *any* object with ``explain_waveform(wave, sample_rate)``
returning an explanation with ``times [F]``, ``freqs [K]``, ``tf_map [K, F]`` and ``frame_scores [F]``
(the current :meth:`auscult.monitor.bundle.Bundle.explain_waveform`, and whatever the method
contract gives every method that declares ``explain``) and clips whose fault region the simulator
recorded (``kind``, ``severity``, ``onset_s``/``offset_s``, ``band_hz``). Per clip:

* ``curve_peak_in_window`` -- the frame curve's maximum lies inside ``[onset, offset]``;
* ``summary_in_region`` -- the summary line ``auscult explain`` prints ("most anomalous frame at
  t s, band around f Hz": the curve's peak frame, and that frame's brightest band) lies inside
  the window *and* the band;
* ``map_peak_in_region`` -- the whole map's brightest cell lies inside window x band;
* ``region_auc`` -- P(a random cell inside the region is brighter than a random cell outside it)
  (0.5 = the map ignores the fault; 1 = every cell of the fault outshines every other cell);
* ``mass_ratio`` -- the share of the map's total mass inside the region over the region's share
  of the cells (1 = no concentration).

The band is widened by one band on each side (a narrow fault spills into its neighbours through
the STFT window and the filterbank); clips whose window covers no frame are skipped.

Run it (fits a ``logmel_knn`` and an ``autoencoder`` bundle per simulated machine with localised
faults, on units never used elsewhere in a benchmark, then scores the explanations as shipped and
with maps normalised by normal variation, :func:`auscult.monitor.explain.variation_normalised_map`)::

    PYTHONPATH=src python benchmarks/bench_localisation.py --machines fan slider valve ToyTrain --seeds 0 1
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

SR = 16000


@dataclass
class LocalisedClip:
    """A clip with a fault whose time window and band are known."""

    wave: np.ndarray
    kind: str
    severity: float
    onset_s: float
    offset_s: float
    band_hz: tuple[float, float]
    machine: str = ""


def _region_auc(inside: np.ndarray, outside: np.ndarray) -> float:
    """Mann-Whitney AUC of ``inside`` over ``outside`` values (ties count one half)."""
    a, b = np.sort(np.asarray(inside, float)), np.sort(np.asarray(outside, float))
    lo = np.searchsorted(b, a, side="left")
    hi = np.searchsorted(b, a, side="right")
    return float((lo + (hi - lo) / 2.0).sum() / (len(a) * len(b)))


def score_explanation(expl: Any, clip: LocalisedClip) -> Optional[dict[str, Any]]:
    """The pointing-game figures of one explanation (None when the window covers no frame)."""
    times = np.asarray(expl.times, dtype=np.float64)
    freqs = np.asarray(expl.freqs, dtype=np.float64)
    tf = np.asarray(expl.tf_map, dtype=np.float64)
    curve = np.asarray(expl.frame_scores, dtype=np.float64)
    in_t = (times >= clip.onset_s) & (times <= clip.offset_s)
    if not in_t.any() or in_t.all():
        return None
    lo, hi = clip.band_hz
    idx = np.flatnonzero((freqs >= lo) & (freqs <= hi))
    if idx.size == 0:  # narrower than one band: the nearest band
        idx = np.array([int(np.argmin(np.abs(freqs - (lo + hi) / 2)))])
    in_f = np.zeros(len(freqs), dtype=bool)
    in_f[max(0, idx.min() - 1): idx.max() + 2] = True
    region = in_f[:, None] & in_t[None, :]
    peak_t = int(np.argmax(curve))
    peak_b = int(np.argmax(tf[:, peak_t]))
    cell = np.unravel_index(int(np.argmax(tf)), tf.shape)
    mass = np.clip(tf, 0, None)
    total = float(mass.sum())
    return {
        "kind": clip.kind, "severity": clip.severity, "machine": clip.machine,
        "curve_peak_in_window": bool(in_t[peak_t]),
        "summary_in_region": bool(in_t[peak_t] and in_f[peak_b]),
        "summary": f"{times[peak_t]:.2f} s, {freqs[peak_b]:.0f} Hz",
        "map_peak_in_region": bool(region[cell]),
        "region_auc": _region_auc(tf[region], tf[~region]),
        "mass_ratio": (float(mass[region].sum()) / total / region.mean()) if total > 0 else float("nan"),
    }


def localisation_benchmark(explainer: Any, clips: Iterable[LocalisedClip], sample_rate: int = SR) -> dict[str, Any]:
    """Run :func:`score_explanation` over ``clips`` with ``explainer.explain_waveform``; returns
    ``{"clips": [...], "summary": {...}}`` (hit rates in %, medians of the ratios)."""
    rows = []
    for c in clips:
        r = score_explanation(explainer.explain_waveform(c.wave, sample_rate), c)
        if r is not None:
            rows.append(r)
    return {"clips": rows, "summary": summarise(rows)}


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    if not rows:
        return {"n": 0}
    pct = lambda k: 100.0 * float(np.mean([r[k] for r in rows]))
    return {"n": len(rows), "curve_peak_in_window": pct("curve_peak_in_window"),
            "summary_in_region": pct("summary_in_region"), "map_peak_in_region": pct("map_peak_in_region"),
            "region_auc_median": float(np.median([r["region_auc"] for r in rows])),
            "mass_ratio_median": float(np.nanmedian([r["mass_ratio"] for r in rows]))}


# ------------------------------------------------------------------------------------ the run
def localised_kinds(machine: str) -> list[str]:
    from auscult.data.synth import MACHINES

    return [k for k, v in MACHINES[machine].kinds.items() if v.localised]


def render_clips(machine: str, unit_seed: int, n: int, severities: Sequence[float], duration: float,
                 first_seed: int) -> list[LocalisedClip]:
    from auscult.data.synth import render_clip, unit_for

    unit = unit_for(machine, "loc", unit_seed)
    out = []
    for kind in localised_kinds(machine):
        for sev in severities:
            for i in range(n):
                x, info = render_clip(machine, unit=unit, seed=first_seed + i, anomaly=kind, severity=sev,
                                      duration=duration, return_info=True)
                if info.onset_s is None or info.band_hz is None:
                    continue
                out.append(LocalisedClip(x, kind, sev, info.onset_s, info.offset_s, tuple(info.band_hz), machine))
    return out


class NormalisedExplainer:
    """A bundle's method with its raw map normalised by normal variation (per band: median and
    ``q`` quantile over frames of held-out normal clips' raw maps), then the shipped frame curve."""

    def __init__(self, bundle: Any, normal_waves: Sequence[np.ndarray], q: float = 0.99):
        from auscult.monitor.explain import band_variation, interior_frames

        self.bundle = bundle
        _, self.mm = bundle.model(None)
        fc = self.mm.feature_config
        maps = []
        for w in normal_waves:
            t = self.mm.explain_wave(w)
            maps.append(t.tf_map[:, interior_frames(len(t.times), w.shape[0], fc.n_fft, fc.hop_length)])
        self.loc, self.scale = band_variation(maps, q)

    def explain_waveform(self, wave: np.ndarray, sample_rate: int):
        from auscult.monitor.explain import frame_curve, interior_frames, variation_normalised_map

        e = self.bundle.explain_waveform(wave, sample_rate)  # for times/freqs/score; the map is replaced
        fc = self.mm.feature_config
        t = self.mm.explain_wave(wave)
        keep = interior_frames(len(t.times), wave.shape[0], fc.n_fft, fc.hop_length)
        tf = variation_normalised_map(t.tf_map[:, keep], self.loc, self.scale)
        e.tf_map, e.frame_scores = tf, frame_curve(tf)
        return e


def main(argv: Optional[Sequence[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--machines", nargs="+", default=["fan", "slider", "valve", "ToyTrain"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1], help="units (unit_for(machine, 'loc', seed))")
    ap.add_argument("--methods", nargs="+", default=["logmel_knn", "autoencoder"])
    ap.add_argument("--n-fit", type=int, default=40, help="normal clips in the fitted folder")
    ap.add_argument("--n-normal", type=int, default=16, help="extra normal clips for the map normalisation")
    ap.add_argument("--n-clips", type=int, default=4, help="faulty clips per kind and severity")
    ap.add_argument("--severities", nargs="+", type=float, default=[0.5, 1.0])
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--q", type=float, default=0.99)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    import soundfile as sf

    from auscult.data.synth import render_clip, unit_for
    from auscult.monitor.fit import FitConfig, fit_bundle

    results: dict[str, Any] = {"args": vars(args), "runs": []}
    for machine in args.machines:
        for seed in args.seeds:
            unit = unit_for(machine, "loc", seed)
            clips = render_clips(machine, seed, args.n_clips, args.severities, args.duration, first_seed=50_000)
            normals = [render_clip(machine, unit=unit, seed=20_000 + i, duration=args.duration)
                       for i in range(args.n_normal)]
            with tempfile.TemporaryDirectory() as tmp:
                d = Path(tmp) / machine
                d.mkdir()
                for i in range(args.n_fit):
                    sf.write(str(d / f"rec_{i:03d}.wav"), render_clip(machine, unit=unit, seed=i, duration=args.duration), SR)
                for method in args.methods:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        t0 = time.perf_counter()
                        bundle, _ = fit_bundle(d, None, FitConfig(method=method, window_s=args.duration, seed=seed))
                        fit_s = time.perf_counter() - t0
                    for variant, expl in (("shipped", bundle), ("variation-normalised", NormalisedExplainer(bundle, normals, args.q))):
                        res = localisation_benchmark(expl, clips)
                        results["runs"].append({"machine": machine, "seed": seed, "method": method, "maps": variant,
                                                "fit_s": fit_s, **res})
                        s = res["summary"]
                        print(f"# {machine} unit {seed} {method} {variant}: n={s['n']} curve {s.get('curve_peak_in_window', 0):.0f}% "
                              f"summary {s.get('summary_in_region', 0):.0f}% map-peak {s.get('map_peak_in_region', 0):.0f}% "
                              f"region AUC {s.get('region_auc_median', float('nan')):.2f}", flush=True)
    print("\n| method | maps | clips | curve peak in window % | summary line in region % | map peak in region % | "
          "region AUC (median) | mass ratio (median) |")
    print("|---|---|---|---|---|---|---|---|")
    for method in args.methods:
        for variant in ("shipped", "variation-normalised"):
            rows = [c for r in results["runs"] if r["method"] == method and r["maps"] == variant for c in r["clips"]]
            s = summarise(rows)
            if s["n"]:
                print(f"| {method} | {variant} | {s['n']} | {s['curve_peak_in_window']:.0f} | {s['summary_in_region']:.0f} | "
                      f"{s['map_peak_in_region']:.0f} | {s['region_auc_median']:.2f} | {s['mass_ratio_median']:.1f} |")
    print("\nper machine (summary line in region %, shipped -> normalised):")
    for method in args.methods:
        for machine in args.machines:
            vals = []
            for variant in ("shipped", "variation-normalised"):
                rows = [c for r in results["runs"] if r["method"] == method and r["maps"] == variant and r["machine"] == machine
                        for c in r["clips"]]
                vals.append(summarise(rows).get("summary_in_region", float("nan")))
            print(f"  {method:12s} {machine:10s} {vals[0]:5.0f} -> {vals[1]:5.0f}")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
