"""Does an explanation point at the fault? A pointing game on simulated faults with known time and band.

:func:`localisation_benchmark` takes *any* object with ``explain_waveform(wave, sample_rate)``
returning an explanation with ``times [F]``, ``freqs [K]``, ``tf_map [K, F]`` and ``frame_scores [F]``
(:meth:`auscult.monitor.bundle.Bundle.explain_waveform`, what ``auscult explain`` prints and draws)
and clips whose fault region the simulator recorded (``kind``, ``severity``, ``onset_s``/``offset_s``,
``band_hz``, ``events_s``). Per clip (:func:`score_explanation`):

* ``curve_peak_in_window`` -- the frame curve's maximum lies inside the fault's time region;
* ``summary_band_in_band`` -- the band the summary line names lies in the fault's band;
* ``summary_in_region`` -- the summary line ``auscult explain`` prints ("most anomalous frame at
  t s, band around f Hz": ``Explanation.peak_time_s`` / ``peak_band_hz``) lies inside the time
  region *and* the band: **the pointing-game hit**;
* ``map_peak_in_region`` -- the whole map's brightest cell lies inside region x band;
* ``region_auc`` -- P(a random cell inside the region is brighter than a random cell outside it)
  (0.5 = the map ignores the fault; 1 = every cell of the fault outshines every other cell);
* ``mass_ratio`` -- the share of the map's total mass inside the region over the region's share
  of the cells (1 = no concentration).

The band is widened by one band on each side (a narrow fault spills into its neighbours through
the STFT window and the filterbank). The time region is the simulator's ``[onset_s, offset_s]``,
except for faults whose sound exists *only* at recorded events (clicks: :data:`EVENT_KINDS`), where
it is the union of ``[e - 0.05 s, e + 0.1 s]`` around the events (the slider's ``rail_damage``
window runs from the first to the last dent crossing, most of a 10 s clip, so "inside the window"
says nothing there). Clips whose region covers no frame, or every frame, are skipped.

The run is in two stages so that a cut run loses nothing and map variants cost no refit:

1. per (machine, unit, method): fit a bundle (``auscult fit``) on ``--n-fit`` normal clips of a
   held-out unit (``unit_for(machine, "loc", seed)``, used by no other benchmark), and store the
   bundle's explanations of faulty clips plus the *raw* method maps of those clips and of
   ``--n-normal`` further normal clips in ``--cache`` (``<machine>_u<seed>_<method>.npz``; an
   existing file is reused);
2. score every map variant (:data:`VARIANTS`) on the cached maps; the per-run figures are appended
   to ``--out`` (JSON) after every run.

The ``bundle`` variant is the bundle's own explanation, i.e. whatever ``auscult explain`` prints at
the commit that made the cache; the others are rebuilt from the raw maps with the normal clips as
reference, which shows what each normalisation would give. Run it::

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_localisation.py --machines fan slider valve ToyTrain \
        --seeds 0 1 2 --methods logmel_knn autoencoder bandstats --cache /tmp/loc --out loc.json
    python benchmarks/bench_localisation.py --table-only loc.json
    # the design grid (normalisation x time smoothing x band rule) over the cached maps of units 0-2:
    PYTHONPATH=src python benchmarks/bench_localisation.py --seeds 0 1 2 --methods logmel_knn --cache /tmp/loc --grid
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

SR = 16000

#: (machine, kind) whose fault sound exists only at the recorded events (clicks, clacks)
EVENT_KINDS = {("slider", "rail_damage"), ("ToyTrain", "rail_damage")}
EVENT_BEFORE_S, EVENT_AFTER_S = 0.05, 0.10


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
    events_s: list = field(default_factory=list)
    seed: int = 0

    def time_mask(self, times: np.ndarray) -> np.ndarray:
        """Frames inside the fault's time region (see the module docstring)."""
        times = np.asarray(times, dtype=np.float64)
        inside = (times >= self.onset_s) & (times <= self.offset_s)
        if (self.machine, self.kind) in EVENT_KINDS and len(self.events_s):
            near = np.zeros_like(inside)
            for e in self.events_s:
                near |= (times >= e - EVENT_BEFORE_S) & (times <= e + EVENT_AFTER_S)
            inside = near
        return inside


