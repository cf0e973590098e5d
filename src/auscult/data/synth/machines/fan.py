"""Fan: blade pass, airflow turbulence, housing resonance."""

from __future__ import annotations

import numpy as np

from .. import dsp
from ..base import AnomalyKind, Machine, Rendered
from ._common import _k, _unit_rms, _window


class Fan(Machine):
    """Fan: blade-pass tone and harmonics (rpm/60 x blades), airflow turbulence, housing resonance."""

    name = "fan"
    shift = "spd (rotation speed, rpm): target runs faster"
    kinds = _k(
        AnomalyKind("imbalance", "mass imbalance: the 1x shaft-rate component grows and modulates "
                    "the blade pass", "low", level_db=-7.0),
        AnomalyKind("blade_damage", "chipped blade: one impact per revolution ringing the housing",
                    "mid", level_db=-9.0),
        AnomalyKind("rub", "bearing rub: an intermittent high-frequency squeal", "high",
                    level_db=-10.0, localised=True),
    )

    def sample_unit(self, rng):
        return {"blades": int(rng.choice([5, 6, 7, 9])), "housing_hz": float(rng.uniform(700, 1300)),
                "tilt_db_oct": float(rng.uniform(-4.5, -2.5)), "squeal_hz": float(rng.uniform(3500, 6000))}

    def sample_params(self, rng, unit, domain):
        rpm = int(rng.choice([1200, 1300, 1400, 1500] if domain != "target" else [1800, 1900]))
        return self.complete({"rpm": rpm, "mic": int(rng.integers(1, 3))}, unit)

    def complete(self, p, unit):
        rpm, mic = int(p["rpm"]), int(p["mic"])
        return {**p, "airflow": rpm / 1500.0, "attrs": [("spd", f"{rpm}"), ("mic", f"{mic}")]}

    def render(self, p, n, sr, rng, kind, severity):
        u = p["unit"]
        fs = dsp.drifting_rate(p["rpm"] / 60.0, n, sr, rng, jitter=0.01)
        cyc = dsp.phase_of(fs, sr, rng.uniform())
        amps = np.array([1.0, 0.5, 0.3, 0.15, 0.08, 0.04]) * rng.uniform(0.8, 1.2, 6)
        tone = dsp.harmonics(u["blades"] * cyc, amps, rng) + 0.05 * dsp.harmonics(cyc, [1.0], rng)
        turb = dsp.band_noise(n, sr, rng, 60, 7500, u["tilt_db_oct"])
        turb *= 1.0 + 0.2 * np.sin(2 * np.pi * u["blades"] * cyc)
        housing = dsp.band_noise(n, sr, rng, u["housing_hz"] * 0.9, u["housing_hz"] * 1.1)
        af = p["airflow"] ** 2
        base = 0.5 * tone + af * (1.2 * turb + 0.3 * housing)
        r = dsp.rms(base)
        extra = np.zeros(n)
        out = Rendered(base, extra)
        f0 = p["rpm"] / 60.0
        g = self.gain(kind, "imbalance", severity)
        if g:
            one_x = np.sin(2 * np.pi * cyc + rng.uniform(0, 2 * np.pi))
            extra += g * r * one_x / dsp.rms(one_x) + 0.5 * g * 0.5 * tone * one_x
            out.band_hz = (0.7 * f0, 1.3 * f0)
        g = self.gain(kind, "blade_damage", severity)
        if g:
            t = dsp.events_at_rate(cyc, sr)
            imp = dsp.impulse_train(n, sr, t, rng.uniform(0.8, 1.2, len(t)))
            hit = dsp.ring(imp, dsp.resonance_kernel(sr, u["housing_hz"], 0.006))
            extra += g * r * _unit_rms(hit)
            out.band_hz = (0.8 * u["housing_hz"], 1.2 * u["housing_hz"])
            out.events_s = list(t)
        g = self.gain(kind, "rub", severity)
        if g:
            on, off = _window(rng, n / sr, 0.25, 0.5)
            f_sq = dsp.drifting_rate(u["squeal_hz"], n, sr, rng, jitter=0.02, knots_per_s=3)
            sq = np.sin(2 * np.pi * dsp.phase_of(f_sq, sr)) * dsp.gate(n, sr, on, off)
            extra += g * r * sq / np.sqrt(0.5)
            out.onset_s, out.offset_s = on, off
            out.band_hz = (0.97 * u["squeal_hz"], 1.03 * u["squeal_hz"])
        return out
