"""Toy car and toy train (ToyADMOS-like)."""

from __future__ import annotations

import numpy as np

from .. import dsp
from ..base import AnomalyKind, Machine, Sound
from ._common import (_at_least_one, _k, _unit_rms, clip_wobble, modes, order_coefs, pattern, rev_pulse,
                      structure, tol, tol_modes)


class ToyCar(Machine):
    """Toy car on a roller: DC-motor whine tracking the supply voltage, gear mesh, rolling noise."""

    name = "ToyCar"
    shift = "spd (supply voltage -> motor speed): target runs at higher voltages"
    kinds = _k(
        AnomalyKind("gear_chip", "chipped pinion tooth: the mesh is amplitude- and phase-modulated once "
                    "per pinion (motor) revolution, with a small impact (Randall 1982)", "mid", level_db=0.0),
        AnomalyKind("wheel_damage", "dented wheel: a thump once per wheel revolution ringing the chassis's "
                    "low mode", "low", level_db=2.0),
        AnomalyKind("brush_spark", "worn brushes: sparks at the commutation instants, a crackle above "
                    "5 kHz (a new source: additive)", "high", level_db=-4.0),
    )

    _CARS = ["A1", "B1", "C1", "D1", "E1", "A2", "B2", "C2", "D2", "E2"]

    def sample_product(self, rng):
        return {"teeth": int(rng.integers(8, 13)), "ratio": float(rng.uniform(14, 22)),
                "whine_amps": pattern(rng, [1.0, 0.6, 0.4, 0.3, 0.2, 0.15, 0.1, 0.05], 3.0),
                "gear_amps": pattern(rng, [0.5, 0.2], 3.0),
                "body": modes(rng, 3, 500.0, 5000.0, zeta=(0.015, 0.05), peak_db=(6.0, 15.0)),
                "wheel_hz": float(rng.uniform(70, 140)), "chip_hz": float(rng.uniform(1500, 2500))}

    def unit_constants(self, rng, pr):
        return {"teeth": pr["teeth"], "ratio": pr["ratio"], "motor_k": tol(rng, 1.0, 0.02),
                "whine_amps": pattern(rng, pr["whine_amps"], 3.0), "gear_amps": pattern(rng, pr["gear_amps"], 3.0),
                "gear_ecc": float(rng.uniform(0.02, 0.08)), "body": tol_modes(rng, pr["body"]),
                "wheel_hz": tol(rng, pr["wheel_hz"], 0.04), "chip_hz": tol(rng, pr["chip_hz"], 0.03)}

    def sample_params(self, rng, unit, domain):
        car = str(rng.choice(self._CARS[:5] if domain != "target" else self._CARS[5:]))
        spd = int(rng.choice([28, 31, 34] if domain != "target" else [37, 40]))
        return self.complete({"car": car, "spd": spd, "mic": int(rng.integers(1, 3))}, unit)

    def complete(self, p, unit):
        motor_hz = float(p["spd"]) * (4.0 + 0.15 * self._CARS.index(p["car"])) * unit.get("motor_k", 1.0)
        return {**p, "motor_hz": motor_hz,
                "attrs": [("car", p["car"]), ("spd", f"{int(p['spd'])}V"), ("mic", f"{int(p['mic'])}")]}

    def render(self, p, n, sr, rng, fault):
        u = p["unit"]
        fm = dsp.drifting_rate(p["motor_hz"], n, sr, rng, jitter=0.006, knots_per_s=1.5)
        cm = dsp.phase_of(fm, sr, rng.uniform())
        whine_amps = clip_wobble(rng, u["whine_amps"], 0.8)
        ph = rng.uniform(0.0, 2 * np.pi, 12)
        roll = dsp.band_noise(n, sr, rng, 150, 6000, -2.0)
        cw = cm / u["ratio"]
        chip_at = rng.uniform()
        am = 1.0 + u["gear_ecc"] * np.sin(2 * np.pi * cm + ph[10])
        pm = np.zeros(n)
        sound = Sound(np.zeros(n))
        impact = np.zeros(n)
        if self.severity(fault, "gear_chip"):
            g = fault.amount(1.0)
            pulse = rev_pulse(cm, 0.5 / u["teeth"], chip_at)
            am = am - 0.6 * g * pulse
            pm = 0.8 * g * pulse
            t = dsp.events_at_rate(cm - chip_at, sr)
            impact = dsp.ring(dsp.impulse_train(n, sr, t, g), dsp.resonance_kernel(sr, u["chip_hz"], 0.002))
            sound.band_hz = (u["teeth"] * p["motor_hz"] - 6 * p["motor_hz"],
                             min(2 * u["teeth"] * p["motor_hz"] + 6 * p["motor_hz"], 0.49 * sr))
            sound.events_s = list(t)
        whine = dsp.tones(3 * cm, order_coefs(whine_amps, ph[:8]))
        gear = dsp.tones(u["teeth"] * cm, order_coefs(u["gear_amps"], ph[8:10]), pm=pm) * am
        roll = roll * (1 + 0.3 * np.sin(2 * np.pi * cw))
        x = dsp.filtered(0.4 * whine + 0.3 * gear + 1.0 * roll, sr, structure(u["body"], radiation_hz=60.0))
        ref = dsp.rms(roll)
        x = x + 0.3 * ref * _unit_rms(impact)
        if self.severity(fault, "wheel_damage"):
            t = _at_least_one(dsp.events_at_rate(cw, sr), n, sr, fault.rng)
            th = dsp.ring(dsp.impulse_train(n, sr, t, 1.0), dsp.resonance_kernel(sr, u["wheel_hz"], 0.04))
            x = x + fault.amount(10.0 ** (self.kinds["wheel_damage"].level_db / 20.0)) * ref * _unit_rms(th)
            sound.band_hz = (0.7 * u["wheel_hz"], 1.3 * u["wheel_hz"])
            sound.events_s = list(t)
        if self.severity(fault, "brush_spark"):
            r = fault.rng
            comm = rev_pulse(3 * cm, 0.05) ** 2  # sparks when a commutator bar leaves the brush
            bursts = dsp.impulse_train(n, sr, _at_least_one(dsp.poisson_times(n / sr, 6.0, r), n, sr, r), 1.0)
            env = dsp.ring(bursts, np.ones(int(0.06 * sr))) * (0.3 + comm)
            crack = dsp.bandlimit(r.standard_normal(n) * env * (r.random(n) < 0.2), sr, 5000, 7800)
            x = x + fault.amount(10.0 ** (self.kinds["brush_spark"].level_db / 20.0)) * ref * _unit_rms(crack)
            sound.band_hz = (5000.0, 7800.0)
        sound.x = x
        return sound