def _region_auc(inside: np.ndarray, outside: np.ndarray) -> float:
    """Mann-Whitney AUC of ``inside`` over ``outside`` values (ties count one half)."""
    a, b = np.sort(np.asarray(inside, float)), np.sort(np.asarray(outside, float))
    lo = np.searchsorted(b, a, side="left")
    hi = np.searchsorted(b, a, side="right")
    return float((lo + (hi - lo) / 2.0).sum() / (len(a) * len(b)))


def band_mask(freqs: np.ndarray, band_hz: tuple[float, float]) -> np.ndarray:
    """Bands inside ``band_hz`` widened by one band each side (the nearest band for a narrow fault)."""
    freqs = np.asarray(freqs, dtype=np.float64)
    lo, hi = band_hz
    idx = np.flatnonzero((freqs >= lo) & (freqs <= hi))
    if idx.size == 0:  # narrower than one band: the nearest band
        idx = np.array([int(np.argmin(np.abs(freqs - (lo + hi) / 2)))])
    in_f = np.zeros(len(freqs), dtype=bool)
    in_f[max(0, idx.min() - 1): idx.max() + 2] = True
    return in_f


def _summary_of(expl: Any) -> tuple[int, int]:
    """(frame, band) indices the summary line names: the explanation's own when it has them."""
    times, freqs = np.asarray(expl.times), np.asarray(expl.freqs)
    pt, pb = getattr(expl, "peak_time_s", None), getattr(expl, "peak_band_hz", None)
    if pt is not None and pb is not None:
        return int(np.argmin(np.abs(times - pt))), int(np.argmin(np.abs(freqs - pb)))
    peak_t = int(np.argmax(np.asarray(expl.frame_scores)))
    return peak_t, int(np.argmax(np.asarray(expl.tf_map)[:, peak_t]))


def score_explanation(expl: Any, clip: LocalisedClip) -> Optional[dict[str, Any]]:
    """The pointing-game figures of one explanation (None when the region covers no frame or all)."""
    times = np.asarray(expl.times, dtype=np.float64)
    freqs = np.asarray(expl.freqs, dtype=np.float64)
    tf = np.asarray(expl.tf_map, dtype=np.float64)
    in_t = clip.time_mask(times)
    if not in_t.any() or in_t.all():
        return None
    in_f = band_mask(freqs, clip.band_hz)
    region = in_f[:, None] & in_t[None, :]
    peak_t, peak_b = _summary_of(expl)
    cell = np.unravel_index(int(np.argmax(tf)), tf.shape)
    mass = np.clip(tf, 0, None)
    total = float(mass.sum())
    return {
        "kind": clip.kind, "severity": clip.severity, "machine": clip.machine, "seed": clip.seed,
        "curve_peak_in_window": bool(in_t[peak_t]),
        "summary_band_in_band": bool(in_f[peak_b]),
        "summary_in_region": bool(in_t[peak_t] and in_f[peak_b]),
        "summary": f"{times[peak_t]:.2f} s, {freqs[peak_b]:.0f} Hz",
        "truth": f"{clip.onset_s:.2f}-{clip.offset_s:.2f} s, {clip.band_hz[0]:.0f}-{clip.band_hz[1]:.0f} Hz",
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
            "summary_band_in_band": pct("summary_band_in_band"),
            "summary_in_region": pct("summary_in_region"), "map_peak_in_region": pct("map_peak_in_region"),
            "region_auc_median": float(np.median([r["region_auc"] for r in rows])),
            "mass_ratio_median": float(np.nanmedian([r["mass_ratio"] for r in rows]))}


