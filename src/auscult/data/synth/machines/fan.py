"""Fan: blade-pass pressure field, airflow turbulence, the housing's resonances."""

from __future__ import annotations

import numpy as np

from .. import dsp
from ..base import AnomalyKind, Machine, Sound
from ._common import _k, _window, clip_wobble, modes, pattern, shaft_rate, structure, tol, tol_modes


class Fan(Machine):
    """Fan: blade-pass tone and harmonics (shaft rate x blades), airflow turbulence, housing resonances."""

    name = "fan"
    shift = "fct (factory): the target fan runs in another hall (background), same speeds"
    shift_factor = "background"
    kinds = _k(
        AnomalyKind("imbalance", "mass imbalance: the 1x force grows with the unbalance and the rotor's "
                    "whirl modulates the blade-pass tone at 1x (tip clearance) (ISO 21940; Randall 2011, "
                    "ch. 1)", "low", level_db=26.0),
        AnomalyKind("blade_damage", "chipped or bent blade: one blade pushes less air and sits off its "
                    "pitch, breaking the B-fold symmetry: shaft orders between the blade-pass harmonics "
                    "appear, plus the 1x of the lost mass; the blade, off its design incidence, runs "
                    "separated, and its broadband self-noise (one of the B blades' share of the rotor's "
                    "flow noise) rises by up to 10 dB, swishing at 1x as it rotates (separation-stall "
                    "noise, Brooks, Pope & Marcolini 1989, NASA RP-1218)", "mid", level_db=10.0),
        AnomalyKind("rub", "rotor rub: an intermittent friction squeal (stick-slip) at a high housing "
                    "mode", "high", level_db=-10.0, localised=True),
    )

    def sample_product(self, rng):
        return {"blades": int(rng.choice([5, 6, 7])), "bpf_amps": pattern(rng, [1.0, 0.45, 0.22, 0.1], 3.0),
                "imb0_db": float(rng.uniform(-28.0, -20.0)),
                "housing": modes(rng, 3, 350.0, 3500.0, zeta=(0.01, 0.04), peak_db=(6.0, 15.0)),
                "tilt_db_oct": float(rng.uniform(-4.5, -2.5)), "aero": float(rng.uniform(0.6, 1.2)),
                "squeal_hz": float(rng.uniform(3500, 6000))}

    def unit_constants(self, rng, pr):
        return {"blades": pr["blades"], "speed_trim": float(rng.normal(0.0, 0.015)),
                "bpf_amps": pattern(rng, pr["bpf_amps"], 3.0),
                "blade_dev": [float(v) for v in rng.normal(0.0, 0.04, 9)],
                "pitch_dev": [float(v) for v in rng.normal(0.0, 0.012, 9)],
                "imb0": float(10.0 ** ((pr["imb0_db"] + rng.normal(0.0, 6.0)) / 20.0)),
                "housing": tol_modes(rng, pr["housing"]),
                "tilt_db_oct": float(pr["tilt_db_oct"] + rng.normal(0.0, 0.3)), "aero": tol(rng, pr["aero"], 0.08),
                "squeal_hz": tol(rng, pr["squeal_hz"], 0.03)}

    def sample_params(self, rng, unit, domain):
        rpm = int(rng.choice([1200, 1300, 1400, 1500]))
        return self.complete({"rpm": rpm, "mic": int(rng.integers(1, 3)), "fct": "B" if domain == "target" else "A"},
                             unit)

    def complete(self, p, unit):
        rpm, mic, fct = int(p["rpm"]), int(p["mic"]), str(p.get("fct", "A"))
        return {**p, "fct": fct, "airflow": rpm / 1500.0, "shaft_hz": rpm / 60.0 * (1.0 + unit.get("speed_trim", 0.0)),
                "attrs": [("spd", f"{rpm}"), ("mic", f"{mic}"), ("fct", fct)]}

    def render(self, p, n, sr, rng, fault):
        u = p["unit"]
        B = int(u["blades"])
        fr = p["shaft_hz"]
        cyc = dsp.phase_of(shaft_rate(fr, n, sr, rng, jitter=0.002), sr, rng.uniform())
        bpf_amps = clip_wobble(rng, u["bpf_amps"], 0.8)
        ph = rng.uniform(0.0, 2 * np.pi, 4)
        imb_phase = rng.uniform(0.0, 2 * np.pi)
        turb = dsp.band_noise(n, sr, rng, 60, 7500, u["tilt_db_oct"])
        # blade strengths and positions; the damaged blade is blade 0
        a = 1.0 + np.asarray(u["blade_dev"][:B])
        d = np.asarray(u["pitch_dev"][:B]).copy()
        s_blade = self.severity(fault, "blade_damage")
        imb = u["imb0"] * fault.grow(self.kinds["imbalance"].level_db) if self.severity(fault, "imbalance") else u["imb0"]
        if s_blade:
            g = fault.amount(1.0)
            a[0] *= 1.0 - 0.9 * g    # the chipped blade pushes less air
            d[0] += 0.2 * g          # and is bent off its pitch (~11 degrees at severity 1)
            imb = u["imb0"] + 0.25 * g  # the chip's lost mass unbalances the rotor
        # the blade-pass pressure is periodic in the shaft angle: order k's amplitude is the pulse
        # envelope at k/B times the blades' phasor sum (only multiples of B survive for equal blades)
        n_ord = 4 * B + B // 2
        k = np.arange(n_ord + 1)
        env = np.interp(k / B, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0], [0.0, *bpf_amps, 0.0])
        theta = 2 * np.pi * np.arange(B) / B + d
        blade_sum = (a[None, :] * np.exp(-1j * k[:, None] * theta[None, :])).sum(1) / B
        coef = env * blade_sum * np.exp(1j * np.interp(k / B, [1, 2, 3, 4], ph))
        coef[1] += imb * np.exp(1j * imb_phase)  # the 1x force of the unbalance
        coef[0] = 0.0
        tone = dsp.tones(cyc, coef)
        whirl = np.sin(2 * np.pi * cyc + imb_phase)  # the rotor's whirl: clearance and inflow vary at 1x
        depth = min(0.6, 0.5 * imb)
        af = p["airflow"] ** 2
        turb = turb * (1.0 + 0.2 * np.sin(2 * np.pi * B * cyc))
        x = 0.5 * tone * (1.0 + depth * whirl) + af * u["aero"] * turb
        if s_blade:
            # a blade that has lost most of its loading runs off its design incidence, separated: its
            # share (1/B) of the rotor's broadband flow noise (modelled as the blades' self-noise)
            # grows by grow(level_db) in amplitude, from its own turbulence (the fault's stream, so the
            # healthy machine's draws are untouched), same spectrum, swishing once per revolution as
            # the one loud blade rotates past the microphone (mean power of the swish kept at 1)
            gain = fault.grow(self.kinds["blade_damage"].level_db)
            sep = dsp.band_noise(n, sr, fault.rng, 60, 7500, u["tilt_db_oct"])
            swish = 1.0 + 0.5 * np.cos(2 * np.pi * cyc + fault.rng.uniform(0.0, 2 * np.pi))
            x = x + af * u["aero"] * np.sqrt((gain ** 2 - 1.0) / B) * sep * swish / np.sqrt(1.125)
        x = dsp.filtered(x, sr, structure(u["housing"], direct=1.0, radiation_hz=25.0))
        out = Sound(x)
        if self.severity(fault, "imbalance"):
            out.band_hz = (0.7 * fr, B * fr + 1.5 * fr)  # 1x and the first blade-pass sidebands
        if s_blade:
            out.band_hz = (0.5 * fr, 7500.0)  # the shaft orders and the separated blade's broadband
        if self.severity(fault, "rub"):
            on, off = _window(fault.rng, n / sr, 0.25, 0.5)
            f_sq = dsp.drifting_rate(u["squeal_hz"], n, sr, fault.rng, jitter=0.02, knots_per_s=3)
            sq = np.sin(2 * np.pi * dsp.phase_of(f_sq, sr)) * dsp.gate(n, sr, on, off)
            out.x = x + fault.amount(10.0 ** (self.kinds["rub"].level_db / 20.0)) * dsp.rms(x) * sq / np.sqrt(0.5)
            out.onset_s, out.offset_s = on, off
            out.band_hz = (0.97 * u["squeal_hz"], 1.03 * u["squeal_hz"])
        return out
