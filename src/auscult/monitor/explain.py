"""Where is the anomaly? Figures and a localisation check for :class:`~auscult.monitor.bundle.Explanation`.

``auscult explain model.auscult FILE --out fig.png`` draws three aligned panels:

1. the input's log-mel spectrogram (dB),
2. the time-frequency anomaly map (per band and frame, ``1`` = as high as held-out normal audio ever
   got in that band and its neighbours, :func:`tail_map`), with the summary line's point circled,
3. the per-frame anomaly curve with the level normal frames rarely exceed (the 99th percentile
   of held-out normal frames, each compared with a reference it did not help build) as a dashed line.

How the map is computed: by the method, for the methods that declare the ``explain`` capability
(:meth:`auscult.methods.Method.explain`). For the autoencoder, the squared reconstruction residual
of each (frame, mel band) where the input is above its reconstruction, over the highest a training
frame reached in that band and its neighbours (models saved before: the two-sided squared residual,
whose mean is the clip score); for the k-NN on band statistics (``logmel_knn``), each frame's band level above the
training mean, distance from the clip's own band mean and change from the previous frame, each over
the highest a training frame reached (models saved before: each frame's squared z-score against the
nearest normal clip's band mean and spread). The bundle compares the map, band by band, with
the highest level it reached on held-out normal audio in that band and its neighbours
(:func:`tail_map`; bundles calibrated before that divide by the band's mean level,
:func:`calibrated_map`), so neither a band that is always hard to reconstruct (noise) nor the loud
transients normal audio has now and then look anomalous; it leaves out frames whose analysis window
runs past either end of the input (:func:`interior_frames`), summarises each frame by
:func:`frame_curve` and names the most anomalous frame and band with :func:`summary_peak`.

:func:`localisation` measures how well an explanation points at a known fault (time window and
frequency band), the check the tests run on simulated faults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from ..errors import ConfigError

__all__ = ["plot_explanation", "explanation_figure", "localisation", "explanation_to_dict", "interior_frames",
           "calibrated_map", "frame_curve", "band_variation", "variation_normalised_map", "smooth_frames",
           "tail_reference", "tail_map", "summary_peak", "TAIL_SMOOTH", "TAIL_NEIGHBOURS"]

#: frames the raw map is averaged over before it is compared with normal audio (160 ms at hop 512, 16 kHz)
TAIL_SMOOTH = 5
#: bands on each side whose normal maximum also bounds a band (transients of other machines ring at
#: frequencies that vary from event to event, so a band's own few normal clips under-sample them)
TAIL_NEIGHBOURS = 2


def interior_frames(n_frames: int, n_samples: int, n_fft: int, hop: int) -> np.ndarray:
    """Boolean mask of the centred frames whose whole analysis window lies inside the signal.

    Edge frames see padding (zeros or a mirror image) instead of audio and look unusual to every
    detector, so explanations leave them out.
    """
    centre = np.arange(n_frames) * hop
    mask = (centre - n_fft // 2 >= 0) & (centre + n_fft // 2 <= n_samples)
    if not mask.any():  # a very short input: keep everything rather than nothing
        mask[:] = True
    return mask


def calibrated_map(tf: np.ndarray, band_scale: Optional[np.ndarray]) -> np.ndarray:
    """``tf / band_scale`` per band: 1 = as anomalous as normal audio typically is in that band."""
    if band_scale is None:
        return tf
    scale = np.asarray(band_scale, dtype=np.float64)
    return tf / scale[:, None]


def band_variation(maps: Sequence[np.ndarray], q: float = 0.99) -> tuple[np.ndarray, np.ndarray]:
    """Per band, how raw maps of *normal* audio vary: ``(loc, scale)`` = the median over all their
    frames and the distance from it to the ``q`` quantile (floored at a millionth of the largest).

    ``maps``: raw ``[K, F_i]`` maps of held-out normal clips (interior frames only).
    """
    if not 0.5 < float(q) < 1.0:
        raise ConfigError(f"band_variation: q must be in (0.5, 1), got {q!r}")
    raw = np.concatenate([np.asarray(m, dtype=np.float64) for m in maps], axis=1)
    loc = np.median(raw, axis=1)
    scale = np.quantile(raw, float(q), axis=1) - loc
    return loc, np.maximum(scale, 1e-6 * max(float(scale.max()), 1e-12))


def variation_normalised_map(tf: np.ndarray, loc: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``max(0, (tf - loc) / scale)`` per band (see :func:`band_variation`): 0 up to the normal median,
    1 where the map is as high as normal frames get in that band only ``1 - q`` of the time.

    Dividing by the mean level alone (:func:`calibrated_map`) leaves a band whose normal frames
    are usually quiet but sometimes very loud (impacts of other machines, doors) looking as
    anomalous as a fault whenever such an event occurs; dividing by the band's normal *spread of
    high values* puts those events back at about 1.
    """
    return np.maximum((np.asarray(tf, dtype=np.float64) - np.asarray(loc)[:, None]) / np.asarray(scale)[:, None], 0.0)