def point_cached_maps(tf_maps: Sequence[np.ndarray], times: np.ndarray, freqs: np.ndarray,
                      clips: Sequence[LocalisedClip], meta: dict[str, Any], label: str = "",
                      where: bool = False) -> dict[str, Any]:
    """The pointing game on finished maps (one per faulty clip, ``[bands, frames]``), read as a bundle
    reads them (:func:`~auscult.monitor.explain.frame_curve`, :func:`~auscult.monitor.explain.summary_peak`):
    one unit's row for :func:`summarise_units`. ``where`` prints each clip's truth and summary.
    (For the map diagnoses, ``diag_bandstats_map.py`` / ``diag_logmel_knn_map.py``.)"""
    from auscult.monitor.explain import frame_curve, summary_peak

    rows = []
    for tf, c in zip(tf_maps, clips):
        cur = frame_curve(tf)
        t, b = summary_peak(tf, cur)
        r = score_explanation(_Expl(times, freqs, tf, cur, float(times[t]), float(freqs[b])), c)
        if r is None:
            continue
        rows.append(r)
        if where:
            print(f"  {label[:22]:22s} {meta['machine']:8s} u{meta['seed']} {c.kind:12s} sev {c.severity} "
                  f"truth {r['truth']:28s} says {r['summary']:18s} hit {int(r['summary_in_region'])}")
    return {"machine": meta["machine"], "seed": meta["seed"], **summarise(rows)}


def summarise_units(per_unit: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± std over units of the summary-line hit rate: per machine, all, without valve (whose timing
    fault a level map cannot point at by design), and the curve / band hit rates."""
    def ms(v):
        return float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0
    by_m = {m: ms([r["summary_in_region"] for r in per_unit if r["machine"] == m])
            for m in sorted({r["machine"] for r in per_unit})}
    return {"by_machine": by_m, "all": ms([r["summary_in_region"] for r in per_unit]),
            "no_valve": ms([r["summary_in_region"] for r in per_unit if r["machine"] != "valve"]),
            "curve": float(np.mean([r["curve_peak_in_window"] for r in per_unit])),
            "band": float(np.mean([r["summary_band_in_band"] for r in per_unit]))}


def summary_line(o: dict[str, Any]) -> str:
    """One printed line of :func:`summarise_units`'s figures (after the variant's label)."""
    return (f"all {o['all'][0]:.0f} ± {o['all'][1]:.0f}  w/o valve {o['no_valve'][0]:.0f} ± {o['no_valve'][1]:.0f}  "
            f"curve {o['curve']:.0f} band {o['band']:.0f} | "
            + "  ".join(f"{m} {a:.0f}±{s:.0f}" for m, (a, s) in o["by_machine"].items()))


# ------------------------------------------------------------------------------------ map variants
@dataclass
class _Expl:
    times: np.ndarray
    freqs: np.ndarray
    tf_map: np.ndarray
    frame_scores: np.ndarray
    peak_time_s: Optional[float] = None
    peak_band_hz: Optional[float] = None


def _mean_scale(normal_raw: np.ndarray) -> np.ndarray:
    raw = np.concatenate(list(normal_raw), axis=1)
    s = raw.mean(axis=1)
    return np.maximum(s, 1e-6 * max(float(s.max()), 1e-12))


def _variant_shipped(normal_raw, band_scale):
    """The explanation as shipped before the tail map (commit c4c62bb): the raw map divided per band
    by its mean level on the bundle's calibration clips (``band_scale``); the summary band = the peak
    frame's brightest cell. With the bundle's ``band_scale`` this is exactly what that bundle gave."""
    from auscult.monitor.explain import calibrated_map, frame_curve

    def f(raw, times, freqs):
        tf = calibrated_map(raw, band_scale)
        c = frame_curve(tf)
        t = int(np.argmax(c))
        return _Expl(times, freqs, tf, c, float(times[t]), float(freqs[int(np.argmax(tf[:, t]))]))
    return f


def _variant_tail(normal_raw, band_scale):
    """What the bundle now does (auscult.monitor.explain.tail_map, summary_peak), with the extra
    normal clips as reference instead of the bundle's calibration clips."""
    from auscult.monitor.explain import TAIL_SMOOTH, frame_curve, summary_peak, tail_map, tail_reference

    loc, scale = tail_reference(list(normal_raw), TAIL_SMOOTH)

    def f(raw, times, freqs):
        tf = tail_map(raw, loc, scale, TAIL_SMOOTH)
        c = frame_curve(tf)
        t, b = summary_peak(tf, c)
        return _Expl(times, freqs, tf, c, float(times[t]), float(freqs[b]))
    return f


def _variant_shipped_window_band(normal_raw, band_scale):
    """Shipped map (mean-scaled), but the summary band from the map averaged over the curve's
    smoothing window around the peak frame (auscult.monitor.explain.summary_peak)."""
    from auscult.monitor.explain import calibrated_map, frame_curve, summary_peak

    def f(raw, times, freqs):
        tf = calibrated_map(raw, band_scale)
        c = frame_curve(tf)
        t, b = summary_peak(tf, c)
        return _Expl(times, freqs, tf, c, float(times[t]), float(freqs[b]))
    return f


