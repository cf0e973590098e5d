"""Rolling bearing: impacts at the textbook fault frequencies."""

from __future__ import annotations

import numpy as np

from .. import dsp
from ..base import AnomalyKind, Machine, Rendered
from ._common import _k, _unit_rms


def bearing_frequencies(shaft_hz: float, n_balls: int, d_over_D: float, contact_deg: float) -> dict:
    """Textbook rolling-element fault frequencies (Hz) for a stationary outer race."""
    c = d_over_D * np.cos(np.radians(contact_deg))
    return {
        "bpfo": n_balls / 2.0 * shaft_hz * (1 - c),
        "bpfi": n_balls / 2.0 * shaft_hz * (1 + c),
        "bsf": shaft_hz / (2.0 * d_over_D) * (1 - c ** 2),
        "ftf": shaft_hz / 2.0 * (1 - c),
    }


class Bearing(Machine):
    """Rolling bearing: smooth rolling noise and micro-impacts ringing a structural resonance."""

    name = "bearing"
    shift = "vel (shaft speed, rps): target runs faster"
    kinds = _k(
        AnomalyKind("outer_race", "outer-race spall: impacts at BPFO, constant amplitude", "high",
                    level_db=-6.0),
        AnomalyKind("inner_race", "inner-race spall: impacts at BPFI, amplitude-modulated at 1x",
                    "high", level_db=-6.0),
        AnomalyKind("ball", "rolling-element defect: impacts at 2x BSF, modulated at the cage rate",
                    "high", level_db=-6.0),
        AnomalyKind("imbalance", "rotor imbalance: the 1x shaft-rate component grows", "low",
                    level_db=-4.0),
    )

    def sample_unit(self, rng):
        return {"n_balls": int(rng.integers(8, 13)), "d_over_D": float(rng.uniform(0.15, 0.3)),
                "contact_deg": float(rng.uniform(0.0, 15.0)), "res_hz": float(rng.uniform(2800, 4500))}

    def sample_params(self, rng, unit, domain):
        vel = int(rng.choice([8, 10, 12, 14] if domain != "target" else [18, 20, 22]))
        return self.complete({"vel": vel, "loc": str(rng.choice(["A", "B"]))}, unit)

    def complete(self, p, unit):
        freqs = bearing_frequencies(float(p["vel"]), unit["n_balls"], unit["d_over_D"], unit["contact_deg"])
        return {**p, **{k: round(v, 3) for k, v in freqs.items()},
                "attrs": [("vel", f"{int(p['vel'])}"), ("loc", p["loc"])]}

    def _impacts(self, n, sr, rng, rate_hz, mod, kern):
        cyc = dsp.phase_of(dsp.drifting_rate(rate_hz, n, sr, rng, jitter=0.01, knots_per_s=2), sr,
                           rng.uniform())
        t = dsp.events_at_rate(cyc, sr)
        t = t + rng.normal(0.0, 0.0003, len(t))  # slip
        return dsp.ring(dsp.impulse_train(n, sr, t, mod(t) * rng.uniform(0.9, 1.1, len(t))), kern)

    def render(self, p, n, sr, rng, kind, severity):
        u = p["unit"]
        fr = float(p["vel"])
        res = u["res_hz"] * (1.0 if p["loc"] == "A" else 1.12)
        kern = dsp.resonance_kernel(sr, res, 0.0012)
        shaft = dsp.phase_of(dsp.drifting_rate(fr, n, sr, rng, jitter=0.005), sr, rng.uniform())
        rot = dsp.harmonics(shaft, [0.1, 0.05, 0.03], rng)
        rolling = dsp.band_noise(n, sr, rng, 400, 7500, -3.0)
        rough_t = dsp.poisson_times(n / sr, 300.0, rng)
        rough = dsp.ring(dsp.impulse_train(n, sr, rough_t, rng.exponential(1.0, len(rough_t))), kern)
        motor = dsp.harmonics(np.arange(n) / sr * 100.0, [0.2, 0.05], rng)
        base = rot + rolling + 0.6 * _unit_rms(rough) + motor
        r = dsp.rms(base)
        extra = np.zeros(n)
        out = Rendered(base, extra)
        for name, rate, mod in (
            ("outer_race", p["bpfo"], lambda t: np.ones_like(t)),
            ("inner_race", p["bpfi"], lambda t: 0.6 + 0.4 * np.cos(2 * np.pi * fr * t)),
            ("ball", 2 * p["bsf"], lambda t: 0.6 + 0.4 * np.cos(2 * np.pi * p["ftf"] * t)),
        ):
            g = self.gain(kind, name, severity)
            if g:
                extra += g * r * _unit_rms(self._impacts(n, sr, rng, rate, mod, kern))
                out.band_hz = (0.8 * res, 1.2 * res)
        g = self.gain(kind, "imbalance", severity)
        if g:
            extra += g * r * _unit_rms(dsp.harmonics(shaft, [1.0], rng))
            out.band_hz = (0.8 * fr, 1.2 * fr)
        return out
