"""Solenoid valve: plunger impacts ringing the valve body, fluid noise, the pipe's surge."""

from __future__ import annotations

import numpy as np

from .. import dsp
from ..base import AnomalyKind, Machine, Sound
from ._common import _at_least_one, _k, _unit_rms, tol


_VALVE_PATTERNS = {  # (open seconds, closed seconds) cycles
    "00": [(0.5, 0.5)],
    "01": [(0.2, 0.3), (0.2, 0.8)],
    "02": [(0.8, 0.4)],
    "03": [(0.15, 0.15), (0.15, 0.15), (0.15, 0.75)],
}


class Valve(Machine):
    """Solenoid valve: open/close clicks following a duty-cycle pattern, fluid noise while open."""

    name = "valve"
    shift = "pat (open/close pattern): target uses patterns unseen in source"
    kinds = _k(
        AnomalyKind("timing_fault", "sluggish plunger (friction, weak spring): in one stretch of the clip "
                    "the plunger moves late and bounces on its seat", "mid", level_db=0.0, localised=True),
        AnomalyKind("leak", "seat leak: a jet through the damaged seat hisses while the valve is closed "
                    "(a new flow path: additive)", "high", level_db=-10.0),
        AnomalyKind("water_hammer", "faster closure (worn damper): the pressure surge after each closing "
                    "grows, ringing the pipe's own low resonance (Joukowsky surge)", "low", level_db=26.0),
    )

    _TOL = {"click_hz": 0.06, "click2_hz": 0.06, "click_decay": 0.15, "click2": 0.2, "thump_hz": 0.06,
            "thump": 0.15, "close_amp": 0.1, "latency_s": 0.25, "fluid_hz": 0.06, "fluid": 0.15, "hammer_hz": 0.06,
            "hammer0": 0.3}

    def unit_constants(self, rng, pr):
        return {k: tol(rng, v, self._TOL[k]) for k, v in pr.items()}

    def sample_product(self, rng):
        return {"click_hz": float(rng.uniform(2000, 3500)), "click2_hz": float(rng.uniform(3800, 6000)),
                "click_decay": float(rng.uniform(0.002, 0.004)), "click2": float(rng.uniform(0.2, 0.6)),
                "thump_hz": float(rng.uniform(150, 260)), "thump": float(rng.uniform(0.4, 0.8)),
                "close_amp": float(rng.uniform(0.55, 0.85)), "latency_s": float(rng.uniform(0.004, 0.012)),
                "fluid_hz": float(rng.uniform(600, 1200)), "fluid": float(rng.uniform(0.1, 0.2)),
                "hammer_hz": float(rng.uniform(35, 80)), "hammer0": float(rng.uniform(0.03, 0.08))}

    def sample_params(self, rng, unit, domain):
        pat = str(rng.choice(["00", "01"] if domain != "target" else ["02", "03"]))
        return self.complete({"pat": pat}, unit)

    def complete(self, p, unit):
        if p["pat"] not in _VALVE_PATTERNS:
            raise ValueError(f"valve pattern {p['pat']!r} unknown; choose one of {sorted(_VALVE_PATTERNS)}")
        return {**p, "attrs": [("pat", p["pat"])]}

    def _events(self, pat, dur, rng, latency):
        opens, closes = [], []
        t = rng.uniform(0.0, min(0.5, 0.3 * dur))
        while t < dur:
            for o, c in _VALVE_PATTERNS[pat]:
                j = rng.normal(0.0, 0.004, 2)
                opens.append(t + latency + j[0])
                closes.append(t + o + 0.5 * latency + j[1])
                t += o + c
        return np.asarray(opens), np.asarray(closes)

    def render(self, p, n, sr, rng, fault):
        u = p["unit"]
        dur = n / sr
        opens, closes = self._events(p["pat"], dur, rng, u["latency_s"])
        click_k = dsp.resonance_kernel(sr, u["click_hz"], u["click_decay"]) + \
            u["click2"] * dsp.resonance_kernel(sr, u["click2_hz"], 0.6 * u["click_decay"], 5 * u["click_decay"])
        thump_k = dsp.resonance_kernel(sr, u["thump_hz"], 0.015)
        hammer_k = dsp.resonance_kernel(sr, u["hammer_hz"], 0.06)
        amp_o = rng.uniform(0.9, 1.1, len(opens))
        amp_c = u["close_amp"] * rng.uniform(0.9, 1.1, len(closes))
        fluid_noise = dsp.band_noise(n, sr, rng, 0.5 * u["fluid_hz"], 3 * u["fluid_hz"])
        floor = dsp.coloured_noise(n, sr, rng, -3.0)

        def clicks(o, c):
            imp = dsp.impulse_train(n, sr, o, amp_o) + dsp.impulse_train(n, sr, c, amp_c)
            return dsp.ring(imp, click_k) + u["thump"] * dsp.ring(imp, thump_k)

        def open_gate(o, c):
            g = np.zeros(n)
            for a, b in zip(o, c):
                g += dsp.gate(n, sr, a, b, 0.01)
            return np.minimum(g, 1.0)

        def surge(c):  # after each closing (after the opening when no closing falls in the clip)
            at = c[c + 0.01 < dur] + 0.01
            at = at if len(at) else _at_least_one(opens, n, sr, np.random.default_rng(0))
            return dsp.ring(dsp.impulse_train(n, sr, at, 1.0), hammer_k)

        nominal = clicks(opens, closes)
        ref = dsp.rms(nominal) + 1e-12  # the unit's click level: the scale of everything else
        o2, c2 = opens, closes
        bounce = np.zeros(n)
        sound = Sound(np.zeros(n))
        if self.severity(fault, "timing_fault"):
            s = fault.severity
            k = int(fault.rng.integers(0, max(int(np.sum(opens < dur)), 1)))  # a stretch holding >= 1 opening
            length = dur * fault.rng.uniform(0.3, 0.5)
            on = float(max(0.0, opens[k] - fault.rng.uniform(0.0, 0.5) * length))
            off = float(min(dur, on + length))
            sel = (opens >= on) & (opens < off)
            delay = 0.01 + 0.09 * s
            o2 = np.where(sel, opens + delay, opens)
            c2 = np.where(sel, closes + delay * 0.5, closes)
            bounce = dsp.ring(dsp.impulse_train(n, sr, opens[sel] + delay + 0.02 + 0.03 * s, 0.3 + 0.5 * s), click_k)
            sound.onset_s, sound.offset_s = on, off
            sound.events_s = list(o2[sel])
            sound.band_hz = (0.5 * u["thump_hz"], 1.3 * u["click2_hz"])
        click_sig = nominal if o2 is opens else clicks(o2, c2)
        hammer = u["hammer0"]
        if self.severity(fault, "water_hammer"):
            hammer = u["hammer0"] * fault.grow(self.kinds["water_hammer"].level_db)
            sound.band_hz = (0.7 * u["hammer_hz"], 1.3 * u["hammer_hz"])
        knock = ref * hammer * _unit_rms(surge(c2))
        gate = open_gate(o2, c2)
        fluid = fluid_noise * (0.15 + gate)
        x = click_sig + bounce + knock + u["fluid"] * ref * fluid + 0.02 * ref * floor
        if self.severity(fault, "leak"):
            hiss = dsp.band_noise(n, sr, fault.rng, 4000, 7800) * (1.0 - gate)
            x = x + fault.amount(10.0 ** (self.kinds["leak"].level_db / 20.0)) * ref * _unit_rms(hiss)
            sound.band_hz = (4000.0, 7800.0)
        sound.x = x
        return sound