def _variant_varnorm(normal_raw, band_scale):
    """The earlier attempt: per band (x - median) / (q99 - median) of normal frames."""
    from auscult.monitor.explain import band_variation, frame_curve, variation_normalised_map

    loc, scale = band_variation(list(normal_raw), 0.99)

    def f(raw, times, freqs):
        tf = variation_normalised_map(raw, loc, scale)
        c = frame_curve(tf)
        t = int(np.argmax(c))
        return _Expl(times, freqs, tf, c, float(times[t]), float(freqs[int(np.argmax(tf[:, t]))]))
    return f


#: name -> factory(normal raw maps [N, K, F], bundle band scale [K]) -> (raw, times, freqs) -> explanation
VARIANTS: dict[str, Callable] = {}


def _register_variants() -> None:
    from auscult.monitor import explain as ex

    VARIANTS["before(mean-scaled)"] = _variant_shipped
    VARIANTS["variation-normalised"] = _variant_varnorm
    if hasattr(ex, "summary_peak"):
        VARIANTS["mean-scaled+window-band"] = _variant_shipped_window_band
    if hasattr(ex, "tail_map"):
        VARIANTS["tail(extra normals)"] = _variant_tail


# ------------------------------------------------------------------------------------ the design grid
def _reference(norm: str, smooth: int, normal_raw: np.ndarray, freqs: Optional[np.ndarray] = None
               ) -> tuple[np.ndarray, np.ndarray, str]:
    """(loc, scale, mode) of one candidate normalisation, from the normal clips' raw maps.

    ``mean``: divide by the band mean; ``z``: per-band z-score; ``q<q>``: (x - median) / (q quantile -
    median); ``max``: the same with the band maximum; ``nbmax<k>``: the maximum over +-k bands (what
    ships, k = 2); ``cmq<q>``: the q quantile over clips of each clip's maximum, over +-2 bands;
    ``relmax<r>``: the maximum over the bands whose centre lies within +-r (relative) of the band's;
    ``cmk<k>``: the k-th largest of the clips' maxima, over +-2 bands."""
    from auscult.monitor.explain import smooth_frames

    per = [smooth_frames(m, smooth) for m in normal_raw]
    sm = np.concatenate(per, axis=1)
    med = np.median(sm, axis=1)

    def pool(v, k):
        return np.array([v[max(0, b - k): b + k + 1].max() for b in range(len(v))])

    if norm == "mean":
        return np.zeros_like(med), sm.mean(axis=1), "ratio"
    if norm == "z":
        return sm.mean(axis=1), sm.std(axis=1), "excess"
    if norm.startswith("q"):
        return med, np.quantile(sm, float(norm[1:]), axis=1) - med, "excess"
    if norm == "max":
        return med, sm.max(axis=1) - med, "excess"
    if norm.startswith("nbmax"):
        return med, pool(sm.max(axis=1) - med, int(norm[5:])), "excess"
    if norm.startswith("relmax"):
        r, f = float(norm[6:]), np.asarray(freqs, dtype=np.float64)
        peak = sm.max(axis=1) - med
        return med, np.array([peak[np.abs(f - c) <= r * c].max() for c in f]), "excess"
    if norm.startswith("cmk"):  # the k-th largest of the per-clip maxima (k = 2: one bad clip is ignored)
        cm = np.sort(np.stack([m.max(axis=1) for m in per]), axis=0)
        k = min(int(norm[3:]), cm.shape[0])
        return med, pool(cm[-k] - med, 2), "excess"
    if norm.startswith("cmq"):
        cm = np.stack([m.max(axis=1) for m in per])
        return med, pool(np.quantile(cm, float(norm[3:]), axis=0) - med, 2), "excess"
    raise ValueError(norm)


