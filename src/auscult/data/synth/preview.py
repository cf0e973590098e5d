"""Preview spectrograms: a normal clip and each anomaly kind (severity 1) per machine."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from .machines import MACHINES
from .render import get_machine, render_clip, unit_for


def render_previews(out_dir, machines: Optional[Iterable[str]] = None, seed: int = 0,
                    sample_rate: int = 16000, duration: float = 4.0, dpi: int = 60) -> list[Path]:
    """Write ``<out_dir>/<machine>.png`` (one row: normal + every kind) and return the paths.

    All panels of a machine share the unit, operating point and noise seed, so the differences
    between panels are the anomalies alone.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .difficulty import log_mel

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in machines or MACHINES:
        m = get_machine(name)
        unit = unit_for(name, "00", seed)
        panels = [None, *m.kinds]
        fig, axes = plt.subplots(1, len(panels), figsize=(2.8 * len(panels), 2.6), sharey=True)
        for ax, kind in zip(np.atleast_1d(axes), panels):
            x = render_clip(name, anomaly=kind, severity=1.0, seed=seed, unit=unit,
                            sample_rate=sample_rate, duration=duration)
            S = log_mel(x, sample_rate, n_fft=1024, hop=256, n_mels=96) * (10.0 / np.log(10.0))  # dB
            ax.imshow(S, origin="lower", aspect="auto", cmap="magma",
                      extent=(0, duration, 0, S.shape[0]), vmin=S.max() - 70, vmax=S.max())
            ax.set_title(kind or "normal", fontsize=9)
            ax.set_xlabel("s", fontsize=8)
            ax.tick_params(labelsize=7)
        np.atleast_1d(axes)[0].set_ylabel(f"{name}: mel bin", fontsize=8)
        fig.tight_layout()
        path = out / f"{name}.png"
        fig.savefig(path, dpi=dpi)
        plt.close(fig)
        paths.append(path)
    return paths
