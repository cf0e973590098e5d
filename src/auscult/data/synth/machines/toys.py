"""Toy car and toy train (ToyADMOS-like)."""

from __future__ import annotations

import numpy as np

from .. import dsp
from ..base import AnomalyKind, Machine, Rendered
from ._common import _at_least_one, _k, _unit_rms


class ToyCar(Machine):
    """Toy car on a roller: DC-motor whine tracking the supply voltage, gear mesh, rolling noise."""

    name = "ToyCar"
    shift = "spd (supply voltage -> motor speed): target runs at higher voltages"
    kinds = _k(
        AnomalyKind("gear_chip", "chipped pinion: an impact once per pinion revolution", "mid",
                    level_db=-4.0),
        AnomalyKind("wheel_damage", "dented wheel: a low thump once per wheel revolution", "low",
                    level_db=-2.0),
        AnomalyKind("brush_spark", "worn brushes: crackle bursts above 5 kHz", "high",
                    level_db=-4.0),
    )

    _CARS = ["A1", "B1", "C1", "D1", "E1", "A2", "B2", "C2", "D2", "E2"]

    def sample_unit(self, rng):
        return {"teeth": int(rng.integers(8, 13)), "ratio": float(rng.uniform(14, 22)),
                "wheel_hz": float(rng.uniform(70, 140)), "chip_hz": float(rng.uniform(1500, 2500))}

    def sample_params(self, rng, unit, domain):
        car = str(rng.choice(self._CARS[:5] if domain != "target" else self._CARS[5:]))
        spd = int(rng.choice([28, 31, 34] if domain != "target" else [37, 40]))
        return self.complete({"car": car, "spd": spd, "mic": int(rng.integers(1, 3))}, unit)

    def complete(self, p, unit):
        motor_hz = float(p["spd"]) * (4.0 + 0.15 * self._CARS.index(p["car"]))
        return {**p, "motor_hz": motor_hz,
                "attrs": [("car", p["car"]), ("spd", f"{int(p['spd'])}V"), ("mic", f"{int(p['mic'])}")]}

    def render(self, p, n, sr, rng, kind, severity):
        u = p["unit"]
        fm = dsp.drifting_rate(p["motor_hz"], n, sr, rng, jitter=0.015, knots_per_s=1.5)
        cm = dsp.phase_of(fm, sr, rng.uniform())
        whine = dsp.harmonics(3 * cm, [1.0, 0.6, 0.4, 0.3, 0.2, 0.15, 0.1, 0.05], rng)
        gear = dsp.harmonics(u["teeth"] * cm, [0.5, 0.2], rng)
        cw = cm / u["ratio"]
        roll = dsp.band_noise(n, sr, rng, 150, 6000, -2.0) * (1 + 0.3 * np.sin(2 * np.pi * cw))
        base = 0.4 * whine + 0.3 * gear + 1.0 * roll
        r = dsp.rms(base)
        extra = np.zeros(n)
        out = Rendered(base, extra)
        g = self.gain(kind, "gear_chip", severity)
        if g:
            t = dsp.events_at_rate(cm, sr)
            hit = dsp.ring(dsp.impulse_train(n, sr, t, 1.0), dsp.resonance_kernel(sr, u["chip_hz"], 0.002))
            extra += g * r * _unit_rms(hit)
            out.band_hz = (0.8 * u["chip_hz"], 1.2 * u["chip_hz"])
            out.events_s = list(t)
        g = self.gain(kind, "wheel_damage", severity)
        if g:
            t = dsp.events_at_rate(cw, sr)
            th = dsp.ring(dsp.impulse_train(n, sr, t, 1.0), dsp.resonance_kernel(sr, u["wheel_hz"], 0.04))
            extra += g * r * _unit_rms(th)
            out.band_hz = (0.7 * u["wheel_hz"], 1.3 * u["wheel_hz"])
            out.events_s = list(t)
        g = self.gain(kind, "brush_spark", severity)
        if g:
            bursts = dsp.impulse_train(n, sr, _at_least_one(dsp.poisson_times(n / sr, 6.0, rng), n, sr, rng), 1.0)
            env = dsp.ring(bursts, np.ones(int(0.06 * sr)))
            crack = dsp.bandlimit(rng.standard_normal(n) * env * (rng.random(n) < 0.2), sr, 5000, 7800)
            extra += g * r * _unit_rms(crack)
            out.band_hz = (5000.0, 7800.0)
        return out




