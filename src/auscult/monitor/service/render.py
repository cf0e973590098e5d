"""Server-side PNG of an explanation: per-frame anomaly curve, the input's spectrogram (when the
explanation carries one) and the time-frequency anomaly map, on one time axis."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

__all__ = ["explanation_png"]


def _oriented(name: str, m: Any, n_freqs: int, n_times: int) -> np.ndarray:
    a = np.asarray(m, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {a.shape}")
    if a.shape == (n_times, n_freqs) and a.shape != (n_freqs, n_times):
        a = a.T  # accept [time, freq] too; draw as [freq, time]
    if a.shape != (n_freqs, n_times):
        raise ValueError(f"{name} shape {a.shape} does not match {n_freqs} freqs x {n_times} times")
    return a


def _freq_axis(ax, freqs: np.ndarray) -> None:
    """Rows are drawn evenly (one per band, as the bands are: mel bands are not evenly spaced in
    Hz), so label them with the Hz values that fall on them."""
    k = len(freqs)
    ax.set_ylim(-0.5, k - 0.5)
    if k < 2 or not np.all(np.diff(freqs) > 0):
        ax.set_ylabel("band")
        return
    lo, hi = float(freqs[0]), float(freqs[-1])
    candidates = np.array([0, 100, 250, 500, 1000, 2000, 4000, 6000, 8000, 12000, 16000, 24000, 32000, 48000],
                          dtype=float)
    ticks = [f for f in candidates if lo <= f <= hi]
    pos = np.interp(ticks, freqs, np.arange(k))
    keep = [0] + [i for i in range(1, len(pos)) if pos[i] - pos[i - 1] >= 0.06 * k]  # no crowded labels
    ax.set_yticks([pos[i] for i in keep])
    ax.set_yticklabels([f"{ticks[i] / 1000:g}k" if ticks[i] >= 1000 else f"{ticks[i]:g}" for i in keep])
    ax.set_ylabel("frequency [Hz]")


def explanation_png(expl: Any, title: str = "", width_px: int = 720, dpi: int = 100) -> bytes:
    """Render ``expl`` as PNG bytes.

    ``expl`` needs ``times`` ``[F]``, ``frame_scores``, ``freqs`` ``[K]`` and ``tf_map``
    ``[K, F]`` (``[F, K]`` is accepted); an optional ``spectrogram`` ``[K, F]`` (dB) is drawn
    above the map and an optional ``frame_threshold`` as a dashed line on the frame curve.
    Uses matplotlib's object API with the Agg canvas (no pyplot state), so it is safe to call from
    the service's worker threads.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    times = np.asarray(expl.times, dtype=np.float64).ravel()
    freqs = np.asarray(expl.freqs, dtype=np.float64).ravel()
    tf = _oriented("tf_map", expl.tf_map, len(freqs), len(times))
    spec = getattr(expl, "spectrogram", None)
    spec = None if spec is None else _oriented("spectrogram", spec, len(freqs), len(times))
    frame_scores = np.asarray(expl.frame_scores, dtype=np.float64).ravel()
    frame_thr = getattr(expl, "frame_threshold", None)

    panels = 3 if spec is not None else 2
    ratios = [1.0] + [1.6] * (panels - 1)
    fig = Figure(figsize=(width_px / dpi, (0.36 + 0.24 * panels) * width_px / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    axes = fig.subplots(panels, 1, sharex=True, gridspec_kw={"height_ratios": ratios})
    if len(times) > 1:
        dt = float(np.median(np.diff(times)))
        t_ext = (float(times[0]) - dt / 2, float(times[-1]) + dt / 2)
    else:
        t_ext = (0.0, 1.0)
    ax = axes[0]
    xs = times if len(frame_scores) == len(times) else np.linspace(*t_ext, num=len(frame_scores))
    ax.plot(xs, frame_scores, color="#1f77b4", lw=1.2, label="frame anomaly")
    if frame_thr is not None and np.isfinite(frame_thr):
        ax.axhline(float(frame_thr), color="#d62728", lw=1.0, ls="--", label="normal frames' 99th pct")
        ax.legend(loc="upper left", fontsize=7, frameon=False)
    ax.set_ylabel("frame score")
    if title:
        ax.set_title(title, fontsize=10)
    extent = (t_ext[0], t_ext[1], -0.5, len(freqs) - 0.5)
    if spec is not None:
        axes[1].imshow(spec, origin="lower", aspect="auto", cmap="gray_r", extent=extent, interpolation="nearest")
        axes[1].set_title("input spectrogram [dB]", fontsize=8, loc="left")
        _freq_axis(axes[1], freqs)
    im = axes[-1].imshow(tf, origin="lower", aspect="auto", cmap="magma", extent=extent, interpolation="nearest")
    axes[-1].set_title("anomaly per band and frame", fontsize=8, loc="left")
    _freq_axis(axes[-1], freqs)
    axes[-1].set_xlabel("time [s]")
    axes[-1].set_xlim(*t_ext)
    fig.colorbar(im, ax=list(axes), fraction=0.035, pad=0.02, label="anomaly")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
