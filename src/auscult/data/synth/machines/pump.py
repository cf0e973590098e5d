"""Pump: vane-pass pulsation, shaft orders, motor hum, flow noise, casing resonances."""

from __future__ import annotations

import numpy as np

from .. import dsp
from ..base import AnomalyKind, Machine, Sound
from ._common import _at_least_one, _k, clip_wobble, modes, pattern, shaft_rate, structure, tol, tol_modes


class Pump(Machine):
    """Pump: vane-pass pulsation (shaft rate x vanes), motor hum at twice mains, flow noise."""

    name = "pump"
    shift = "fct (factory): the target pump runs in another plant (background), same speeds"
    shift_factor = "background"
    kinds = _k(
        AnomalyKind("cavitation", "collapsing vapour bubbles: broadband bursts above 3 kHz, synchronised "
                    "with the vane passing, ringing the casing (Brennen 1995; Cudina 2003)", "high",
                    level_db=-8.0),
        AnomalyKind("clogging", "partial blockage of the impeller: the restricted passage raises the flow "
                    "velocity (flow noise louder and higher), flow turns unsteady, and the clogged "
                    "passage breaks the vane-pass symmetry (orders between the vane-pass harmonics)",
                    "mid", level_db=6.0),
        AnomalyKind("misalignment", "coupling misalignment: the 2x shaft force grows (and 1x a little); "
                    "the vane-pass tone is modulated twice per revolution (Piotrowski, Shaft Alignment "
                    "Handbook)", "low", level_db=24.0),
    )

    def sample_product(self, rng):
        return {"vanes": int(rng.choice([5, 6, 7])), "vpf_amps": pattern(rng, [1.0, 0.4, 0.2], 3.0),
                "imb0_db": float(rng.uniform(-28.0, -22.0)), "mis0_db": float(rng.uniform(-30.0, -24.0)),
                "hum_amps": pattern(rng, [0.3, 0.1, 0.05], 4.0),
                "flow_hz": float(rng.uniform(700, 1400)), "flow_oct": float(rng.uniform(0.9, 1.4)),
                "casing": modes(rng, 3, 300.0, 4500.0, zeta=(0.01, 0.04), peak_db=(6.0, 15.0))}

    def unit_constants(self, rng, pr):
        return {"vanes": pr["vanes"], "mains_hz": 50.0, "speed_trim": float(rng.normal(0.0, 0.015)),
                "vpf_amps": pattern(rng, pr["vpf_amps"], 3.0),
                "vane_dev": [float(v) for v in rng.normal(0.0, 0.04, 7)],
                "imb0": float(10.0 ** ((pr["imb0_db"] + rng.normal(0.0, 6.0)) / 20.0)),
                "mis0": float(10.0 ** ((pr["mis0_db"] + rng.normal(0.0, 6.0)) / 20.0)),
                "hum_amps": pattern(rng, pr["hum_amps"], 2.0),
                "flow_hz": tol(rng, pr["flow_hz"], 0.04), "flow_oct": tol(rng, pr["flow_oct"], 0.05),
                "casing": tol_modes(rng, pr["casing"])}

    def sample_params(self, rng, unit, domain):
        rpm = int(rng.choice([1400, 1500, 1600]))
        return self.complete({"rpm": rpm, "load": int(rng.integers(1, 4)), "fct": "B" if domain == "target" else "A"},
                             unit)

    def complete(self, p, unit):
        fct = str(p.get("fct", "A"))
        return {**p, "fct": fct, "shaft_hz": int(p["rpm"]) / 60.0 * (1.0 + unit.get("speed_trim", 0.0)),
                "attrs": [("spd", f"{int(p['rpm'])}"), ("load", f"{int(p['load'])}"), ("fct", fct)]}

    @staticmethod
    def _flow(white_spec, n, sr, center, width_oct):
        f = np.fft.rfftfreq(n, 1.0 / sr)
        lf = np.log2(np.maximum(f, 1.0) / center)
        x = np.fft.irfft(white_spec * np.exp(-0.5 * (lf / width_oct) ** 2), n)
        return x / (dsp.rms(x) + 1e-12)

    def render(self, p, n, sr, rng, fault):
        u = p["unit"]
        Z = int(u["vanes"])
        fr = p["shaft_hz"]
        cyc = dsp.phase_of(shaft_rate(fr, n, sr, rng, jitter=0.002), sr, rng.uniform())
        load = 0.7 + 0.15 * p["load"]
        vpf_amps = clip_wobble(rng, u["vpf_amps"], 0.8)
        ph = rng.uniform(0.0, 2 * np.pi, 6)
        hum = dsp.harmonics(np.arange(n) / sr * 2 * u["mains_hz"], clip_wobble(rng, u["hum_amps"], 0.5), rng)
        white = np.fft.rfft(rng.standard_normal(n))
        unsteady = dsp.smooth_random(n, rng, int(n / sr * 3) + 2)
        broad = dsp.coloured_noise(n, sr, rng, -3.0)

        a = 1.0 + np.asarray(u["vane_dev"][:Z])
        imb, mis, mod2 = u["imb0"], u["mis0"], 0.0
        flow_c, flow_gain, unsteady_depth = u["flow_hz"], 1.0, 0.2
        s_mis, s_clog = self.severity(fault, "misalignment"), self.severity(fault, "clogging")
        if s_mis:
            mis = u["mis0"] * fault.grow(self.kinds["misalignment"].level_db)
            imb = u["imb0"] * fault.grow(8.0)
            mod2 = min(0.5, 2.0 * mis)
        if s_clog:
            g = fault.amount(1.0)
            a[0] *= 1.0 + 1.5 * g                      # the clogged passage loads one vane
            flow_c = u["flow_hz"] * (1.0 + 0.5 * s_clog)  # faster flow through the restriction
            flow_gain = fault.grow(self.kinds["clogging"].level_db)
            unsteady_depth = 0.2 + 0.5 * g
        n_ord = 3 * Z + Z // 2
        k = np.arange(n_ord + 1)
        env = np.interp(k / Z, [0.0, 1.0, 2.0, 3.0, 4.0], [0.0, *vpf_amps, 0.0])
        theta = 2 * np.pi * np.arange(Z) / Z
        coef = env * (a[None, :] * np.exp(-1j * k[:, None] * theta[None, :])).sum(1) / Z
        coef = coef * load * np.exp(1j * np.interp(k / Z, [1, 2, 3], ph[:3]))
        coef[1] += imb * np.exp(1j * ph[3])
        coef[2] += mis * np.exp(1j * ph[4])
        coef[0] = 0.0
        puls = dsp.tones(cyc, coef) * (1.0 + mod2 * np.sin(4 * np.pi * cyc + ph[5]))
        flow = self._flow(white, n, sr, flow_c, u["flow_oct"]) * flow_gain
        flow *= (1.0 + unsteady_depth * unsteady) * (1.0 + 0.15 * np.sin(2 * np.pi * Z * cyc))
        x = 0.5 * puls + hum + load * flow + 0.3 * broad
        sound = Sound(x)
        if self.severity(fault, "cavitation"):
            r = fault.rng
            times = _at_least_one(dsp.poisson_times(n / sr, 12.0, r), n, sr, r)
            env_c = dsp.ring(dsp.impulse_train(n, sr, times, 1.0), np.exp(-np.arange(int(0.04 * sr)) / (0.012 * sr)))
            env_c *= 0.4 + 0.6 * np.sin(np.pi * Z * cyc) ** 2  # collapse as the pressure recovers behind a vane
            bubbles = dsp.band_noise(n, sr, r, 3000, 7800) * env_c
            sound.x = x + fault.amount(10.0 ** (self.kinds["cavitation"].level_db / 20.0)) * dsp.rms(x) * \
                bubbles / (dsp.rms(bubbles) + 1e-12)
            sound.band_hz = (3000.0, 7800.0)
        sound.x = dsp.filtered(sound.x, sr, structure(u["casing"], direct=1.0, radiation_hz=30.0))
        if s_mis:
            sound.band_hz = (0.8 * fr, Z * fr + 2.5 * fr)  # 2x, 1x and the vane-pass sidebands at 2x
        if s_clog:
            sound.band_hz = (u["flow_hz"] / 2 ** (1.8 * u["flow_oct"]),
                             min(flow_c * 2 ** (1.8 * u["flow_oct"]), 0.49 * sr))
        return sound