def design_grid(paths: Sequence[Path], norms: Sequence[str], smooths: Sequence[int], rules: Sequence[str],
                n_ref: Optional[int] = None, contaminate: bool = False) -> list[dict[str, Any]]:
    """Summary hit rates of every (normalisation, time smoothing, band rule) on cached runs, with the
    extra normal clips as reference. Band rules: ``cell`` (the peak frame's brightest cell) or
    ``window`` (:func:`auscult.monitor.explain.summary_peak`). ``n_ref``: use only the first so many
    normal clips as reference (how many calibration clips the tail reference needs). ``contaminate``:
    one faulty clip slips into the reference -- for each scored clip, another clip of the same unit
    with the same fault kind at severity 1 and another seed (a "normal" folder with one bad recording)."""
    from auscult.monitor.explain import frame_curve, smooth_frames, summary_peak

    loaded = [_load_cache(p) for p in paths]
    out = []
    for norm in norms:
        for sm in smooths:
            for rule in rules:
                rows = []
                for z, meta, clips in loaded:
                    loc, scale, mode = _reference(norm, sm, z["normal_raw"][:n_ref], z["freqs"])
                    scale = np.maximum(scale, 1e-6 * max(float(scale.max()), 1e-12))
                    for i, c in enumerate(clips):
                        if contaminate:
                            js = [j for j, o in enumerate(clips) if o.kind == c.kind and o.severity == 1.0
                                  and o.seed != c.seed]
                            ref = list(z["normal_raw"][:n_ref]) + [z["fault_raw"][js[0]]]
                            loc, scale, mode = _reference(norm, sm, np.stack(ref), z["freqs"])
                            scale = np.maximum(scale, 1e-6 * max(float(scale.max()), 1e-12))
                        r = smooth_frames(z["fault_raw"][i], sm)
                        tf = r / scale[:, None] if mode == "ratio" else np.maximum((r - loc[:, None]) / scale[:, None], 0)
                        cur = frame_curve(tf)
                        t, b = summary_peak(tf, cur) if rule == "window" else (int(np.argmax(cur)), -1)
                        if b < 0:
                            b = int(np.argmax(tf[:, t]))
                        e = _Expl(z["times"], z["freqs"], tf, cur, float(z["times"][t]), float(z["freqs"][b]))
                        res = score_explanation(e, c)
                        if res is not None:
                            rows.append({**res, "method": meta["method"]})
                out.append({"norm": norm, "smooth": sm, "rule": rule, "n_ref": n_ref, "contaminated": contaminate,
                            **summarise(rows),
                            "by_machine": {m: summarise([r for r in rows if r["machine"] == m])["summary_in_region"]
                                           for m in sorted({r["machine"] for r in rows})}})
                o = out[-1]
                print(f"# grid {norm:8s} smooth {sm} band {rule:6s} ref {n_ref or 'all'}{'+1 faulty' if contaminate else ''}: summary {o['summary_in_region']:.0f}% curve "
                      f"{o['curve_peak_in_window']:.0f}% band {o['summary_band_in_band']:.0f}%  "
                      + " ".join(f"{m} {v:.0f}" for m, v in o["by_machine"].items()), flush=True)
    return out


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
                out.append(LocalisedClip(x, kind, sev, info.onset_s, info.offset_s, tuple(info.band_hz), machine,
                                         list(info.events_s), first_seed + i))
    return out


def clip_records(clips: Sequence[LocalisedClip]) -> list[dict[str, Any]]:
    """The truths of ``clips`` as JSON records (what a stage-1 cache stores; the waves are not kept)."""
    return [{"kind": c.kind, "severity": c.severity, "onset_s": c.onset_s, "offset_s": c.offset_s,
             "band_hz": list(c.band_hz), "events_s": list(c.events_s), "seed": c.seed} for c in clips]


def clips_from_records(records: Sequence[dict[str, Any]], machine: str) -> list[LocalisedClip]:
    """:func:`clip_records` read back (the waves empty)."""
    return [LocalisedClip(np.zeros(0), c["kind"], c["severity"], c["onset_s"], c["offset_s"], tuple(c["band_hz"]),
                          machine, c["events_s"], c["seed"]) for c in records]


