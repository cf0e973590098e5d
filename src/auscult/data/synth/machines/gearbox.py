"""Gearbox: gear mesh with sidebands at both shaft rates."""

from __future__ import annotations

import numpy as np

from .. import dsp
from ..base import AnomalyKind, Machine, Rendered
from ._common import _k, _unit_rms


class Gearbox(Machine):
    """Gearbox: gear-mesh frequency (teeth x shaft rate) and harmonics, sidebands at both shaft rates."""

    name = "gearbox"
    shift = "volt (motor voltage -> shaft speed): target runs faster"
    kinds = _k(
        AnomalyKind("tooth_damage", "broken tooth: an impact once per input-shaft revolution and "
                    "strong mesh sidebands at the input shaft rate", "mid", level_db=-7.0),
        AnomalyKind("wear", "worn flanks: mesh harmonics 2-4 and mesh noise grow", "mid",
                    level_db=-7.0),
        AnomalyKind("misalignment", "shaft misalignment: the 2x input-shaft component grows", "low",
                    level_db=-5.0),
    )

    def sample_unit(self, rng):
        z1 = int(rng.integers(17, 30))
        z2 = int(rng.integers(31, 54))
        while np.gcd(z1, z2) != 1:
            z2 += 1
        return {"z1": z1, "z2": z2, "res_hz": float(rng.uniform(1800, 3200))}

    def sample_params(self, rng, unit, domain):
        volt = float(rng.choice([1.0, 1.5, 2.0] if domain != "target" else [2.5, 3.0]))
        return self.complete({"volt": volt, "wt": int(rng.choice([0, 50, 100, 150]))}, unit)

    def complete(self, p, unit):
        f1 = 10.0 * float(p["volt"])
        return {**p, "shaft1_hz": f1, "shaft2_hz": f1 * unit["z1"] / unit["z2"], "mesh_hz": f1 * unit["z1"],
                "attrs": [("volt", f"{float(p['volt']):.1f}"), ("wt", f"{int(p['wt'])}")]}

    def render(self, p, n, sr, rng, kind, severity):
        u = p["unit"]
        f1 = dsp.drifting_rate(p["shaft1_hz"], n, sr, rng, jitter=0.008)
        c1 = dsp.phase_of(f1, sr, rng.uniform())
        c2 = c1 * u["z1"] / u["z2"] + rng.uniform()
        mesh_c = c1 * u["z1"]
        load = 0.6 + p["wt"] / 150.0
        am = 1.0 + 0.08 * np.sin(2 * np.pi * c1) + 0.06 * np.sin(2 * np.pi * c2)
        mesh = dsp.harmonics(mesh_c, [1.0, 0.35, 0.15], rng) * am * load
        shafts = dsp.harmonics(c1, [0.15], rng) + dsp.harmonics(c2, [0.1], rng)
        noise = dsp.coloured_noise(n, sr, rng, -3.0, 200.0)
        base = mesh + shafts + 0.5 * noise
        r = dsp.rms(base)
        extra = np.zeros(n)
        out = Rendered(base, extra)
        gmf = p["mesh_hz"]
        g = self.gain(kind, "tooth_damage", severity)
        if g:
            t = dsp.events_at_rate(c1, sr)
            hit = dsp.ring(dsp.impulse_train(n, sr, t, 1.0), dsp.resonance_kernel(sr, u["res_hz"], 0.004))
            pulse = np.exp(-((c1 % 1.0) - 0.5) ** 2 / (2 * 0.03 ** 2))
            side = dsp.harmonics(mesh_c, [1.0], rng) * pulse * load
            extra += g * r * (0.5 * _unit_rms(hit) + _unit_rms(side))
            out.band_hz = (gmf - 5 * p["shaft1_hz"], 1.2 * u["res_hz"])
            out.events_s = list(t)
        g = self.gain(kind, "wear", severity)
        if g:
            w = dsp.harmonics(mesh_c, [0.0, 1.0, 0.8, 0.6], rng) + 0.5 * dsp.band_noise(
                n, sr, rng, 1.8 * gmf, 4.5 * gmf)
            extra += g * r * _unit_rms(w)
            out.band_hz = (1.8 * gmf, min(4.5 * gmf, 0.49 * sr))
        g = self.gain(kind, "misalignment", severity)
        if g:
            extra += g * r * _unit_rms(dsp.harmonics(c1, [0.3, 1.0], rng))
            out.band_hz = (0.8 * p["shaft1_hz"], 2.2 * p["shaft1_hz"])
        return out