class ToyTrain(Machine):
    """Toy train: motor whine tracking speed, rolling noise and paired rail-joint clicks."""

    name = "ToyTrain"
    shift = "spd (speed setting): target runs at higher settings"
    kinds = _k(
        AnomalyKind("flat_wheel", "flat spot: a low thump once per wheel revolution", "low",
                    level_db=-2.0),
        AnomalyKind("rail_damage", "broken rail joint: a loud clack where the train crosses it",
                    "high", level_db=0.0, localised=True),
        AnomalyKind("gear_wear", "worn gears: high motor-whine harmonics grow", "mid", level_db=-6.0),
    )

    _CARS = ToyCar._CARS

    def sample_unit(self, rng):
        return {"joint_m": float(rng.uniform(0.15, 0.25)), "axle_m": float(rng.uniform(0.03, 0.06)),
                "click_hz": float(rng.uniform(1500, 2500)), "flat_hz": float(rng.uniform(60, 130)),
                "clack_hz": float(rng.uniform(4000, 6000)), "wheel_m": 0.03}

    def sample_params(self, rng, unit, domain):
        car = str(rng.choice(self._CARS[:5] if domain != "target" else self._CARS[5:]))
        spd = int(rng.choice([6, 7, 8, 9, 10] if domain != "target" else [11, 12]))
        return self.complete({"car": car, "spd": spd, "mic": int(rng.integers(1, 3))}, unit)

    def complete(self, p, unit):
        return {**p, "speed_m_s": 0.04 * float(p["spd"]),
                "attrs": [("car", p["car"]), ("spd", f"{int(p['spd'])}"), ("mic", f"{int(p['mic'])}")]}

    def render(self, p, n, sr, rng, kind, severity):
        u = p["unit"]
        v = dsp.drifting_rate(p["speed_m_s"], n, sr, rng, jitter=0.02)
        dist = dsp.phase_of(v, sr, rng.uniform(0.0, u["joint_m"]))
        fm = v * 900.0
        cm = dsp.phase_of(fm, sr)
        whine = dsp.harmonics(cm, [1.0, 0.5, 0.3, 0.15, 0.08, 0.04, 0.02], rng)
        roll = dsp.band_noise(n, sr, rng, 100, 5000, -3.0)
        joints = dsp.events_at_rate(dist / u["joint_m"], sr)
        lag = u["axle_m"] / p["speed_m_s"]
        clicks_t = np.concatenate([joints, joints + lag])
        clk = dsp.ring(dsp.impulse_train(n, sr, clicks_t, rng.uniform(0.7, 1.0, len(clicks_t))),
                       dsp.resonance_kernel(sr, u["click_hz"], 0.006))
        base = 0.4 * whine + roll + 0.8 * _unit_rms(clk)
        r = dsp.rms(base)
        extra = np.zeros(n)
        out = Rendered(base, extra)
        g = self.gain(kind, "flat_wheel", severity)
        if g:
            t = _at_least_one(dsp.events_at_rate(dist / (np.pi * u["wheel_m"]), sr), n, sr, rng)
            th = dsp.ring(dsp.impulse_train(n, sr, t, 1.0), dsp.resonance_kernel(sr, u["flat_hz"], 0.04))
            extra += g * r * _unit_rms(th)
            out.band_hz = (0.7 * u["flat_hz"], 1.3 * u["flat_hz"])
        g = self.gain(kind, "rail_damage", severity)
        if g:
            # the broken joint is one of those crossed in the clip (any instant if none is)
            j = joints[rng.integers(0, len(joints))] if len(joints) else rng.uniform(0.0, 0.8) * n / sr
            t = np.array([j, j + lag])
            cl = dsp.ring(dsp.impulse_train(n, sr, t, 1.0), dsp.resonance_kernel(sr, u["clack_hz"], 0.01))
            # scaled against the clip, not the event: a single clack is short
            extra += g * r * cl / (np.max(np.abs(cl)) + 1e-12) * 4.0
            out.onset_s, out.offset_s = float(j), float(j + lag + 0.05)
            out.events_s = list(t)
            out.band_hz = (0.85 * u["clack_hz"], 1.15 * u["clack_hz"])
        g = self.gain(kind, "gear_wear", severity)
        if g:
            w = dsp.harmonics(cm, [0, 0, 0, 1.0, 0.9, 0.8, 0.7, 0.6], rng)
            extra += g * r * _unit_rms(w)
            out.band_hz = (3.5 * float(np.mean(fm)), min(8.5 * float(np.mean(fm)), 0.49 * sr))
        return out