def fit_unit(machine: str, seed: int, method: str, n_fit: int, duration: float, decoded: bool = False
             ) -> tuple[Any, float, list[np.ndarray]]:
    """``auscult fit`` on a folder of ``n_fit`` normal clips of the held-out unit ``seed`` (clip seeds
    0..n_fit-1, 16-bit files): ``(bundle, fit seconds, the folder's waves)``, the waves as rendered or,
    with ``decoded``, as the fit read them back from the files."""
    import soundfile as sf

    from auscult.data.synth import render_clip, unit_for
    from auscult.monitor.fit import FitConfig, fit_bundle

    unit = unit_for(machine, "loc", seed)
    waves = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / machine
        d.mkdir()
        for i in range(n_fit):
            w = render_clip(machine, unit=unit, seed=i, duration=duration)
            sf.write(str(d / f"rec_{i:03d}.wav"), w, SR)
            waves.append(sf.read(str(d / f"rec_{i:03d}.wav"), dtype="float32")[0] if decoded else w)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            bundle, _ = fit_bundle(d, None, FitConfig(method=method, window_s=duration, seed=seed))
            fit_s = time.perf_counter() - t0
    return bundle, fit_s, waves


def _cache_run(path: Path, machine: str, seed: int, method: str, args) -> None:
    """Stage 1: fit, explain, store (raw maps + the bundle's explanations + clip truths)."""
    from auscult.data.synth import render_clip, unit_for
    from auscult.monitor.explain import interior_frames

    unit = unit_for(machine, "loc", seed)
    clips = render_clips(machine, seed, args.n_clips, args.severities, args.duration, first_seed=50_000)
    bundle, fit_s, _ = fit_unit(machine, seed, method, args.n_fit, args.duration)
    _, mm = bundle.model(None)
    if mm.kind != method:
        raise RuntimeError(f"asked for {method}, the bundle holds {mm.kind}")
    fc = mm.feature_config

    def raw(w):
        t = mm.explain_wave(w)
        keep = interior_frames(len(t.times), w.shape[0], fc.n_fft, fc.hop_length)
        return t.tf_map[:, keep], t.times[keep], t.freqs, t.spectrogram[:, keep]

    t0 = time.perf_counter()
    normal = [raw(render_clip(machine, unit=unit, seed=20_000 + i, duration=args.duration))[0]
              for i in range(args.n_normal)]
    fault_raw, fault_spec, clean_spec, b_tf, b_curve, b_peak = [], [], [], [], [], []
    for c in clips:
        r, times, freqs, spec = raw(c.wave)
        fault_raw.append(r)
        fault_spec.append(spec)
        clean_spec.append(raw(render_clip(machine, unit=unit, seed=c.seed, duration=args.duration))[3])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            e = bundle.explain_waveform(c.wave, SR)
        b_tf.append(e.tf_map)
        b_curve.append(e.frame_scores)
        b_peak.append(_summary_of(e))
    explain_s = time.perf_counter() - t0
    meta = {"machine": machine, "seed": seed, "method": method, "fit_s": fit_s, "explain_s": explain_s,
            "bundle_how": e.method, "clips": clip_records(clips)}
    cal = mm.calibration.get("band_scale")
    np.savez_compressed(path, normal_raw=np.stack(normal), fault_raw=np.stack(fault_raw), times=times, freqs=freqs,
                        fault_spec=np.stack(fault_spec), clean_spec=np.stack(clean_spec),
                        bundle_tf=np.stack(b_tf), bundle_curve=np.stack(b_curve), bundle_peak=np.asarray(b_peak),
                        band_scale=np.asarray(cal if cal is not None else np.ones(len(freqs))),
                        meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))


def _load_cache(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any], list[LocalisedClip]]:
    z = dict(np.load(path))
    meta = json.loads(bytes(z.pop("meta")).decode())
    return z, meta, clips_from_records(meta["clips"], meta["machine"])


def oracle_check(z: dict[str, np.ndarray], clips: Sequence[LocalisedClip], db: float = 3.0) -> dict[str, float]:
    """Is the simulator's truth where the fault's energy is? The same seed renders the same healthy
    machine and background, so ``spec(faulty) - spec(clean)`` is the fault's own footprint: the share
    of cells raised by more than ``db`` dB that lie in the claimed band (any time), and in the claimed
    time region (any band)."""
    in_band, in_time = [], []
    for i, c in enumerate(clips):
        d = z["fault_spec"][i] - z["clean_spec"][i]
        raised = d > db
        if not raised.any():
            continue
        in_band.append(float(raised[band_mask(z["freqs"], c.band_hz)].sum() / raised.sum()))
        in_time.append(float(raised[:, c.time_mask(z["times"])].sum() / raised.sum()))
    return {"raised_cells_in_band": float(np.mean(in_band)) if in_band else float("nan"),
            "raised_cells_in_time": float(np.mean(in_time)) if in_time else float("nan")}


