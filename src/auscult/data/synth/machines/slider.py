"""Slide rail: strokes, start/stop transients on the rail's resonances, belt-drive whine, travel noise."""

from __future__ import annotations

import numpy as np

from .. import dsp
from ..base import AnomalyKind, Machine, Sound
from ._common import _k, _unit_rms, clip_wobble, modes, pattern, structure, tol, tol_modes


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
        AnomalyKind("rail_damage", "a dent in the rail: a click each time the carriage passes it, ringing "
                    "the rail's high local mode", "high", level_db=-2.0, localised=True),
        AnomalyKind("no_lubrication", "dry rail: friction grows (louder travel noise) and stick-slip makes "
                    "the rail's squeal mode sing while the carriage moves fast", "mid", level_db=-8.0),
        AnomalyKind("loose_belt", "loose drive belt: the slack belt slips and catches, so the carriage "
                    "speed (and the motor whine that follows it) fluctuates, and the belt slaps at its "
                    "span frequency at every start and stop", "mid", level_db=0.0),
    )

    def sample_product(self, rng):
        return {"stroke_m": float(rng.uniform(0.25, 0.4)),
                "rail": modes(rng, 3, 900.0, 3600.0, zeta=(0.01, 0.04), peak_db=(6.0, 15.0)),
                "whine_hz": float(rng.uniform(250.0, 350.0)), "whine_span": float(rng.uniform(800.0, 1000.0)),
                "whine_amps": pattern(rng, [1.0, 0.4, 0.2, 0.1], 3.0),
                "dent_hz": float(rng.uniform(4000, 6000)), "squeal_hz": float(rng.uniform(2800, 4500)),
                "slap_hz": float(rng.uniform(45, 110))}

    def unit_constants(self, rng, pr):
        return {"stroke_m": tol(rng, pr["stroke_m"], 0.01), "speed_trim": float(rng.normal(0.0, 0.015)),
                "rail": tol_modes(rng, pr["rail"]), "whine_hz": tol(rng, pr["whine_hz"], 0.02),
                "whine_span": tol(rng, pr["whine_span"], 0.02), "whine_amps": pattern(rng, pr["whine_amps"], 3.0),
                "dent_hz": tol(rng, pr["dent_hz"], 0.03), "squeal_hz": tol(rng, pr["squeal_hz"], 0.03),
                "dent_at": float(rng.uniform(0.3, 0.7)), "slap_hz": tol(rng, pr["slap_hz"], 0.05),
                "slip0": float(rng.uniform(0.002, 0.006))}

    def sample_params(self, rng, unit, domain):
        vel = int(rng.choice([400, 500, 600, 700] if domain != "target" else [900, 1000]))
        return self.complete({"vel": vel, "ac": float(rng.choice([0.1, 0.2, 0.3]))}, unit)

    def complete(self, p, unit):
        return {**p, "attrs": [("vel", f"{int(p['vel'])}"), ("ac", f"{float(p['ac']):.2f}")]}

    def render(self, p, n, sr, rng, fault):
        u = p["unit"]
        v = p["vel"] / 1000.0 * (1.0 + u["speed_trim"]) * rng.uniform(0.99, 1.01)
        a = p["ac"] * 9.81
        vel, pos, events, vmax = _stroke_profile(n, sr, rng, v, a, u["stroke_m"])
        wobble = dsp.smooth_random(n, rng, int(n / sr * 6) + 2)
        amps = clip_wobble(rng, u["whine_amps"], 0.8)
        phases = rng.uniform(0.0, 2 * np.pi, len(amps))
        travel = dsp.band_noise(n, sr, rng, 200, 7000, -2.0)
        kick_amp = rng.uniform(0.5, 1.0, len(events)) * p["ac"] * 3
        floor = dsp.coloured_noise(n, sr, rng)
        catch = np.zeros(n)
        friction = 1.0
        sound = Sound(np.zeros(n))
        s_belt, s_lub = self.severity(fault, "loose_belt"), self.severity(fault, "no_lubrication")
        if s_belt:
            # slip-and-catch cycles of the slack belt: irregular speed fluctuations of a few Hz while
            # moving (up to +-12 % at severity 1)
            catch = fault.amount(0.12) * dsp.smooth_random(n, fault.rng, int(n / sr * 8) + 2)
        if s_lub:
            friction = fault.grow(8.0)
        speed = np.abs(vel) / vmax
        moving = speed > 0
        speed = speed * (1.0 + (u["slip0"] * wobble + catch) * moving)
        whine_rate = u["whine_hz"] + u["whine_span"] * speed
        whine = dsp.tones(dsp.phase_of(whine_rate, sr), np.r_[0.0, amps * np.exp(1j * phases)]) * speed
        trav = travel * (0.05 + speed) * friction
        kick = dsp.impulse_train(n, sr, events, kick_amp)
        x = 0.4 * whine + 0.8 * dsp.filtered(trav, sr, structure(u["rail"], direct=1.0, radiation_hz=150.0))
        x = x + 0.05 * floor + 0.25 * _unit_rms(dsp.filtered(kick, sr, structure(u["rail"], direct=0.0, radiation_hz=300.0)))
        ref = dsp.rms(travel * (0.05 + np.abs(vel) / vmax))  # the healthy travel noise: scale of added sources
        if s_belt:
            slap = dsp.ring(dsp.impulse_train(n, sr, events, 1.0), dsp.resonance_kernel(sr, u["slap_hz"], 0.05))
            x = x + fault.amount(10.0 ** (-2.0 / 20.0)) * ref * _unit_rms(slap)
            sound.band_hz = (0.7 * u["slap_hz"], min((u["whine_hz"] + u["whine_span"]) * 4.5, 0.49 * sr))
        if s_lub:
            f_sq = dsp.drifting_rate(u["squeal_hz"], n, sr, fault.rng, jitter=0.03, knots_per_s=4)
            fast = np.clip(2 * speed - 1, 0, 1)
            if not fast.any():  # short clip without a fast stretch: squeal while moving at all
                fast = speed / speed.max() if speed.any() else np.ones(n)
            sq = np.sin(2 * np.pi * dsp.phase_of(f_sq, sr)) * fast
            x = x + fault.amount(10.0 ** (self.kinds["no_lubrication"].level_db / 20.0)) * ref * 2.0 * _unit_rms(sq)
            sound.band_hz = (200.0, 7000.0)  # the louder travel noise and the squeal
        if self.severity(fault, "rail_damage"):
            x0 = u["dent_at"] * u["stroke_m"]
            cross = np.nonzero(np.diff(np.sign(pos - x0)) != 0)[0] / sr
            if not len(cross):  # a clip too short to reach the dent: it is hit mid-travel
                cross = np.array([fault.rng.uniform(0.1, 0.9) * n / sr])
            hit = dsp.ring(dsp.impulse_train(n, sr, cross, 1.0), dsp.resonance_kernel(sr, u["dent_hz"], 0.004))
            # sparse clicks: scaled by peak, not RMS (a crest factor of ~50)
            lvl = fault.amount(10.0 ** (self.kinds["rail_damage"].level_db / 20.0))
            x = x + lvl * ref * 3.0 * hit / (np.max(np.abs(hit)) + 1e-12)
            sound.band_hz = (0.85 * u["dent_hz"], 1.15 * u["dent_hz"])
            sound.events_s = list(cross)
            sound.onset_s, sound.offset_s = float(cross[0]), float(cross[-1] + 0.03)
        sound.x = x
        return sound
