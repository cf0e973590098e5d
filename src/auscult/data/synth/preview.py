"""Preview pictures: per machine, a normal clip and each fault (severity 1), and each fault's mechanism.

Top row: log-mel spectrograms of the recorded clips (with the factory background). Bottom row: the
mechanism of each fault, drawn from the machine alone (no background) so that it is visible -- a
zoomed spectrum (e.g. the sidebands at the shaft rate around a damaged gearbox's mesh frequency) or
an envelope spectrum (e.g. a spalled bearing's impacts at BPFO, demodulated from the resonance the
healthy bearing already rings), healthy in grey and faulty in colour, with the characteristic
frequencies marked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from .machines import MACHINES
from .render import get_machine, render_clip


def mechanism_view(machine: str, kind: str, params: dict, unit: dict, band_hz) -> dict:
    """How to show ``kind``'s mechanism: ``{"type": "spectrum"|"envelope", "lo", "hi", "marks",
    "label"}`` (``envelope``: demodulate ``band`` and show the envelope spectrum up to ``hi``)."""
    lo, hi = band_hz if band_hz else (0.0, 8000.0)
    view = {"type": "spectrum", "lo": lo, "hi": hi, "marks": [], "label": "spectrum of the fault's band"}
    if machine == "gearbox":
        f1, gmf = params["shaft1_hz"], params["mesh_hz"]
        if kind == "tooth_damage":
            view.update(lo=gmf - 8 * f1, hi=gmf + 8 * f1, marks=[gmf + k * f1 for k in range(-7, 8)],
                        label="mesh ± k x input shaft: sidebands")
        elif kind == "wear":
            view.update(lo=0.5 * gmf, hi=4.5 * gmf, marks=[k * gmf for k in range(1, 5)], label="mesh harmonics")
        else:
            view.update(lo=0.0, hi=gmf + 4 * f1, marks=[f1, 2 * f1, gmf - 2 * f1, gmf + 2 * f1], label="1x, 2x, mesh ± 2x")
    elif machine == "bearing" and kind != "imbalance":
        rate = {"outer_race": params["bpfo"], "inner_race": params["bpfi"], "ball": 2 * params["bsf"]}[kind]
        view.update(type="envelope", band=(lo, hi), lo=0.0, hi=3.5 * rate, marks=[rate, 2 * rate, 3 * rate],
                    label=f"envelope of {lo / 1000:.1f}-{hi / 1000:.1f} kHz (housing modes)")
    elif machine == "bearing":
        fr = float(params["vel"])
        view.update(lo=0.0, hi=4 * fr, marks=[fr], label="1x")
    elif machine == "fan" and kind in ("imbalance", "blade_damage"):
        fr, B = params["shaft_hz"], int(unit["blades"])
        top = (B + 2) * fr if kind == "imbalance" else 2.5 * B * fr
        view.update(lo=0.0, hi=top, marks=[k * fr for k in range(1, int(top / fr) + 1)], label="shaft orders")
    elif machine == "pump" and kind == "misalignment":
        fr, Z = params["shaft_hz"], int(unit["vanes"])
        view.update(lo=0.0, hi=(Z + 3) * fr, marks=[fr, 2 * fr, Z * fr - 2 * fr, Z * fr + 2 * fr], label="1x, 2x, vane pass ± 2x")
    elif machine == "ToyCar" and kind == "gear_chip":
        fm, z = params["motor_hz"], int(unit["teeth"])
        view.update(lo=z * fm - 6 * fm, hi=z * fm + 6 * fm, marks=[(z + k) * fm for k in range(-5, 6)],
                    label="gear mesh ± k x motor: sidebands")
    elif machine == "slider" and kind == "loose_belt":
        top = unit["whine_hz"] + unit["whine_span"] * (1 + unit["speed_trim"])
        view.update(lo=0.6 * top, hi=1.2 * top, marks=[top], label="whine at top speed (smeared by slip)")
    return view


def _plot_view(ax, view, normal: np.ndarray, faulty: np.ndarray, sr: int) -> None:
    from scipy.signal import butter, hilbert, sosfiltfilt, welch

    def spec(x):
        if view["type"] == "envelope":
            lo, hi = view["band"]
            sos = butter(4, [max(lo, 20.0), min(hi, 0.49 * sr)], btype="band", fs=sr, output="sos")
            x = np.abs(hilbert(sosfiltfilt(sos, x)))
            x = x - x.mean()
        nper = min(len(x), 1 << int(np.ceil(np.log2(max(sr / max((view["hi"] - view["lo"]) / 200, 0.25), 256)))))
        f, p = welch(x, sr, nperseg=nper)
        return f, 10 * np.log10(p + 1e-20)

    f, pn = spec(normal.astype(np.float64))
    _, pf = spec(faulty.astype(np.float64))
    sel = (f >= view["lo"]) & (f <= view["hi"])
    ax.plot(f[sel], pn[sel], color="0.6", lw=0.8, label="healthy")
    ax.plot(f[sel], pf[sel], color="C3", lw=0.8, label="faulty")
    for m in view["marks"]:
        if view["lo"] <= m <= view["hi"]:
            ax.axvline(m, color="C0", lw=0.5, ls=":", alpha=0.8)
    ax.set_xlim(view["lo"], view["hi"])
    top = max(pn[sel].max(), pf[sel].max()) if sel.any() else 0.0
    ax.set_ylim(top - 60, top + 5)
    ax.set_xlabel("Hz" + (" (envelope)" if view["type"] == "envelope" else ""), fontsize=7)
    ax.set_title(view["label"], fontsize=7)
    ax.tick_params(labelsize=6)


def render_previews(out_dir, machines: Optional[Iterable[str]] = None, seed: int = 0,
                    sample_rate: int = 16000, duration: float = 4.0, dpi: int = 60) -> list[Path]:
    """Write ``<out_dir>/<machine>.png`` and return the paths (see the module docstring).

    All panels of a machine share the unit, operating point and noise seed, so the differences
    between panels are the faults alone. ``machines`` may name the DCASE 2026 types that the
    simulator renders through an alias (``ToyCarEmu``, ``bearingEmu``, ... ->
    :data:`~auscult.data.synth.writer.MACHINE_ALIASES`): drawn by their model with the unit the
    dataset writer gives that type, titled and saved under the type's own name. An unknown name is
    a :class:`~auscult.errors.ConfigError`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .difficulty import log_mel

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    from .writer import machine_model, machine_unit

    for name in machines or MACHINES:
        model = machine_model(name)  # ConfigError for a type the simulator cannot render
        m = get_machine(model)
        unit = machine_unit(name, "00", seed)  # = unit_for(name, "00", seed) for a model's own name
        panels = [None, *m.kinds]
        fig, axes = plt.subplots(2, len(panels), figsize=(2.8 * len(panels), 4.8),
                                 gridspec_kw={"height_ratios": [1.2, 1.0]})
        kw = dict(seed=seed, unit=unit, sample_rate=sample_rate, duration=duration)
        clean = render_clip(model, background=False, **kw)
        for j, kind in enumerate(panels):
            ax = axes[0, j]
            x = render_clip(model, anomaly=kind, severity=1.0, **kw)
            S = log_mel(x, sample_rate, n_fft=1024, hop=256, n_mels=96) * (10.0 / np.log(10.0))  # dB
            ax.imshow(S, origin="lower", aspect="auto", cmap="magma",
                      extent=(0, duration, 0, S.shape[0]), vmin=S.max() - 70, vmax=S.max())
            ax.set_title(kind or "normal", fontsize=9)
            ax.set_xlabel("s", fontsize=8)
            ax.tick_params(labelsize=7)
            ax2 = axes[1, j]
            if kind is None:
                from scipy.signal import welch

                f, p = welch(clean.astype(np.float64), sample_rate, nperseg=2048)
                ax2.semilogx(f[1:], 10 * np.log10(p[1:] + 1e-20), color="0.3", lw=0.8)
                ax2.set_title("healthy machine, no background", fontsize=7)
                ax2.set_xlabel("Hz", fontsize=7)
                ax2.tick_params(labelsize=6)
                continue
            faulty, info = render_clip(model, anomaly=kind, severity=1.0, background=False, return_info=True, **kw)
            _plot_view(ax2, mechanism_view(model, kind, info.params, unit, info.band_hz), clean, faulty, sample_rate)
        axes[0, 0].set_ylabel(f"{name}: mel bin", fontsize=8)
        axes[1, 0].set_ylabel("dB", fontsize=8)
        axes[1, 1].legend(fontsize=6, loc="lower left")
        fig.tight_layout()
        path = out / f"{name}.png"
        fig.savefig(path, dpi=dpi)
        plt.close(fig)
        paths.append(path)
    return paths