def evaluate_cache(path: Path) -> list[dict[str, Any]]:
    """Stage 2: every variant's per-clip figures for one cached run."""
    z, meta, clips = _load_cache(path)
    times, freqs = z["times"], z["freqs"]
    out = []
    rows = []
    for i, c in enumerate(clips):
        t, b = (int(v) for v in z["bundle_peak"][i])
        e = _Expl(times, freqs, z["bundle_tf"][i], z["bundle_curve"][i], float(times[t]), float(freqs[b]))
        r = score_explanation(e, c)
        if r is not None:
            rows.append(r)
    base = {k: meta[k] for k in ("machine", "seed", "method", "fit_s", "explain_s")}
    out.append({**base, "maps": "bundle", "clips": rows, "summary": summarise(rows)})
    for name, make in VARIANTS.items():
        f = make(z["normal_raw"], z["band_scale"])
        rows = []
        for i, c in enumerate(clips):
            r = score_explanation(f(z["fault_raw"][i], times, freqs), c)
            if r is not None:
                rows.append(r)
        out.append({**base, "maps": name, "clips": rows, "summary": summarise(rows)})
    out[0]["oracle"] = oracle_check(z, clips)
    return out


def _mean_std(v: Sequence[float]) -> str:
    v = [x for x in v if x == x]
    if not v:
        return "-"
    return f"{np.mean(v):.0f} ± {np.std(v, ddof=1) if len(v) > 1 else 0.0:.0f}"


