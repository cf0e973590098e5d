"""Gearbox: gear mesh modulated by both shafts, transmission error, casing resonances."""

from __future__ import annotations

import numpy as np

from .. import dsp
from ..base import AnomalyKind, Machine, Sound
from ._common import _k, clip_wobble, modes, order_coefs, pattern, rev_pulse, shaft_rate, structure, tol, tol_modes


class Gearbox(Machine):
    """Gearbox: gear-mesh frequency (teeth x shaft rate) and harmonics, sidebands at both shaft rates."""

    name = "gearbox"
    shift = "volt (motor voltage -> shaft speed): target runs faster"
    kinds = _k(
        AnomalyKind("tooth_damage", "cracked/chipped input-gear tooth: the mesh stiffness drops while it "
                    "is in mesh, amplitude- and phase-modulating the mesh harmonics once per input "
                    "revolution (sidebands at the input shaft rate) plus a weak impact (Randall 1982; "
                    "McFadden 1986)", "mid", level_db=0.0),
        AnomalyKind("wear", "worn flanks: profile deviations raise the mesh harmonics 2-4 relative to the "
                    "first, and the mesh turns noisy (broadband and random transmission error) "
                    "(Randall 1982)", "mid", level_db=14.0),
        AnomalyKind("misalignment", "shaft misalignment: the 2x input-shaft force grows and the load "
                    "shifts across the face twice per revolution, modulating the mesh at 2x", "mid",
                    level_db=24.0),
    )

    def sample_product(self, rng):
        z1 = int(rng.integers(17, 30))
        z2 = int(rng.integers(31, 54))
        while np.gcd(z1, z2) != 1:
            z2 += 1
        return {"z1": z1, "z2": z2, "mesh_amps": pattern(rng, [1.0, 0.35, 0.15, 0.07], 3.0),
                "shaft_amps": pattern(rng, [0.15, 0.1], 4.0), "mis0_db": float(rng.uniform(-32.0, -26.0)),
                "noise": float(rng.uniform(0.2, 0.4)),
                "casing": modes(rng, 3, 500.0, 4500.0, zeta=(0.01, 0.04), peak_db=(6.0, 15.0))}

    def unit_constants(self, rng, pr):
        # eccentricity and transmission error: each unit's own machining errors
        return {"z1": pr["z1"], "z2": pr["z2"], "speed_trim": float(rng.normal(0.0, 0.015)),
                "mesh_amps": pattern(rng, pr["mesh_amps"], 3.0),
                "ecc1": float(rng.uniform(0.01, 0.04)), "ecc2": float(rng.uniform(0.01, 0.04)),
                "te1": float(rng.uniform(0.01, 0.04)), "shaft_amps": pattern(rng, pr["shaft_amps"], 2.0),
                "mis0": float(10.0 ** ((pr["mis0_db"] + rng.normal(0.0, 6.0)) / 20.0)),
                "noise": tol(rng, pr["noise"], 0.1), "casing": tol_modes(rng, pr["casing"])}

    def sample_params(self, rng, unit, domain):
        volt = float(rng.choice([1.0, 1.5, 2.0] if domain != "target" else [2.5, 3.0]))
        return self.complete({"volt": volt, "wt": int(rng.choice([0, 50, 100, 150]))}, unit)

    def complete(self, p, unit):
        f1 = 10.0 * float(p["volt"]) * (1.0 + unit.get("speed_trim", 0.0))
        return {**p, "shaft1_hz": f1, "shaft2_hz": f1 * unit["z1"] / unit["z2"], "mesh_hz": f1 * unit["z1"],
                "attrs": [("volt", f"{float(p['volt']):.1f}"), ("wt", f"{int(p['wt'])}")]}

    def render(self, p, n, sr, rng, fault):
        u = p["unit"]
        f1 = p["shaft1_hz"]
        c1 = dsp.phase_of(shaft_rate(f1, n, sr, rng, jitter=0.006), sr, rng.uniform())
        c2 = c1 * u["z1"] / u["z2"] + rng.uniform()
        mesh_c = c1 * u["z1"]
        load = 0.6 + p["wt"] / 150.0
        ph = rng.uniform(0.0, 2 * np.pi, 8)
        mesh_amps = clip_wobble(rng, u["mesh_amps"], 0.8)
        te_noise = dsp.smooth_random(n, rng, int(n / sr * 60) + 2)  # random mesh-to-mesh variation
        mesh_noise = dsp.coloured_noise(n, sr, rng, -1.0, 300.0)
        noise = dsp.coloured_noise(n, sr, rng, -3.0, 200.0)
        tooth_at = rng.uniform()

        am = 1.0 + u["ecc1"] * np.sin(2 * np.pi * c1 + ph[0]) + u["ecc2"] * np.sin(2 * np.pi * c2 + ph[1])
        pm = u["te1"] * np.sin(2 * np.pi * c1 + ph[2])
        mis = u["mis0"]
        noise_gain, te_rand = 1.0, 0.02
        s_tooth, s_wear, s_mis = (self.severity(fault, k) for k in ("tooth_damage", "wear", "misalignment"))
        impact = None
        if s_tooth:
            g = fault.amount(1.0)
            # the damaged tooth and, through load sharing, its neighbours mesh softer (~2.5 pitches)
            pulse = rev_pulse(c1, 1.0 / u["z1"], tooth_at)
            am = am - 0.8 * g * pulse
            pm = pm + 1.0 * g * pulse
            impact = g * dsp.impulse_train(n, sr, dsp.events_at_rate(c1 - tooth_at, sr), 1.0)
        if s_wear:
            w = fault.grow(self.kinds["wear"].level_db)
            mesh_amps = mesh_amps * np.array([1.0, w, w, w])
            noise_gain = fault.grow(10.0)
            te_rand = 0.02 + 0.3 * fault.amount(1.0)
        if s_mis:
            mis = u["mis0"] * fault.grow(self.kinds["misalignment"].level_db)
            am = am + min(0.4, 0.5 * mis) * np.sin(4 * np.pi * c1 + ph[3])
        mesh = dsp.tones(mesh_c, order_coefs(mesh_amps, ph[4:8]), pm=pm + te_rand * te_noise) * am * load
        shafts = (dsp.tones(c1, order_coefs([u["shaft_amps"][0], mis], ph[:2]))
                  + dsp.tones(c2, order_coefs([u["shaft_amps"][1]], ph[2:3])))
        x = mesh + shafts + u["noise"] * load * noise_gain * mesh_noise + 0.3 * noise
        if impact is not None:  # the tooth's load change strikes the casing once per revolution
            x = x + impact * dsp.rms(mesh) * np.sqrt(sr / max(f1, 1.0)) * 0.3
        x = dsp.filtered(x, sr, structure(u["casing"], direct=1.0, radiation_hz=20.0))
        sound = Sound(x)
        gmf = p["mesh_hz"]
        if s_tooth:
            sound.band_hz = (gmf - 6 * f1, min(4 * gmf + 6 * f1, 0.49 * sr))
            sound.events_s = list(dsp.events_at_rate(c1 - tooth_at, sr))
        if s_wear:
            sound.band_hz = (1.5 * gmf, 0.49 * sr)  # harmonics 2-4 and the broadband mesh noise
        if s_mis:
            sound.band_hz = (0.8 * f1, min(2 * gmf + 3 * f1, 0.49 * sr))  # 2x and the mesh's 2x sidebands
        return sound
