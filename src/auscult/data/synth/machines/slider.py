"""Slide rail: strokes, transients, whine and travel noise."""

from __future__ import annotations

import numpy as np

from .. import dsp
from ..base import AnomalyKind, Machine, Rendered
from ._common import _k, _unit_rms


def _stroke_profile(n: int, sr: int, rng: np.random.Generator, v: float, a: float, L: float):
    """Velocity (m/s, signed), position (m) and accel-start/stop times of back-and-forth strokes."""
    t_acc = v / a
    d_acc = 0.5 * a * t_acc ** 2
    if 2 * d_acc > L:  # triangular profile
        t_acc = np.sqrt(L / a)
        v = a * t_acc
        t_const = 0.0
    else:
        t_const = (L - 2 * d_acc) / v
    seg = []
    events = []
    t = rng.uniform(0.0, 0.3)
    direction = 1.0
    while t < n / sr:
        pause = rng.uniform(0.15, 0.35)
        seg.append((t, direction))
        events += [t, t + t_acc, t + t_acc + t_const, t + 2 * t_acc + t_const]
        t += 2 * t_acc + t_const + pause
        direction = -direction
    tt = np.arange(n) / sr
    vel = np.zeros(n)
    for t0, d in seg:
        rel = tt - t0
        prof = np.clip(np.minimum(rel, 2 * t_acc + t_const - rel), 0.0, t_acc) * a
        vel += d * prof
    pos = np.cumsum(vel) / sr
    return vel, pos, np.asarray(events), v


class Slider(Machine):
    """Slide rail: strokes with acceleration/deceleration transients, motor whine, travel noise."""

    name = "slider"
    shift = "vel (stroke velocity, mm/s): target moves faster"
    kinds = _k(
        AnomalyKind("rail_damage", "a dent in the rail: a click each time the carriage passes it",
                    "high", level_db=-2.0, localised=True),
        AnomalyKind("no_lubrication", "dry rail: squeal while the carriage moves fast", "high",
                    level_db=-8.0),
        AnomalyKind("loose_belt", "loose drive belt: low-frequency slap at every start and stop",
                    "low", level_db=-2.0),
    )

    def sample_unit(self, rng):
        return {"stroke_m": float(rng.uniform(0.25, 0.4)), "rail_hz": float(rng.uniform(1500, 2800)),
                "dent_hz": float(rng.uniform(4000, 6000)), "squeal_hz": float(rng.uniform(2800, 4500)),
                "dent_at": float(rng.uniform(0.3, 0.7)), "slap_hz": float(rng.uniform(45, 110))}

    def sample_params(self, rng, unit, domain):
        vel = int(rng.choice([400, 500, 600, 700] if domain != "target" else [900, 1000]))
        return self.complete({"vel": vel, "ac": float(rng.choice([0.1, 0.2, 0.3]))}, unit)

    def complete(self, p, unit):
        return {**p, "attrs": [("vel", f"{int(p['vel'])}"), ("ac", f"{float(p['ac']):.2f}")]}

    def render(self, p, n, sr, rng, kind, severity):
        u = p["unit"]
        v = p["vel"] / 1000.0 * rng.uniform(0.98, 1.02)
        a = p["ac"] * 9.81
        vel, pos, events, vmax = _stroke_profile(n, sr, rng, v, a, u["stroke_m"])
        speed = np.abs(vel) / vmax
        whine_rate = 300.0 + 900.0 * speed
        whine = dsp.harmonics(dsp.phase_of(whine_rate, sr), [1.0, 0.4, 0.2], rng) * speed
        travel = dsp.band_noise(n, sr, rng, 200, 7000, -2.0) * (0.05 + speed)
        kick = dsp.impulse_train(n, sr, events, rng.uniform(0.5, 1.0, len(events)) * p["ac"] * 3)
        trans = dsp.ring(kick, dsp.resonance_kernel(sr, u["rail_hz"], 0.01))
        base = 0.4 * whine + 0.8 * travel + 0.5 * _unit_rms(trans) + 0.05 * dsp.coloured_noise(n, sr, rng)
        r = dsp.rms(base)
        extra = np.zeros(n)
        out = Rendered(base, extra)
        g = self.gain(kind, "rail_damage", severity)
        if g:
            x0 = u["dent_at"] * u["stroke_m"]
            cross = np.nonzero(np.diff(np.sign(pos - x0)) != 0)[0] / sr
            if not len(cross):  # a clip too short to reach the dent: it is hit mid-travel
                cross = np.array([rng.uniform(0.1, 0.9) * n / sr])
            hit = dsp.ring(dsp.impulse_train(n, sr, cross, 1.0), dsp.resonance_kernel(sr, u["dent_hz"], 0.004))
            if len(cross):  # sparse clicks: scaled by peak, not RMS (a crest factor of ~50)
                extra += g * r * 3.0 * hit / (np.max(np.abs(hit)) + 1e-12)
            out.band_hz = (0.85 * u["dent_hz"], 1.15 * u["dent_hz"])
            out.events_s = list(cross)
            if len(cross):
                out.onset_s, out.offset_s = float(cross[0]), float(cross[-1] + 0.03)
        g = self.gain(kind, "no_lubrication", severity)
        if g:
            f_sq = dsp.drifting_rate(u["squeal_hz"], n, sr, rng, jitter=0.03, knots_per_s=4)
            fast = np.clip(2 * speed - 1, 0, 1)
            if not fast.any():  # short clip without a fast stretch: squeal while moving at all
                fast = speed / speed.max() if speed.any() else np.ones(n)
            sq = np.sin(2 * np.pi * dsp.phase_of(f_sq, sr)) * fast
            extra += g * r * _unit_rms(sq)
            out.band_hz = (0.95 * u["squeal_hz"], 1.05 * u["squeal_hz"])
        g = self.gain(kind, "loose_belt", severity)
        if g:
            slap = dsp.ring(dsp.impulse_train(n, sr, events, 1.0), dsp.resonance_kernel(sr, u["slap_hz"], 0.05))
            extra += g * r * _unit_rms(slap)
            out.band_hz = (0.7 * u["slap_hz"], 1.3 * u["slap_hz"])
        return out
