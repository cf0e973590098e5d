"""Server-side PNG of an explanation (per-frame anomaly curve + time-frequency heat map)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

__all__ = ["explanation_png"]


def _tf_matrix(expl: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    times = np.asarray(expl.times, dtype=np.float64).ravel()
    freqs = np.asarray(expl.freqs, dtype=np.float64).ravel()
    tf = np.asarray(expl.tf_map, dtype=np.float64)
    if tf.ndim != 2:
        raise ValueError(f"tf_map must be 2-D, got shape {tf.shape}")
    if tf.shape == (len(times), len(freqs)) and tf.shape != (len(freqs), len(times)):
        tf = tf.T  # accept [time, freq] too; draw as [freq, time]
    if tf.shape != (len(freqs), len(times)):
        raise ValueError(f"tf_map shape {tf.shape} does not match {len(freqs)} freqs x {len(times)} times")
    return times, freqs, tf


def explanation_png(expl: Any, title: str = "", threshold: float | None = None, width_px: int = 640,
                    dpi: int = 100) -> bytes:
    """Render ``expl`` (``times``, ``frame_scores``, ``freqs``, ``tf_map``) as PNG bytes.

    Uses matplotlib's object API with the Agg canvas (no pyplot state), so it is safe to call
    from the service's worker threads.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    times, freqs, tf = _tf_matrix(expl)
    frame_scores = np.asarray(expl.frame_scores, dtype=np.float64).ravel()
    fig = Figure(figsize=(width_px / dpi, 0.62 * width_px / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [1, 2.2]})
    t_ext = (float(times[0]), float(times[-1])) if len(times) > 1 else (0.0, 1.0)
    if len(frame_scores) == len(times):
        ax1.plot(times, frame_scores, color="#1f77b4", lw=1.2)
    else:  # curve on its own frame grid: spread it over the same span
        ax1.plot(np.linspace(*t_ext, num=len(frame_scores)), frame_scores, color="#1f77b4", lw=1.2)
    ax1.set_ylabel("frame score")
    if title:
        ax1.set_title(title, fontsize=10)
    f_ext = (float(freqs[0]), float(freqs[-1])) if len(freqs) > 1 else (0.0, 1.0)
    im = ax2.imshow(tf, origin="lower", aspect="auto", cmap="magma",
                    extent=(t_ext[0], t_ext[1], f_ext[0], f_ext[1]), interpolation="nearest")
    ax2.set_xlabel("time [s]")
    ax2.set_ylabel("frequency [Hz]")
    fig.colorbar(im, ax=[ax1, ax2], fraction=0.04, pad=0.02, label="anomaly")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