def print_tables(runs: Sequence[dict[str, Any]]) -> None:
    """Per machine x method x maps: mean ± std over units of the per-unit hit rates; then pooled."""
    keys = sorted({(r["machine"], r["method"]) for r in runs})
    variants = list(dict.fromkeys(r["maps"] for r in runs))
    print("\n| machine | method | maps | units | clips | summary in region % | summary band in band % | "
          "curve peak in time % | map peak in region % | region AUC |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for machine, method in keys:
        for v in variants:
            rs = [r for r in runs if r["machine"] == machine and r["method"] == method and r["maps"] == v
                  and r["summary"]["n"]]
            if not rs:
                continue
            g = lambda k: _mean_std([r["summary"][k] for r in rs])
            auc = [r["summary"]["region_auc_median"] for r in rs]
            print(f"| {machine} | {method} | {v} | {len(rs)} | {sum(r['summary']['n'] for r in rs)} | "
                  f"{g('summary_in_region')} | {g('summary_band_in_band')} | {g('curve_peak_in_window')} | "
                  f"{g('map_peak_in_region')} | {np.mean(auc):.2f} |")
    print("\npooled over machines (mean ± std over the per-(machine, unit) hit rates; clips pooled in brackets):")
    print("| method | maps | runs | summary in region % | curve peak in time % | band in band % |")
    print("|---|---|---|---|---|---|")
    for method in sorted({r["method"] for r in runs}):
        for v in variants:
            rs = [r for r in runs if r["method"] == method and r["maps"] == v and r["summary"]["n"]]
            if not rs:
                continue
            allc = [c for r in rs for c in r["clips"]]
            pooled = summarise(allc)
            g = lambda k: _mean_std([r["summary"][k] for r in rs])
            print(f"| {method} | {v} | {len(rs)} | {g('summary_in_region')} ({pooled['summary_in_region']:.0f}) | "
                  f"{g('curve_peak_in_window')} ({pooled['curve_peak_in_window']:.0f}) | "
                  f"{g('summary_band_in_band')} ({pooled['summary_band_in_band']:.0f}) |")
    orc = [r for r in runs if "oracle" in r]
    if orc:
        print("\ntruth check (share of cells the fault raised by > 3 dB that lie in the claimed band / time region):")
        for machine in sorted({r["machine"] for r in orc}):
            rs = [r["oracle"] for r in orc if r["machine"] == machine]
            print(f"  {machine:10s} band {np.nanmean([o['raised_cells_in_band'] for o in rs]):.2f}  "
                  f"time {np.nanmean([o['raised_cells_in_time'] for o in rs]):.2f}  ({len(rs)} runs)")


def main(argv: Optional[Sequence[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--machines", nargs="+", default=["fan", "slider", "valve", "ToyTrain"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="units (unit_for(machine, 'loc', seed))")
    ap.add_argument("--methods", nargs="+", default=["logmel_knn", "autoencoder", "bandstats"])
    ap.add_argument("--n-fit", type=int, default=40, help="normal clips in the fitted folder")
    ap.add_argument("--n-normal", type=int, default=16, help="further normal clips (reference of the variants)")
    ap.add_argument("--n-clips", type=int, default=4, help="faulty clips per kind and severity")
    ap.add_argument("--severities", nargs="+", type=float, default=[0.5, 1.0])
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--cache", default=None, help="folder of stage-1 npz files (default: a temporary folder)")
    ap.add_argument("--out", default=None, help="JSON of all runs' figures (rewritten after every run)")
    ap.add_argument("--table-only", nargs="+", default=None, help="print the tables of these JSON files and stop")
    ap.add_argument("--eval-only", action="store_true", help="score the cached runs only (fit nothing)")
    ap.add_argument("--grid", nargs="*", default=None, metavar="NORM",
                    help="score the design grid of normalisations (default: mean z q0.99 q0.999 max nbmax2 nbmax4 "
                         "cmq0.9) x time smoothing 1 3 5 x band rule cell/window on the cached runs of --machines, "
                         "--seeds, --methods, and stop")
    ap.add_argument("--grid-smooth", nargs="+", type=int, default=[1, 3, 5], help="time smoothings of --grid")
    ap.add_argument("--grid-ref", type=int, default=None, help="--grid: normal clips used as reference (default all)")
    ap.add_argument("--grid-contaminate", action="store_true",
                    help="--grid: one faulty clip (same kind, severity 1, another seed) joins the reference")
    args = ap.parse_args(argv)

    if args.table_only:
        runs = [r for f in args.table_only for r in json.loads(Path(f).read_text())["runs"]]
        print_tables(runs)
        return
    _register_variants()
    if args.grid is not None:
        paths = [Path(args.cache) / f"{m}_u{s}_{me}.npz" for m in args.machines for s in args.seeds for me in args.methods]
        res = design_grid([p for p in paths if p.exists()],
                          args.grid or ["mean", "z", "q0.99", "q0.999", "max", "nbmax2", "nbmax4", "cmq0.9"],
                          args.grid_smooth, ["cell", "window"], args.grid_ref, args.grid_contaminate)
        if args.out:
            Path(args.out).write_text(json.dumps({"args": vars(args), "grid": res}, indent=1, default=float))
        return
    cache = Path(args.cache) if args.cache else Path(tempfile.mkdtemp(prefix="loc_"))
    cache.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"args": vars(args), "variants": list(VARIANTS), "runs": []}
    for machine in args.machines:
        for seed in args.seeds:
            for method in args.methods:
                path = cache / f"{machine}_u{seed}_{method}.npz"
                if not path.exists():
                    if args.eval_only:
                        continue
                    t0 = time.perf_counter()
                    _cache_run(path, machine, seed, method, args)
                    print(f"# cached {path.name} in {time.perf_counter() - t0:.0f} s", flush=True)
                runs = evaluate_cache(path)
                results["runs"].extend(runs)
                for r in runs:
                    s = r["summary"]
                    print(f"# {machine} unit {seed} {method} {r['maps']}: n={s['n']} summary {s.get('summary_in_region', 0):.0f}% "
                          f"band {s.get('summary_band_in_band', 0):.0f}% curve {s.get('curve_peak_in_window', 0):.0f}% "
                          f"map-peak {s.get('map_peak_in_region', 0):.0f}% region AUC {s.get('region_auc_median', float('nan')):.2f}"
                          + (f"  truth check {r['oracle']}" if "oracle" in r else ""), flush=True)
                if args.out:
                    Path(args.out).write_text(json.dumps(results, indent=1, default=float))
    print_tables(results["runs"])


if __name__ == "__main__":
    main()