class ToyTrain(Machine):
    """Toy train: motor whine tracking speed, rolling noise and paired rail-joint clicks."""

    name = "ToyTrain"
    shift = "spd (speed setting): target runs at higher settings"
    kinds = _k(
        AnomalyKind("flat_wheel", "flat spot: a thump once per wheel revolution ringing the car's low mode",
                    "low", level_db=4.0),
        AnomalyKind("rail_damage", "broken rail joint: a loud clack where the train crosses it",
                    "high", level_db=0.0, localised=True),
        AnomalyKind("gear_wear", "worn motor gears: profile errors raise the high whine harmonics 4-8 "
                    "(Randall 1982)", "mid", level_db=18.0),
    )

    _CARS = ToyCar._CARS

    def sample_product(self, rng):
        return {"joint_m": float(rng.uniform(0.15, 0.25)), "axle_m": float(rng.uniform(0.03, 0.06)),
                "click_hz": float(rng.uniform(1500, 2500)), "flat_hz": float(rng.uniform(60, 130)),
                "clack_hz": float(rng.uniform(4000, 6000)), "wheel_m": 0.03,
                "whine_amps": pattern(rng, [1.0, 0.5, 0.3, 0.1, 0.05, 0.03, 0.02, 0.01], 3.0),
                "body": modes(rng, 3, 400.0, 4000.0, zeta=(0.015, 0.05), peak_db=(6.0, 15.0))}

    def unit_constants(self, rng, pr):
        return {"joint_m": pr["joint_m"], "axle_m": tol(rng, pr["axle_m"], 0.02),
                "click_hz": tol(rng, pr["click_hz"], 0.03), "flat_hz": tol(rng, pr["flat_hz"], 0.04),
                "clack_hz": tol(rng, pr["clack_hz"], 0.03), "wheel_m": pr["wheel_m"],
                "gear_k": tol(rng, 900.0, 0.02), "whine_amps": pattern(rng, pr["whine_amps"], 3.0),
                "body": tol_modes(rng, pr["body"])}

    def sample_params(self, rng, unit, domain):
        car = str(rng.choice(self._CARS[:5] if domain != "target" else self._CARS[5:]))
        spd = int(rng.choice([6, 7, 8, 9, 10] if domain != "target" else [11, 12]))
        return self.complete({"car": car, "spd": spd, "mic": int(rng.integers(1, 3))}, unit)

    def complete(self, p, unit):
        return {**p, "speed_m_s": 0.04 * float(p["spd"]),
                "attrs": [("car", p["car"]), ("spd", f"{int(p['spd'])}"), ("mic", f"{int(p['mic'])}")]}

    def render(self, p, n, sr, rng, fault):
        u = p["unit"]
        v = dsp.drifting_rate(p["speed_m_s"], n, sr, rng, jitter=0.02)
        dist = dsp.phase_of(v, sr, rng.uniform(0.0, u["joint_m"]))
        fm = v * u.get("gear_k", 900.0)
        cm = dsp.phase_of(fm, sr)
        amps = clip_wobble(rng, u["whine_amps"], 0.8)
        ph = rng.uniform(0.0, 2 * np.pi, len(amps))
        roll = dsp.band_noise(n, sr, rng, 100, 5000, -3.0)
        joints = dsp.events_at_rate(dist / u["joint_m"], sr)
        lag = u["axle_m"] / p["speed_m_s"]
        clicks_t = np.concatenate([joints, joints + lag])
        clk = dsp.ring(dsp.impulse_train(n, sr, clicks_t, rng.uniform(0.7, 1.0, len(clicks_t))),
                       dsp.resonance_kernel(sr, u["click_hz"], 0.006))
        sound = Sound(np.zeros(n))
        if self.severity(fault, "gear_wear"):
            w = fault.grow(self.kinds["gear_wear"].level_db)
            amps = amps * np.r_[np.ones(3), np.full(len(amps) - 3, w)]
            sound.band_hz = (3.5 * float(np.mean(fm)), min(8.5 * float(np.mean(fm)), 0.49 * sr))
        whine = dsp.tones(cm, order_coefs(amps, ph))
        x = dsp.filtered(0.4 * whine + roll, sr, structure(u["body"], radiation_hz=50.0)) + 0.8 * _unit_rms(clk)
        ref = dsp.rms(roll)
        if self.severity(fault, "flat_wheel"):
            t = _at_least_one(dsp.events_at_rate(dist / (np.pi * u["wheel_m"]), sr), n, sr, fault.rng)
            th = dsp.ring(dsp.impulse_train(n, sr, t, 1.0), dsp.resonance_kernel(sr, u["flat_hz"], 0.04))
            x = x + fault.amount(10.0 ** (self.kinds["flat_wheel"].level_db / 20.0)) * ref * _unit_rms(th)
            sound.band_hz = (0.7 * u["flat_hz"], 1.3 * u["flat_hz"])
        if self.severity(fault, "rail_damage"):
            # the broken joint is one of those crossed in the clip (any instant if none is)
            r = fault.rng
            j = joints[r.integers(0, len(joints))] if len(joints) else r.uniform(0.0, 0.8) * n / sr
            t = np.array([j, j + lag])
            cl = dsp.ring(dsp.impulse_train(n, sr, t, 1.0), dsp.resonance_kernel(sr, u["clack_hz"], 0.01))
            # scaled against the clip, not the event: a single clack is short
            x = x + fault.amount(10.0 ** (self.kinds["rail_damage"].level_db / 20.0)) * ref * 4.0 * \
                cl / (np.max(np.abs(cl)) + 1e-12)
            sound.onset_s, sound.offset_s = float(j), float(j + lag + 0.05)
            sound.events_s = list(t)
            sound.band_hz = (0.85 * u["clack_hz"], 1.15 * u["clack_hz"])
        sound.x = x
        return sound
