"""Rolling bearing: rolling noise and micro-impacts ringing the housing's resonances; defects add
impacts at the textbook fault frequencies that ring the same resonances."""

from __future__ import annotations

import numpy as np

from .. import dsp
from ..base import AnomalyKind, Machine, Sound
from ._common import _k, _unit_rms, clip_wobble, modes, order_coefs, pattern, shaft_rate, structure, tol, tol_modes


def bearing_frequencies(shaft_hz: float, n_balls: int, d_over_D: float, contact_deg: float) -> dict:
    """Textbook rolling-element fault frequencies (Hz) for a stationary outer race."""
    c = d_over_D * np.cos(np.radians(contact_deg))
    return {
        "bpfo": n_balls / 2.0 * shaft_hz * (1 - c),
        "bpfi": n_balls / 2.0 * shaft_hz * (1 + c),
        "bsf": shaft_hz / (2.0 * d_over_D) * (1 - c ** 2),
        "ftf": shaft_hz / 2.0 * (1 - c),
    }


#: geometry variants of the product line (balls, ball/pitch diameter ratio, contact angle)
_GEOMETRIES = [(8, 0.23, 0.0), (9, 0.21, 0.0), (10, 0.19, 8.0), (12, 0.16, 15.0)]


class Bearing(Machine):
    """Rolling bearing: rolling noise and micro-impacts ringing the housing's structural resonances."""

    name = "bearing"
    shift = "vel (shaft speed, rps): target runs faster"
    kinds = _k(
        AnomalyKind("outer_race", "outer-race spall: an impact each time a ball passes it (BPFO, constant "
                    "amplitude, 1-2 % slip), ringing the housing resonances (McFadden & Smith 1984; "
                    "Randall & Antoni 2011)", "high", level_db=6.0),
        AnomalyKind("inner_race", "inner-race spall: impacts at BPFI, amplitude-modulated at 1x as the "
                    "spall turns through the load zone (Randall & Antoni 2011)", "high", level_db=6.0),
        AnomalyKind("ball", "rolling-element spall: impacts at 2x BSF (it strikes both races), modulated "
                    "at the cage rate FTF (Randall & Antoni 2011)", "high", level_db=6.0),
        AnomalyKind("imbalance", "rotor imbalance: the 1x force grows and modulates the bearing load (and "
                    "with it the rolling noise) at 1x", "low", level_db=26.0),
    )

    def sample_product(self, rng):
        nb, dD, ca = _GEOMETRIES[int(rng.integers(0, len(_GEOMETRIES)))]
        return {"n_balls": nb, "d_over_D": dD, "contact_deg": ca,
                "housing": modes(rng, 3, 3000.0, 7200.0, zeta=(0.01, 0.03), peak_db=(12.0, 24.0)),
                "loc_b_gain": [float(v) for v in rng.uniform(0.3, 2.0, 3)],
                "rough_rate": float(rng.uniform(200.0, 500.0)), "rough": float(rng.uniform(0.4, 0.9)),
                "shaft_amps": pattern(rng, [1.0, 0.5, 0.3], 4.0), "imb0_db": float(rng.uniform(-28.0, -22.0)),
                "hum": pattern(rng, [0.2, 0.05], 4.0)}

    def unit_constants(self, rng, pr):
        return {"n_balls": pr["n_balls"], "d_over_D": tol(rng, pr["d_over_D"], 0.005),
                "contact_deg": pr["contact_deg"], "housing": tol_modes(rng, pr["housing"]),
                "loc_b_gain": [tol(rng, g, 0.15) for g in pr["loc_b_gain"]],
                "rough_rate": tol(rng, pr["rough_rate"], 0.15), "rough": tol(rng, pr["rough"], 0.1),
                "shaft_amps": pattern(rng, pr["shaft_amps"], 2.0),
                "imb0": float(10.0 ** ((pr["imb0_db"] + rng.normal(0.0, 6.0)) / 20.0)),
                "hum": pattern(rng, pr["hum"], 2.0)}

    def sample_params(self, rng, unit, domain):
        vel = int(rng.choice([8, 10, 12, 14] if domain != "target" else [18, 20, 22]))
        return self.complete({"vel": vel, "loc": str(rng.choice(["A", "B"]))}, unit)

    def complete(self, p, unit):
        freqs = bearing_frequencies(float(p["vel"]), unit["n_balls"], unit["d_over_D"], unit["contact_deg"])
        return {**p, **{k: round(v, 3) for k, v in freqs.items()},
                "attrs": [("vel", f"{int(p['vel'])}"), ("loc", p["loc"])]}

    @staticmethod
    def _impacts(n, sr, rng, shaft, order, mod):
        """Impulses at ``order`` x the shaft's (drifting) rotation with 1-2 % random slip of each
        impact, scaled by ``mod(shaft cycles at the impact)``."""
        t = dsp.events_at_rate(shaft * order + rng.uniform(), sr)
        t = t + rng.normal(0.0, 0.015 / (order * (shaft[-1] - shaft[0]) / (n / sr) + 1e-9), len(t))  # slip
        at = np.interp(t, np.arange(n) / sr, shaft)
        return dsp.impulse_train(n, sr, t, mod(at) * rng.uniform(0.85, 1.15, len(t))), t

    def render(self, p, n, sr, rng, fault):
        u = p["unit"]
        fr = float(p["vel"])
        shaft = dsp.phase_of(shaft_rate(fr, n, sr, rng, jitter=0.004), sr, rng.uniform())
        ph = rng.uniform(0.0, 2 * np.pi, 4)
        shaft_amps = clip_wobble(rng, u["shaft_amps"], 1.0) * 0.1
        rolling = dsp.band_noise(n, sr, rng, 300, 7800, -2.0)
        rough_t = dsp.poisson_times(n / sr, u["rough_rate"], rng)
        rough = dsp.impulse_train(n, sr, rough_t, rng.exponential(1.0, len(rough_t)))
        motor = dsp.harmonics(np.arange(n) / sr * 100.0, u["hum"], rng)

        imb = u["imb0"]
        if self.severity(fault, "imbalance"):
            imb = u["imb0"] * fault.grow(self.kinds["imbalance"].level_db)
        load_mod = 1.0 + min(0.3, 0.5 * imb) * np.sin(2 * np.pi * shaft + ph[3])
        amps = shaft_amps.copy()
        amps[0] = amps[0] + imb
        rot = dsp.tones(shaft, order_coefs(amps, ph[:3]))
        rough = _unit_rms(rough) * u["rough"]
        force = rolling * load_mod + rough * load_mod
        sound = Sound(np.zeros(n))
        cage = p["ftf"] / fr
        for name, rate, mod in (  # mod: amplitude as a function of the shaft's angle (cycles)
            ("outer_race", p["bpfo"], lambda c: np.ones_like(c)),
            ("inner_race", p["bpfi"], lambda c: 0.65 + 0.35 * np.cos(2 * np.pi * c)),  # through the load zone
            ("ball", 2 * p["bsf"], lambda c: 0.65 + 0.35 * np.cos(2 * np.pi * cage * c)),  # with the cage
        ):
            if self.severity(fault, name):
                imp, t = self._impacts(n, sr, fault.rng, shaft, rate / fr, mod)
                # the spall's impacts relative to the healthy micro-impacts (same structure after)
                force = force + fault.amount(10.0 ** (self.kinds[name].level_db / 20.0)) * dsp.rms(rough) * \
                    _unit_rms(imp)
                sound.events_s = list(t[(t >= 0) & (t < n / sr)])
        housing = [list(m) for m in u["housing"]]
        if p["loc"] == "B":  # the other sensor position sees the modes with other weights
            housing = [[f, z, g * w] for (f, z, g), w in zip(housing, u["loc_b_gain"])]
        x = dsp.filtered(force, sr, structure(housing, direct=0.5, radiation_hz=200.0))
        sound.x = x + rot + motor
        if any(self.severity(fault, k) for k in ("outer_race", "inner_race", "ball")):
            fs = [m[0] for m in housing]
            sound.band_hz = (0.85 * min(fs), min(1.15 * max(fs), 0.49 * sr))
        if self.severity(fault, "imbalance"):
            sound.band_hz = (0.8 * fr, 1.2 * fr)
        return sound
