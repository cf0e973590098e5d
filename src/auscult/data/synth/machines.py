"""One small physical model per machine type.

Each model is driven by operating parameters (speed, load, pattern, microphone position), has
per-unit constants (blade count, tooth counts, bearing geometry, resonances) drawn once per
section, and varies from clip to clip (rate jitter and drift, phases, noise realisations).
Anomaly components are scaled relative to the healthy machine's RMS by
:func:`auscult.data.synth.base.severity_gain`.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from . import dsp
from .base import AnomalyKind, Machine, Rendered


def _k(*kinds: AnomalyKind) -> dict[str, AnomalyKind]:
    return {k.name: k for k in kinds}


def _unit_rms(x: np.ndarray) -> np.ndarray:
    r = dsp.rms(x)
    return x / r if r > 0 else x


def _at_least_one(times: np.ndarray, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """``times`` inside the clip, or one random instant when none is (very short clips): an
    anomalous clip must always carry its anomaly."""
    times = np.asarray(times, dtype=float)
    times = times[(times >= 0) & (times < n / sr)]
    return times if len(times) else np.array([rng.uniform(0.05, 0.8) * n / sr])


def _window(rng: np.random.Generator, dur: float, lo: float, hi: float) -> tuple[float, float]:
    """A random time window of length in [lo, hi] (fraction of the clip) inside the clip."""
    length = dur * rng.uniform(lo, hi)
    onset = rng.uniform(0.0, max(dur - length, 1e-3))
    return float(onset), float(onset + length)


# ---------------------------------------------------------------------------------------------
class Fan(Machine):
    """Fan: blade-pass tone and harmonics (rpm/60 x blades), airflow turbulence, housing resonance."""

    name = "fan"
    shift = "spd (rotation speed, rpm): target runs faster"
    kinds = _k(
        AnomalyKind("imbalance", "mass imbalance: the 1x shaft-rate component grows and modulates "
                    "the blade pass", "low", level_db=-7.0),
        AnomalyKind("blade_damage", "chipped blade: one impact per revolution ringing the housing",
                    "mid", level_db=-9.0),
        AnomalyKind("rub", "bearing rub: an intermittent high-frequency squeal", "high",
                    level_db=-10.0, localised=True),
    )

    def sample_unit(self, rng):
        return {"blades": int(rng.choice([5, 6, 7, 9])), "housing_hz": float(rng.uniform(700, 1300)),
                "tilt_db_oct": float(rng.uniform(-4.5, -2.5)), "squeal_hz": float(rng.uniform(3500, 6000))}

    def sample_params(self, rng, unit, domain):
        rpm = int(rng.choice([1200, 1300, 1400, 1500] if domain != "target" else [1800, 1900]))
        return self.complete({"rpm": rpm, "mic": int(rng.integers(1, 3))}, unit)

    def complete(self, p, unit):
        rpm, mic = int(p["rpm"]), int(p["mic"])
        return {**p, "airflow": rpm / 1500.0, "attrs": [("spd", f"{rpm}"), ("mic", f"{mic}")]}

    def render(self, p, n, sr, rng, kind, severity):
        u = p["unit"]
        fs = dsp.drifting_rate(p["rpm"] / 60.0, n, sr, rng, jitter=0.01)
        cyc = dsp.phase_of(fs, sr, rng.uniform())
        amps = np.array([1.0, 0.5, 0.3, 0.15, 0.08, 0.04]) * rng.uniform(0.8, 1.2, 6)
        tone = dsp.harmonics(u["blades"] * cyc, amps, rng) + 0.05 * dsp.harmonics(cyc, [1.0], rng)
        turb = dsp.band_noise(n, sr, rng, 60, 7500, u["tilt_db_oct"])
        turb *= 1.0 + 0.2 * np.sin(2 * np.pi * u["blades"] * cyc)
        housing = dsp.band_noise(n, sr, rng, u["housing_hz"] * 0.9, u["housing_hz"] * 1.1)
        af = p["airflow"] ** 2
        base = 0.5 * tone + af * (1.2 * turb + 0.3 * housing)
        r = dsp.rms(base)
        extra = np.zeros(n)
        out = Rendered(base, extra)
        f0 = p["rpm"] / 60.0
        g = self.gain(kind, "imbalance", severity)
        if g:
            one_x = np.sin(2 * np.pi * cyc + rng.uniform(0, 2 * np.pi))
            extra += g * r * one_x / dsp.rms(one_x) + 0.5 * g * 0.5 * tone * one_x
            out.band_hz = (0.7 * f0, 1.3 * f0)
        g = self.gain(kind, "blade_damage", severity)
        if g:
            t = dsp.events_at_rate(cyc, sr)
            imp = dsp.impulse_train(n, sr, t, rng.uniform(0.8, 1.2, len(t)))
            hit = dsp.ring(imp, dsp.resonance_kernel(sr, u["housing_hz"], 0.006))
            extra += g * r * _unit_rms(hit)
            out.band_hz = (0.8 * u["housing_hz"], 1.2 * u["housing_hz"])
            out.events_s = list(t)
        g = self.gain(kind, "rub", severity)
        if g:
            on, off = _window(rng, n / sr, 0.25, 0.5)
            f_sq = dsp.drifting_rate(u["squeal_hz"], n, sr, rng, jitter=0.02, knots_per_s=3)
            sq = np.sin(2 * np.pi * dsp.phase_of(f_sq, sr)) * dsp.gate(n, sr, on, off)
            extra += g * r * sq / np.sqrt(0.5)
            out.onset_s, out.offset_s = on, off
            out.band_hz = (0.97 * u["squeal_hz"], 1.03 * u["squeal_hz"])
        return out


# ---------------------------------------------------------------------------------------------
class Pump(Machine):
    """Pump: vane-pass pulsation (shaft rate x vanes), motor hum at twice mains, flow noise."""

    name = "pump"
    shift = "spd (shaft speed, rpm): target runs faster"
    kinds = _k(
        AnomalyKind("cavitation", "collapsing vapour bubbles: bursty noise above 3 kHz", "high",
                    level_db=-8.0),
        AnomalyKind("clogging", "partial blockage: flow noise shifts up in frequency", "mid",
                    level_db=0.0),
        AnomalyKind("misalignment", "shaft misalignment: the 2x shaft-rate component grows", "low",
                    level_db=-7.0),
    )

    def sample_unit(self, rng):
        return {"vanes": int(rng.choice([5, 6, 7])), "mains_hz": 50.0,
                "flow_hz": float(rng.uniform(700, 1400))}

    def sample_params(self, rng, unit, domain):
        rpm = int(rng.choice([1400, 1500, 1600] if domain != "target" else [1900, 2000]))
        return self.complete({"rpm": rpm, "load": int(rng.integers(1, 4))}, unit)

    def complete(self, p, unit):
        return {**p, "attrs": [("spd", f"{int(p['rpm'])}"), ("load", f"{int(p['load'])}")]}

    def _flow(self, white_spec, n, sr, center, width_oct=1.2):
        f = np.fft.rfftfreq(n, 1.0 / sr)
        lf = np.log2(np.maximum(f, 1.0) / center)
        x = np.fft.irfft(white_spec * np.exp(-0.5 * (lf / width_oct) ** 2), n)
        return x / (dsp.rms(x) + 1e-12)

    def render(self, p, n, sr, rng, kind, severity):
        u = p["unit"]
        fs = dsp.drifting_rate(p["rpm"] / 60.0, n, sr, rng, jitter=0.006)
        cyc = dsp.phase_of(fs, sr, rng.uniform())
        load = 0.7 + 0.15 * p["load"]
        puls = dsp.harmonics(u["vanes"] * cyc, [1.0, 0.4, 0.2], rng) * load
        hum = dsp.harmonics(np.arange(n) / sr * 2 * u["mains_hz"], [0.3, 0.1, 0.05], rng)
        white = np.fft.rfft(rng.standard_normal(n))
        flow = self._flow(white, n, sr, u["flow_hz"]) * (1.0 + 0.3 * dsp.smooth_random(n, rng, 6))
        broad = dsp.coloured_noise(n, sr, rng, -3.0)
        base = 0.5 * puls + hum + 1.0 * load * flow + 0.3 * broad
        r = dsp.rms(base)
        extra = np.zeros(n)
        out = Rendered(base, extra)
        f0 = p["rpm"] / 60.0
        g = self.gain(kind, "cavitation", severity)
        if g:
            bursts = dsp.impulse_train(n, sr, dsp.poisson_times(n / sr, 12.0, rng), 1.0)
            env = dsp.ring(bursts, np.exp(-np.arange(int(0.04 * sr)) / (0.012 * sr)))
            env *= 0.6 + 0.4 * np.sin(2 * np.pi * u["vanes"] * cyc) ** 2
            extra += g * r * _unit_rms(dsp.band_noise(n, sr, rng, 3000, 7500) * env)
            out.band_hz = (3000.0, 7500.0)
        if kind == "clogging":
            shift = 1.0 + 0.5 * severity
            clog = self._flow(white, n, sr, u["flow_hz"] * shift, 1.0)
            extra += r * load * (clog - flow) * (0.2 + 0.5 * severity)
            # the difference removes flow energy around flow_hz and adds it higher up
            out.band_hz = (u["flow_hz"] / 2 ** 1.8, min(u["flow_hz"] * shift * 2 ** 1.8, 0.49 * sr))
        g = self.gain(kind, "misalignment", severity)
        if g:
            mis = dsp.harmonics(cyc, [0.4, 1.0], rng)
            extra += g * r * _unit_rms(mis)
            out.band_hz = (0.8 * f0, 2.2 * f0)
        return out


# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
def bearing_frequencies(shaft_hz: float, n_balls: int, d_over_D: float, contact_deg: float) -> dict:
    """Textbook rolling-element fault frequencies (Hz) for a stationary outer race."""
    c = d_over_D * np.cos(np.radians(contact_deg))
    return {
        "bpfo": n_balls / 2.0 * shaft_hz * (1 - c),
        "bpfi": n_balls / 2.0 * shaft_hz * (1 + c),
        "bsf": shaft_hz / (2.0 * d_over_D) * (1 - c ** 2),
        "ftf": shaft_hz / 2.0 * (1 - c),
    }


class Bearing(Machine):
    """Rolling bearing: smooth rolling noise and micro-impacts ringing a structural resonance."""

    name = "bearing"
    shift = "vel (shaft speed, rps): target runs faster"
    kinds = _k(
        AnomalyKind("outer_race", "outer-race spall: impacts at BPFO, constant amplitude", "high",
                    level_db=-6.0),
        AnomalyKind("inner_race", "inner-race spall: impacts at BPFI, amplitude-modulated at 1x",
                    "high", level_db=-6.0),
        AnomalyKind("ball", "rolling-element defect: impacts at 2x BSF, modulated at the cage rate",
                    "high", level_db=-6.0),
        AnomalyKind("imbalance", "rotor imbalance: the 1x shaft-rate component grows", "low",
                    level_db=-4.0),
    )

    def sample_unit(self, rng):
        return {"n_balls": int(rng.integers(8, 13)), "d_over_D": float(rng.uniform(0.15, 0.3)),
                "contact_deg": float(rng.uniform(0.0, 15.0)), "res_hz": float(rng.uniform(2800, 4500))}

    def sample_params(self, rng, unit, domain):
        vel = int(rng.choice([8, 10, 12, 14] if domain != "target" else [18, 20, 22]))
        return self.complete({"vel": vel, "loc": str(rng.choice(["A", "B"]))}, unit)

    def complete(self, p, unit):
        freqs = bearing_frequencies(float(p["vel"]), unit["n_balls"], unit["d_over_D"], unit["contact_deg"])
        return {**p, **{k: round(v, 3) for k, v in freqs.items()},
                "attrs": [("vel", f"{int(p['vel'])}"), ("loc", p["loc"])]}

    def _impacts(self, n, sr, rng, rate_hz, mod, kern):
        cyc = dsp.phase_of(dsp.drifting_rate(rate_hz, n, sr, rng, jitter=0.01, knots_per_s=2), sr,
                           rng.uniform())
        t = dsp.events_at_rate(cyc, sr)
        t = t + rng.normal(0.0, 0.0003, len(t))  # slip
        return dsp.ring(dsp.impulse_train(n, sr, t, mod(t) * rng.uniform(0.9, 1.1, len(t))), kern)

    def render(self, p, n, sr, rng, kind, severity):
        u = p["unit"]
        fr = float(p["vel"])
        res = u["res_hz"] * (1.0 if p["loc"] == "A" else 1.12)
        kern = dsp.resonance_kernel(sr, res, 0.0012)
        shaft = dsp.phase_of(dsp.drifting_rate(fr, n, sr, rng, jitter=0.005), sr, rng.uniform())
        rot = dsp.harmonics(shaft, [0.1, 0.05, 0.03], rng)
        rolling = dsp.band_noise(n, sr, rng, 400, 7500, -3.0)
        rough_t = dsp.poisson_times(n / sr, 300.0, rng)
        rough = dsp.ring(dsp.impulse_train(n, sr, rough_t, rng.exponential(1.0, len(rough_t))), kern)
        motor = dsp.harmonics(np.arange(n) / sr * 100.0, [0.2, 0.05], rng)
        base = rot + rolling + 0.6 * _unit_rms(rough) + motor
        r = dsp.rms(base)
        extra = np.zeros(n)
        out = Rendered(base, extra)
        for name, rate, mod in (
            ("outer_race", p["bpfo"], lambda t: np.ones_like(t)),
            ("inner_race", p["bpfi"], lambda t: 0.6 + 0.4 * np.cos(2 * np.pi * fr * t)),
            ("ball", 2 * p["bsf"], lambda t: 0.6 + 0.4 * np.cos(2 * np.pi * p["ftf"] * t)),
        ):
            g = self.gain(kind, name, severity)
            if g:
                extra += g * r * _unit_rms(self._impacts(n, sr, rng, rate, mod, kern))
                out.band_hz = (0.8 * res, 1.2 * res)
        g = self.gain(kind, "imbalance", severity)
        if g:
            extra += g * r * _unit_rms(dsp.harmonics(shaft, [1.0], rng))
            out.band_hz = (0.8 * fr, 1.2 * fr)
        return out


# ---------------------------------------------------------------------------------------------
class Gearbox(Machine):
    """Gearbox: gear-mesh frequency (teeth x shaft rate) and harmonics, sidebands at both shaft rates."""

    name = "gearbox"
    shift = "volt (motor voltage -> shaft speed): target runs faster"
    kinds = _k(
        AnomalyKind("tooth_damage", "broken tooth: an impact once per input-shaft revolution and "
                    "strong mesh sidebands at the input shaft rate", "mid", level_db=-7.0),
        AnomalyKind("wear", "worn flanks: mesh harmonics 2-4 and mesh noise grow", "mid",
                    level_db=-7.0),
        AnomalyKind("misalignment", "shaft misalignment: the 2x input-shaft component grows", "low",
                    level_db=-5.0),
    )

    def sample_unit(self, rng):
        z1 = int(rng.integers(17, 30))
        z2 = int(rng.integers(31, 54))
        while np.gcd(z1, z2) != 1:
            z2 += 1
        return {"z1": z1, "z2": z2, "res_hz": float(rng.uniform(1800, 3200))}

    def sample_params(self, rng, unit, domain):
        volt = float(rng.choice([1.0, 1.5, 2.0] if domain != "target" else [2.5, 3.0]))
        return self.complete({"volt": volt, "wt": int(rng.choice([0, 50, 100, 150]))}, unit)

    def complete(self, p, unit):
        f1 = 10.0 * float(p["volt"])
        return {**p, "shaft1_hz": f1, "shaft2_hz": f1 * unit["z1"] / unit["z2"], "mesh_hz": f1 * unit["z1"],
                "attrs": [("volt", f"{float(p['volt']):.1f}"), ("wt", f"{int(p['wt'])}")]}

    def render(self, p, n, sr, rng, kind, severity):
        u = p["unit"]
        f1 = dsp.drifting_rate(p["shaft1_hz"], n, sr, rng, jitter=0.008)
        c1 = dsp.phase_of(f1, sr, rng.uniform())
        c2 = c1 * u["z1"] / u["z2"] + rng.uniform()
        mesh_c = c1 * u["z1"]
        load = 0.6 + p["wt"] / 150.0
        am = 1.0 + 0.08 * np.sin(2 * np.pi * c1) + 0.06 * np.sin(2 * np.pi * c2)
        mesh = dsp.harmonics(mesh_c, [1.0, 0.35, 0.15], rng) * am * load
        shafts = dsp.harmonics(c1, [0.15], rng) + dsp.harmonics(c2, [0.1], rng)
        noise = dsp.coloured_noise(n, sr, rng, -3.0, 200.0)
        base = mesh + shafts + 0.5 * noise
        r = dsp.rms(base)
        extra = np.zeros(n)
        out = Rendered(base, extra)
        gmf = p["mesh_hz"]
        g = self.gain(kind, "tooth_damage", severity)
        if g:
            t = dsp.events_at_rate(c1, sr)
            hit = dsp.ring(dsp.impulse_train(n, sr, t, 1.0), dsp.resonance_kernel(sr, u["res_hz"], 0.004))
            pulse = np.exp(-((c1 % 1.0) - 0.5) ** 2 / (2 * 0.03 ** 2))
            side = dsp.harmonics(mesh_c, [1.0], rng) * pulse * load
            extra += g * r * (0.5 * _unit_rms(hit) + _unit_rms(side))
            out.band_hz = (gmf - 5 * p["shaft1_hz"], 1.2 * u["res_hz"])
            out.events_s = list(t)
        g = self.gain(kind, "wear", severity)
        if g:
            w = dsp.harmonics(mesh_c, [0.0, 1.0, 0.8, 0.6], rng) + 0.5 * dsp.band_noise(
                n, sr, rng, 1.8 * gmf, 4.5 * gmf)
            extra += g * r * _unit_rms(w)
            out.band_hz = (1.8 * gmf, min(4.5 * gmf, 0.49 * sr))
        g = self.gain(kind, "misalignment", severity)
        if g:
            extra += g * r * _unit_rms(dsp.harmonics(c1, [0.3, 1.0], rng))
            out.band_hz = (0.8 * p["shaft1_hz"], 2.2 * p["shaft1_hz"])
        return out


# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
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


MACHINES: dict[str, Machine] = {
    m.name: m for m in (Fan(), Pump(), Slider(), Valve(), Bearing(), Gearbox(), ToyCar(), ToyTrain())
}
