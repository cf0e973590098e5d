"""Pump: vane-pass pulsation, motor hum, flow noise."""

from __future__ import annotations

import numpy as np

from .. import dsp
from ..base import AnomalyKind, Machine, Rendered
from ._common import _k, _unit_rms


class Pump(Machine):
    """Pump: vane-pass pulsation (shaft rate x vanes), motor hum at twice mains, flow noise."""

    name = "pump"
    shift = "spd (shaft speed, rpm): target runs faster"
    kinds = _k(
        AnomalyKind("cavitation", "collapsing vapour bubbles: bursty noise above 3 kHz", "high",
                    level_db=-8.0),
        AnomalyKind("clogging", "partial blockage: flow noise shifts up in frequency", "mid",
                    level_db=0.0),
        AnomalyKind("misalignment", "shaft misalignment: the 2x shaft-rate component grows", "low",
                    level_db=-7.0),
    )

    def sample_unit(self, rng):
        return {"vanes": int(rng.choice([5, 6, 7])), "mains_hz": 50.0,
                "flow_hz": float(rng.uniform(700, 1400))}

    def sample_params(self, rng, unit, domain):
        rpm = int(rng.choice([1400, 1500, 1600] if domain != "target" else [1900, 2000]))
        return self.complete({"rpm": rpm, "load": int(rng.integers(1, 4))}, unit)

    def complete(self, p, unit):
        return {**p, "attrs": [("spd", f"{int(p['rpm'])}"), ("load", f"{int(p['load'])}")]}

    def _flow(self, white_spec, n, sr, center, width_oct=1.2):
        f = np.fft.rfftfreq(n, 1.0 / sr)
        lf = np.log2(np.maximum(f, 1.0) / center)
        x = np.fft.irfft(white_spec * np.exp(-0.5 * (lf / width_oct) ** 2), n)
        return x / (dsp.rms(x) + 1e-12)

    def render(self, p, n, sr, rng, kind, severity):
        u = p["unit"]
        fs = dsp.drifting_rate(p["rpm"] / 60.0, n, sr, rng, jitter=0.006)
        cyc = dsp.phase_of(fs, sr, rng.uniform())
        load = 0.7 + 0.15 * p["load"]
        puls = dsp.harmonics(u["vanes"] * cyc, [1.0, 0.4, 0.2], rng) * load
        hum = dsp.harmonics(np.arange(n) / sr * 2 * u["mains_hz"], [0.3, 0.1, 0.05], rng)
        white = np.fft.rfft(rng.standard_normal(n))
        flow = self._flow(white, n, sr, u["flow_hz"]) * (1.0 + 0.3 * dsp.smooth_random(n, rng, 6))
        broad = dsp.coloured_noise(n, sr, rng, -3.0)
        base = 0.5 * puls + hum + 1.0 * load * flow + 0.3 * broad
        r = dsp.rms(base)
        extra = np.zeros(n)
        out = Rendered(base, extra)
        f0 = p["rpm"] / 60.0
        g = self.gain(kind, "cavitation", severity)
        if g:
            bursts = dsp.impulse_train(n, sr, dsp.poisson_times(n / sr, 12.0, rng), 1.0)
            env = dsp.ring(bursts, np.exp(-np.arange(int(0.04 * sr)) / (0.012 * sr)))
            env *= 0.6 + 0.4 * np.sin(2 * np.pi * u["vanes"] * cyc) ** 2
            extra += g * r * _unit_rms(dsp.band_noise(n, sr, rng, 3000, 7500) * env)
            out.band_hz = (3000.0, 7500.0)
        if kind == "clogging":
            shift = 1.0 + 0.5 * severity
            clog = self._flow(white, n, sr, u["flow_hz"] * shift, 1.0)
            extra += r * load * (clog - flow) * (0.2 + 0.5 * severity)
            # the difference removes flow energy around flow_hz and adds it higher up
            out.band_hz = (u["flow_hz"] / 2 ** 1.8, min(u["flow_hz"] * shift * 2 ** 1.8, 0.49 * sr))
        g = self.gain(kind, "misalignment", severity)
        if g:
            mis = dsp.harmonics(cyc, [0.4, 1.0], rng)
            extra += g * r * _unit_rms(mis)
            out.band_hz = (0.8 * f0, 2.2 * f0)
        return out
