"""Solenoid valve: click patterns and fluid noise."""

from __future__ import annotations

import numpy as np

from .. import dsp
from ..base import AnomalyKind, Machine, Rendered
from ._common import _at_least_one, _k, _unit_rms


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
        AnomalyKind("timing_fault", "sluggish plunger: one stretch of the clip has late, doubled "
                    "(bouncing) clicks", "mid", level_db=0.0, localised=True),
        AnomalyKind("leak", "seat leak: high-frequency hiss while the valve is closed", "high",
                    level_db=-10.0),
        AnomalyKind("water_hammer", "pressure surge: a low-frequency knock after each closing",
                    "low", level_db=-2.0),
    )

    def sample_unit(self, rng):
        return {"click_hz": float(rng.uniform(2000, 3500)), "thump_hz": float(rng.uniform(150, 260)),
                "fluid_hz": float(rng.uniform(600, 1200)), "hammer_hz": float(rng.uniform(35, 80))}

    def sample_params(self, rng, unit, domain):
        pat = str(rng.choice(["00", "01"] if domain != "target" else ["02", "03"]))
        return self.complete({"pat": pat}, unit)

    def complete(self, p, unit):
        if p["pat"] not in _VALVE_PATTERNS:
            raise ValueError(f"valve pattern {p['pat']!r} unknown; choose one of {sorted(_VALVE_PATTERNS)}")
        return {**p, "attrs": [("pat", p["pat"])]}

    def _events(self, pat, dur, rng):
        opens, closes = [], []
        t = rng.uniform(0.0, min(0.5, 0.3 * dur))
        while t < dur:
            for o, c in _VALVE_PATTERNS[pat]:
                j = rng.normal(0.0, 0.005, 2)
                opens.append(t + j[0])
                closes.append(t + o + j[1])
                t += o + c
        return np.asarray(opens), np.asarray(closes)

    def render(self, p, n, sr, rng, kind, severity):
        u = p["unit"]
        dur = n / sr
        opens, closes = self._events(p["pat"], dur, rng)
        click_k = dsp.resonance_kernel(sr, u["click_hz"], 0.003)
        thump_k = dsp.resonance_kernel(sr, u["thump_hz"], 0.015)

        def clicks(o, c):
            amp_o = rng.uniform(0.9, 1.1, len(o))
            amp_c = rng.uniform(0.6, 0.8, len(c))
            imp = dsp.impulse_train(n, sr, o, amp_o) + dsp.impulse_train(n, sr, c, amp_c)
            return dsp.ring(imp, click_k) + 0.6 * dsp.ring(imp, thump_k)

        def open_gate(o, c):
            g = np.zeros(n)
            for a, b in zip(o, c):
                g += dsp.gate(n, sr, a, b, 0.01)
            return np.minimum(g, 1.0)

        click_sig = clicks(opens, closes)
        fluid_noise = dsp.band_noise(n, sr, rng, 0.5 * u["fluid_hz"], 3 * u["fluid_hz"])
        fluid = fluid_noise * (0.15 + open_gate(opens, closes))
        base = click_sig + 0.15 * fluid + 0.02 * dsp.coloured_noise(n, sr, rng)
        r = dsp.rms(base)
        extra = np.zeros(n)
        out = Rendered(base, extra)
        if kind == "timing_fault":
            k = int(rng.integers(0, max(int(np.sum(opens < dur)), 1)))  # a stretch holding >= 1 opening
            length = dur * rng.uniform(0.3, 0.5)
            on = float(max(0.0, opens[k] - rng.uniform(0.0, 0.5) * length))
            off = float(min(dur, on + length))
            sel = (opens >= on) & (opens < off)
            delay = 0.01 + 0.09 * severity
            o2 = np.where(sel, opens + delay, opens)
            c2 = np.where(sel, closes + delay * 0.5, closes)
            bounce = opens[sel] + delay + 0.02 + 0.03 * severity
            new = clicks(o2, c2) + dsp.ring(dsp.impulse_train(n, sr, bounce, 0.3 + 0.5 * severity), click_k)
            fluid2 = fluid_noise * (0.15 + open_gate(o2, c2))
            extra += (new - click_sig) + 0.15 * (fluid2 - fluid)
            out.onset_s, out.offset_s = on, off
            out.events_s = list(o2[sel])
            out.band_hz = (0.5 * u["thump_hz"], 1.3 * u["click_hz"])
        g = self.gain(kind, "leak", severity)
        if g:
            closed = 1.0 - open_gate(opens, closes)
            extra += g * r * _unit_rms(dsp.band_noise(n, sr, rng, 4000, 7800) * closed)
            out.band_hz = (4000.0, 7800.0)
        g = self.gain(kind, "water_hammer", severity)
        if g:
            # surge after each closing (after the opening when no closing falls in the clip)
            at = closes[closes + 0.01 < dur] + 0.01
            at = at if len(at) else _at_least_one(opens, n, sr, rng)
            knock = dsp.ring(dsp.impulse_train(n, sr, at, 1.0),
                             dsp.resonance_kernel(sr, u["hammer_hz"], 0.06))
            extra += g * r * _unit_rms(knock)
            out.band_hz = (0.7 * u["hammer_hz"], 1.3 * u["hammer_hz"])
        return out