def smooth_frames(tf: np.ndarray, width: int = TAIL_SMOOTH) -> np.ndarray:
    """Centred moving average of ``tf [K, F]`` over ``width`` frames (shortened at the ends)."""
    tf = np.asarray(tf, dtype=np.float64)
    width = int(width)
    if width <= 1 or tf.shape[-1] < 2:
        return tf
    k = np.ones(width)
    den = np.convolve(np.ones(tf.shape[-1]), k, mode="same")
    c = np.cumsum(np.pad(tf, [(0, 0), (width // 2 + 1, width - width // 2 - 1)]), axis=-1)
    num = c[:, width:] - c[:, :-width]
    return num[:, :tf.shape[-1]] / den


def tail_reference(maps: Sequence[np.ndarray], smooth: int = TAIL_SMOOTH, neighbours: int = TAIL_NEIGHBOURS
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``(loc, scale)`` of :func:`tail_map` from raw ``[K, F_i]`` maps of held-out *normal* clips
    (interior frames): per band, the median of the time-smoothed map, and the distance from it to the
    highest value any normal frame reached in that band or its ``neighbours`` bands on each side.
    """
    if not maps:
        raise ConfigError("tail_reference: no normal maps to learn from")
    sm = np.concatenate([smooth_frames(m, smooth) for m in maps], axis=1)
    loc = np.median(sm, axis=1)
    return loc, tail_scale(loc, sm.max(axis=1), neighbours)


def tail_scale(loc: np.ndarray, peak: np.ndarray, neighbours: int = TAIL_NEIGHBOURS) -> np.ndarray:
    """:func:`tail_reference`'s ``scale`` from per-band medians ``loc`` and maxima ``peak``: the
    largest ``peak - loc`` in the band or its ``neighbours`` bands on each side (floored above 0).
    For callers that gather the maxima while streaming over clips."""
    up = np.asarray(peak) - np.asarray(loc)
    k = int(neighbours)
    scale = np.array([up[max(0, b - k): b + k + 1].max() for b in range(len(up))])
    return np.maximum(scale, 1e-6 * max(float(scale.max()), 1e-12))


def level_contributions(db: np.ndarray, band_mean: Optional[np.ndarray] = None,
                        kinds: Sequence[str] = ("above", "spread", "change")) -> dict[str, np.ndarray]:
    """Per (band, frame) of a ``[K, F]`` level map in dB, what it contributes to a band-statistics
    detector, in dB: ``above`` -- the level above the training clips' ``band_mean`` (0 below it),
    ``spread`` -- the distance from the clip's own band mean, ``change`` -- the change from the previous
    frame. The explanations of ``bandstats`` and ``logmel_knn`` divide each by what training frames
    reached (:func:`tail_map`) and sum them."""
    out = {}
    for kind in kinds:
        if kind == "above":
            if band_mean is None:
                raise ConfigError("level_contributions: 'above' needs the training band mean")
            out[kind] = np.maximum(db - np.asarray(band_mean)[:db.shape[0], None], 0.0)
        elif kind == "spread":
            out[kind] = np.abs(db - db.mean(axis=1, keepdims=True))
        elif kind == "change":
            out[kind] = np.abs(np.diff(db, axis=1, prepend=db[:, :1]))
        else:
            raise ConfigError(f"level_contributions: unknown kind {kind!r} (above, spread, change)")
    return out


def tail_map(tf: np.ndarray, loc: np.ndarray, scale: np.ndarray, smooth: int = TAIL_SMOOTH) -> np.ndarray:
    """How far above normal audio's *highest* level each cell is: ``max(0, (smooth(tf) - loc) / scale)``
    per band (:func:`tail_reference`). 0 = at or below the band's normal median, 1 = as high as the
    highest normal frame in that band and its neighbours, above 1 = higher than anything normal.

    Why not the mean level (:func:`calibrated_map`) or a high quantile (:func:`variation_normalised_map`):
    normal audio of a real plant has loud, rare transients (other machines, tools, doors) that ring
    at a different frequency each time. Below their rate (a band sees one in a few hundred frames)
    every quantile ignores them, so a normal impact outshines a steady fault 10 dB above its band.
    Dividing by the highest level normal audio reached in the band and its neighbours puts such
    events at about 1, while a fault that does what normal audio never did stays above 1. The short
    smoothing in time (:data:`TAIL_SMOOTH` frames, as the frame curve) favours what lasts over one
    noisy frame. Measured in benchmarks/bench_localisation.py (docs/benchmarks.md).
    """
    sm = smooth_frames(tf, smooth)
    return np.maximum((sm - np.asarray(loc)[:, None]) / np.asarray(scale)[:, None], 0.0)


def summary_peak(tf: np.ndarray, curve: np.ndarray, half: int = 2) -> tuple[int, int]:
    """``(frame, band)`` the summary line names: the frame curve's peak, and the band with the highest
    mean map over the ``2 * half + 1`` frames around it (the curve's own smoothing window).

    The curve is smoothed, so its peak may sit a frame or two beside a short fault (between the two
    clacks of a wheel pair); the single peak frame's brightest band is then some other sound.
    """
    t = int(np.argmax(curve))
    seg = np.asarray(tf)[:, max(0, t - half): t + half + 1]
    return t, int(np.argmax(seg.mean(axis=1)))


def frame_curve(tf: np.ndarray, top_fraction: float = 1 / 32, smooth: int = 5) -> np.ndarray:
    """Per-frame anomaly: the mean of each frame's ``top_fraction`` most anomalous bands, smoothed
    over ``smooth`` frames (a centred moving average, shortened at the ends).

    Machine faults are often narrow-band (a squeal, a bearing tone): a plain mean over all bands
    dilutes a 3-band fault ~40 times in a 128-band map; the mean of the top few bands keeps it
    visible while not following any single noisy band. The short smoothing (5 frames = 160 ms at
    hop 512 and 16 kHz) stops one noisy frame from outranking a fault that lasts a few frames.
    Measured on 10 simulated fan squeals at severity 1 (seeds 2000-2009, the bundles of
    tests/monitor): the curve's peak fell inside the fault window on 10/10 (k-NN) and 8/10 (AE)
    clips, against 7/10 and 4/10 for an unsmoothed top-1/16 mean.
    """
    k = max(1, int(round(tf.shape[0] * top_fraction)))
    c = np.sort(tf, axis=0)[-k:].mean(axis=0)
    if smooth > 1 and c.size > 1:
        w = np.ones(int(smooth))
        c = np.convolve(c, w, mode="same") / np.convolve(np.ones_like(c), w, mode="same")
    return c


def explanation_figure(expl: Any, title: str = "", width_in: float = 9.0):
    """A matplotlib ``Figure`` (Agg canvas, no pyplot state: safe in threads) of an explanation."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    times = np.asarray(expl.times, dtype=np.float64)
    freqs = np.asarray(expl.freqs, dtype=np.float64)
    fig = Figure(figsize=(width_in, 0.8 * width_in), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(3, 1, sharex=True, gridspec_kw={"height_ratios": [2, 2, 1.2]})
    if len(times) > 1:
        dt = float(np.median(np.diff(times)))
        t_ext = (float(times[0]) - dt / 2, float(times[-1]) + dt / 2)
    else:
        t_ext = (0.0, 1.0)
    # mel bands are not evenly spaced in Hz: draw against the band index, label in Hz
    k = len(freqs)
    extent = (t_ext[0], t_ext[1], -0.5, k - 0.5)
    spec = np.asarray(getattr(expl, "spectrogram", None) if getattr(expl, "spectrogram", None) is not None
                      else np.zeros_like(expl.tf_map))
    im0 = axes[0].imshow(spec, origin="lower", aspect="auto", cmap="gray_r", extent=extent, interpolation="nearest")
    axes[0].set_ylabel("log-mel [Hz]")
    fig.colorbar(im0, ax=axes[0], pad=0.01, label="dB")
    tf = np.asarray(expl.tf_map, dtype=np.float64)
    vmax = float(np.quantile(tf, 0.999)) if tf.size else 1.0
    im1 = axes[1].imshow(tf, origin="lower", aspect="auto", cmap="magma", extent=extent, interpolation="nearest",
                         vmin=0.0, vmax=max(vmax, 1e-12))
    axes[1].set_ylabel("anomaly map [Hz]")
    pt, pb = getattr(expl, "peak_time_s", None), getattr(expl, "peak_band_hz", None)
    if pt is not None and pb is not None and k:  # the summary line's point, on the band-index axis
        axes[1].plot([pt], [int(np.argmin(np.abs(freqs - pb)))], marker="o", mfc="none", mec="#2ecc71", ms=12, mew=1.5)
    tail = "highest level" in str(getattr(expl, "method", ""))
    fig.colorbar(im1, ax=axes[1], pad=0.01, label="x normal maximum" if tail else "x normal level")
    ticks = np.linspace(0, k - 1, min(6, k)).round().astype(int)
    for ax in axes[:2]:
        ax.set_yticks(ticks)
        ax.set_yticklabels([f"{freqs[i]:.0f}" for i in ticks])
    axes[2].plot(times, np.asarray(expl.frame_scores), color="#c0392b", lw=1.2, label="frame anomaly")
    ft = getattr(expl, "frame_threshold", None)
    if ft is not None:
        axes[2].axhline(ft, color="#555", ls="--", lw=1, label="normal frames' 99th percentile")
    axes[2].set_xlabel("time [s]")
    axes[2].set_ylabel("frame anomaly")
    axes[2].legend(loc="upper right", fontsize=8)
    # the same (invisible) colour-bar space beside the curve, so the three panels share one time axis
    fig.colorbar(im1, ax=axes[2], pad=0.01).ax.set_visible(False)
    verdict = "ANOMALY" if getattr(expl, "decision", False) else "normal"
    head = title or getattr(expl, "machine", "")
    axes[0].set_title(f"{head}  score {expl.score:.4g} / threshold {expl.threshold:.4g}: {verdict}", fontsize=10)
    fig.subplots_adjust(left=0.08, right=0.98, top=0.94, bottom=0.07, hspace=0.12)
    return fig


def plot_explanation(expl: Any, out: Union[str, Path], title: str = "") -> Path:
    """Save :func:`explanation_figure` as PNG (or any format matplotlib knows from the suffix)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    explanation_figure(expl, title=title).savefig(out)
    return out


def localisation(expl: Any, onset_s: float, offset_s: float, band_hz: Optional[tuple[float, float]] = None
                 ) -> dict[str, Any]:
    """How well an explanation points at a known fault in ``[onset_s, offset_s]`` and ``band_hz``.

    Returns:
        ``peak_time_s`` (argmax of the frame curve) and ``peak_in_window``;
        ``time_contrast`` = mean frame curve inside the window / outside it;
        with a band: ``peak_band_hz`` (the band with the highest mean map inside the window),
        ``peak_band_in_band`` (within the fault band, widened by one mel band each side) and
        ``band_contrast`` = mean map in (window x band) / mean map in (window x other bands).
    """
    times = np.asarray(expl.times, dtype=np.float64)
    curve = np.asarray(expl.frame_scores, dtype=np.float64)
    inside = (times >= onset_s) & (times <= offset_s)
    if not inside.any() or inside.all():
        raise ValueError(f"the window [{onset_s}, {offset_s}] s must cover some but not all frames "
                         f"({times[0]:.3f}..{times[-1]:.3f} s)")
    peak = int(np.argmax(curve))
    out: dict[str, Any] = {"peak_time_s": float(times[peak]), "peak_in_window": bool(inside[peak]),
                           "time_contrast": float(curve[inside].mean() / max(curve[~inside].mean(), 1e-12))}
    if band_hz is not None:
        freqs = np.asarray(expl.freqs, dtype=np.float64)
        tf = np.asarray(expl.tf_map, dtype=np.float64)
        lo, hi = float(band_hz[0]), float(band_hz[1])
        in_band = (freqs >= lo) & (freqs <= hi)
        idx = np.flatnonzero(in_band)
        if idx.size == 0:  # a band narrower than one mel band: the nearest band
            idx = np.array([int(np.argmin(np.abs(freqs - (lo + hi) / 2)))])
        widened = np.zeros_like(in_band)
        widened[max(0, idx.min() - 1): idx.max() + 2] = True
        prof = tf[:, inside].mean(axis=1)
        pb = int(np.argmax(prof))
        out.update(peak_band_hz=float(freqs[pb]), peak_band_in_band=bool(widened[pb]),
                   band_contrast=float(prof[widened].mean() / max(prof[~widened].mean(), 1e-12)))
    return out


def explanation_to_dict(expl: Any) -> dict[str, Any]:
    """JSON-friendly dict (lists) of an explanation."""
    out = {}
    for k in ("times", "frame_scores", "freqs", "tf_map", "spectrogram"):
        v = getattr(expl, k, None)
        if v is not None:
            out[k] = np.round(np.asarray(v, dtype=np.float64), 6).tolist()
    for k in ("score", "threshold", "decision", "machine", "frame_threshold", "method", "peak_time_s", "peak_band_hz"):
        out[k] = getattr(expl, k, None)
    return out
