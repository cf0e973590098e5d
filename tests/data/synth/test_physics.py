"""Physics checks of the machine models, the faults, the recording chain and the background.

The renderer draws the healthy and the faulty machine from identical random streams (and the mix and
background from their own), so the same seed gives the same healthy clip whatever the fault:
``anomalous - normal`` is exactly what the fault changed.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import butter, hilbert, sosfiltfilt, welch

from auscult.data.synth import MACHINES, render_clip, severity_gain, unit_for
from auscult.errors import ConfigError

SR = 16000
DUR = 4.0
KINDS = [(m, k) for m, mach in MACHINES.items() for k in mach.kinds]


def _spectrum(x, sr=SR):
    f = np.fft.rfftfreq(len(x), 1 / sr)
    return f, np.abs(np.fft.rfft(x * np.hanning(len(x))))


def _peak_ratio(f, s, f0, rel=0.01, ref_band=(0.5, 1.5)):
    """Peak magnitude within ±rel of f0 over the median magnitude in [ref_band·f0]."""
    near = (f > f0 * (1 - rel)) & (f < f0 * (1 + rel))
    ref = (f > f0 * ref_band[0]) & (f < f0 * ref_band[1])
    return s[near].max() / np.median(s[ref])


def _envelope_spectrum(x, lo, hi, sr=SR):
    sos = butter(4, [lo, min(hi, 0.49 * sr)], btype="band", fs=sr, output="sos")
    env = np.abs(hilbert(sosfiltfilt(sos, x)))
    env -= env.mean()
    return _spectrum(env, sr)


def _pair(machine, kind, severity=1.0, seed=7, **kw):
    kw.setdefault("duration", DUR)
    normal, ni = render_clip(machine, anomaly=None, seed=seed, return_info=True, **kw)
    anom, ai = render_clip(machine, anomaly=kind, severity=severity, seed=seed, return_info=True, **kw)
    return normal, anom, ni, ai


# -- clip-level properties -----------------------------------------------------------------------
@pytest.mark.parametrize("machine", sorted(MACHINES))
def test_normal_clips_vary_and_are_deterministic(machine):
    a = render_clip(machine, seed=1, duration=1.0)
    b = render_clip(machine, seed=1, duration=1.0)
    c = render_clip(machine, seed=2, duration=1.0)
    assert a.dtype == np.float32 and a.shape == (SR,)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)
    # the healthy machine plays at -30 dBFS (near microphone, +-1 dB) plus its background
    assert 0.01 < np.sqrt(np.mean(a ** 2)) < 0.2 and np.abs(a).max() <= 0.99 + 1e-6


def test_severity_zero_is_normal_and_change_grows():
    assert severity_gain(0.0, -6) == 0.0
    g = [severity_gain(s, -6) for s in (0.1, 0.5, 1.0)]
    assert g[0] < g[1] < g[2] and abs(20 * np.log10(g[2]) + 6) < 1e-9
    for machine, kind in (("fan", "imbalance"), ("gearbox", "tooth_damage"), ("bearing", "outer_race"),
                          ("pump", "clogging")):
        n, a0, _, _ = _pair(machine, kind, severity=0.0)
        assert np.array_equal(n, a0), machine
        d = [np.std(_pair(machine, kind, severity=s)[1] - n) for s in (0.2, 0.6, 1.0)]
        assert d[0] < d[1] < d[2], (machine, kind, d)


def test_bad_arguments_raise_config_errors():
    with pytest.raises(ConfigError, match="unknown machine"):
        render_clip("blender")
    with pytest.raises(ConfigError, match="no anomaly kind"):
        render_clip("fan", anomaly="outer_race")
    with pytest.raises(ConfigError, match="severity"):
        render_clip("fan", anomaly="rub", severity=1.5)


# -- every kind: where its change lands ----------------------------------------------------------
@pytest.mark.parametrize("machine,kind", KINDS)
def test_anomaly_energy_lands_in_recorded_band_and_window(machine, kind):
    normal, anom, ni, ai = _pair(machine, kind)
    assert not ai.peak_limited
    d = anom.astype(np.float64) - normal
    assert np.std(d) > 1e-4, "anomaly at severity 1 must change the clip"
    lo, hi = ai.band_hz
    region = MACHINES[machine].kinds[kind].region
    f, p = welch(d, SR, nperseg=4096)
    in_band = p[(f >= 0.8 * lo) & (f <= 1.25 * hi)].sum() / p.sum()
    assert in_band > 0.6, f"only {in_band:.0%} of the anomaly's energy in {lo:.0f}-{hi:.0f} Hz"
    if region == "low":
        assert hi <= 300
    elif region == "high":
        assert lo >= 2500
    else:
        assert hi > 300 and lo < 2500 * 1.5
    if MACHINES[machine].kinds[kind].localised:
        t0, t1 = ai.onset_s, ai.offset_s
        assert 0 <= t0 < t1 <= DUR
        t = np.arange(len(d)) / SR
        outside = (t < t0 - 0.05) | (t > t1 + 0.1)
        # the room's reverberation tail (rt60 <= 0.5 s) may carry a little past the window
        assert (d[outside] ** 2).sum() < 0.05 * (d ** 2).sum()
    else:
        assert ai.onset_s is None


def test_some_kinds_low_some_high_for_every_layout_machine():
    regions = {m: {k.region for k in mach.kinds.values()} for m, mach in MACHINES.items()}
    assert sum("low" in r for r in regions.values()) >= 6
    assert sum("high" in r for r in regions.values()) >= 6
    assert all(len(mach.kinds) >= 3 for mach in MACHINES.values())


# -- faults act on the machine's own mechanism ---------------------------------------------------
@pytest.mark.parametrize("kind,rate_key", [("outer_race", "bpfo"), ("inner_race", "bpfi"), ("ball", "bsf")])
def test_bearing_fault_frequency_in_envelope_spectrum(kind, rate_key):
    normal, anom, ni, ai = _pair("bearing", kind, params={"vel": 12, "loc": "A"}, background=False)
    lo, hi = ai.band_hz
    rate = ai.params[rate_key] * (2 if kind == "ball" else 1)
    f, e_anom = _envelope_spectrum(anom, lo, hi)
    _, e_norm = _envelope_spectrum(normal, lo, hi)
    assert _peak_ratio(f, e_anom, rate, rel=0.02) > 8
    assert _peak_ratio(f, e_norm, rate, rel=0.02) < 4
    # the strongest envelope line between 3 Hz and 1.5x the fault rate sits at the fault rate
    band = (f > 3) & (f < 1.5 * rate)
    assert abs(f[band][np.argmax(e_anom[band])] - rate) < 0.02 * rate
    if kind == "inner_race":  # amplitude modulation by the load zone: sidebands at BPFI ± 1x
        fr = float(ai.params["vel"])
        assert _peak_ratio(f, e_anom, rate + fr, rel=0.02) > 3
        assert _peak_ratio(f, e_anom, rate - fr, rel=0.02) > 3


@pytest.mark.parametrize("kind", ["outer_race", "inner_race", "ball"])
def test_bearing_defect_rings_the_healthy_machines_resonances(kind):
    """The spall's impacts excite the structure the healthy bearing's micro-impacts already excite:
    the fault's spectrum peaks where the healthy spectrum peaks (its housing modes), and the fault
    rate shows in the envelope of the band around the healthy clip's strongest resonance."""
    unit = unit_for("bearing", "00", 0)
    normal, anom, _, ai = _pair("bearing", kind, params={"vel": 12, "loc": "A"}, unit=unit, background=False)
    f, p_n = welch(normal.astype(np.float64), SR, nperseg=2048)
    _, p_d = welch(anom.astype(np.float64) - normal, SR, nperseg=2048)
    hi = f > 2000
    healthy_peak = f[hi][np.argmax(p_n[hi])]
    fault_peak = f[hi][np.argmax(p_d[hi])]
    modes = [m[0] for m in unit["housing"]]
    nearest = lambda x: min(modes, key=lambda m: abs(m - x))  # noqa: E731
    assert abs(healthy_peak - nearest(healthy_peak)) < 0.03 * nearest(healthy_peak)
    assert abs(fault_peak - nearest(fault_peak)) < 0.03 * nearest(fault_peak)
    # log spectra of the fault and of the healthy machine are strongly correlated above 2 kHz
    assert np.corrcoef(np.log(p_n[hi]), np.log(p_d[hi] + 1e-30))[0, 1] > 0.7
    rate = ai.params["bpfo" if kind == "outer_race" else "bpfi" if kind == "inner_race" else "bsf"]
    rate *= 2 if kind == "ball" else 1
    fe, e = _envelope_spectrum(anom, 0.9 * healthy_peak, 1.1 * healthy_peak)
    assert _peak_ratio(fe, e, rate, rel=0.02) > 6


def test_bearing_frequencies_follow_geometry():
    from auscult.data.synth import bearing_frequencies

    fq = bearing_frequencies(10.0, 9, 0.2, 0.0)
    assert fq["bpfo"] == pytest.approx(9 / 2 * 10 * 0.8)
    assert fq["bpfi"] == pytest.approx(9 / 2 * 10 * 1.2)
    assert fq["bpfo"] + fq["bpfi"] == pytest.approx(9 * 10)
    assert fq["ftf"] == pytest.approx(5 * 0.8)


def test_gearbox_tooth_damage_modulates_the_mesh_at_the_shaft_rate():
    """A damaged tooth amplitude/phase-modulates the machine's own mesh harmonics once per input
    revolution: in the spectrum, sidebands at gmf_k ± n·f1 grow; in the envelope of each mesh
    harmonic's band, the line at f1 grows far above the healthy gearbox's (its eccentricity)."""
    unit = unit_for("gearbox", "00", 0)
    normal, anom, ni, ai = _pair("gearbox", "tooth_damage", params={"volt": 2.0, "wt": 100}, unit=unit,
                                 background=False)
    gmf, f1 = ai.params["mesh_hz"], ai.params["shaft1_hz"]
    assert gmf == pytest.approx(unit["z1"] * f1)
    f, s_norm = _spectrum(normal)
    _, s_anom = _spectrum(anom)
    # the healthy gearbox's strongest line below 2 kHz is the mesh
    band = (f > 50) & (f < 2000)
    assert abs(f[band][np.argmax(s_norm[band])] - gmf) < 0.02 * gmf
    side = lambda s: sum(s[(f > gmf + j * f1 - 0.15 * f1) & (f < gmf + j * f1 + 0.15 * f1)].max() ** 2  # noqa: E731
                         for j in (-3, -2, -1, 1, 2, 3))
    assert side(s_anom) > 4 * side(s_norm), "sidebands around the mesh frequency must grow"
    for k, grows in ((1, 3.0), (2, 1.5)):  # first and (weaker, nearer the noise) second mesh harmonic
        c = k * gmf
        fe, e_a = _envelope_spectrum(anom, c - 4.5 * f1, c + 4.5 * f1)
        _, e_n = _envelope_spectrum(normal, c - 4.5 * f1, c + 4.5 * f1)
        near = (fe > 0.97 * f1) & (fe < 1.03 * f1)
        assert e_a[near].max() > grows * e_n[near].max(), k
        assert _peak_ratio(fe, e_a, f1, rel=0.03) > (8 if k == 1 else 2), k


def test_gearbox_wear_raises_the_mesh_harmonics_not_the_mesh():
    unit = unit_for("gearbox", "01", 0)
    normal, anom, _, ai = _pair("gearbox", "wear", params={"volt": 2.0, "wt": 50}, unit=unit, background=False)
    gmf = ai.params["mesh_hz"]
    f, s_n = _spectrum(normal)
    _, s_a = _spectrum(anom)
    line = lambda s, c: s[(f > 0.98 * c) & (f < 1.02 * c)].max()  # noqa: E731
    assert line(s_a, gmf) == pytest.approx(line(s_n, gmf), rel=0.35)
    for k in (2, 3):
        assert line(s_a, k * gmf) > 3 * line(s_n, k * gmf)


def test_fan_imbalance_raises_one_x_and_modulates_the_blade_pass():
    unit = unit_for("fan", "00", 0)
    normal, anom, ni, ai = _pair("fan", "imbalance", params={"rpm": 1500}, unit=unit, background=False)
    f, s_n = _spectrum(normal)
    _, s_a = _spectrum(anom)
    fr = ai.params["shaft_hz"]
    bpf = fr * unit["blades"]
    assert _peak_ratio(f, s_n, bpf, rel=0.015) > 5
    one_x = (f > fr * 0.97) & (f < fr * 1.03)
    assert s_a[one_x].max() > 5 * s_n[one_x].max()
    # the blade-pass tone's envelope now beats at the shaft rate
    fe, e_a = _envelope_spectrum(anom, bpf - 1.5 * fr, bpf + 1.5 * fr)
    _, e_n = _envelope_spectrum(normal, bpf - 1.5 * fr, bpf + 1.5 * fr)
    near = (fe > 0.95 * fr) & (fe < 1.05 * fr)
    assert e_a[near].max() > 2 * e_n[near].max()


def test_fan_blade_damage_breaks_the_blade_pass_symmetry():
    """Equal blades put tonal energy only at multiples of the blade count; a damaged blade adds the
    shaft orders next to them (the tone's own structure changes) and, through its lost mass, the 1x."""
    unit = unit_for("fan", "00", 0)
    normal, anom, _, ai = _pair("fan", "blade_damage", params={"rpm": 1500}, unit=unit, background=False,
                                duration=10.0)
    f, s_n = _spectrum(normal)
    _, s_a = _spectrum(anom)
    fr, B = ai.params["shaft_hz"], unit["blades"]
    line = lambda s, c: s[(f > 0.997 * c) & (f < 1.003 * c)].max()  # noqa: E731
    gains_db = [20 * np.log10(line(s_a, k * fr) / line(s_n, k * fr)) for k in (B - 1, B + 1, 2 * B - 1, 2 * B + 1)]
    assert np.mean(gains_db) > 3, gains_db
    assert line(s_a, fr) > 3 * line(s_n, fr)


@pytest.mark.parametrize("section", ["00", "01", "02"])
def test_fan_faults_are_not_buried_under_the_flow_noise(section):
    """Guards against fan faults that change only components far below the fan's own flow noise
    (issue 14, session 5b: blade damage used to move the machine's log-mel by < 0.1 dB above 250 Hz).
    Bounds from physics, machine alone at the microphone:
    - imbalance: ISO 21940 balance grades run from G6.3 (good) to G40 and beyond (severe), a factor of
      >= 6.3 in unbalance, i.e. >= 16 dB more 1x force at the same speed;
    - blade damage: one of B <= 7 blades running separated, its self-noise +10 dB (separation-stall
      noise, Brooks, Pope & Marcolini 1989), lifts the rotor's broadband by 10*log10((B-1+10)/B)
      >= 3.6 dB; at severity 0.5 the growth is smaller but present."""
    unit = unit_for("fan", section, 3)

    def broadband_db(x):  # 500-3000 Hz: clear of the shaft orders below and the rub squeal above
        f, p = welch(x.astype(np.float64), SR, nperseg=2048)
        band = (f > 500) & (f < 3000)
        return 10 * np.log10(p[band].sum())

    normal, anom, _, ai = _pair("fan", "imbalance", params={"rpm": 1400}, unit=unit, background=False)
    f, s_n = _spectrum(normal)
    _, s_a = _spectrum(anom)
    fr = ai.params["shaft_hz"]
    one_x = (f > fr * 0.97) & (f < fr * 1.03)
    assert 20 * np.log10(s_a[one_x].max() / s_n[one_x].max()) >= 16.0

    gains = []
    for sev in (0.5, 1.0):
        normal, anom, _, _ = _pair("fan", "blade_damage", severity=sev, params={"rpm": 1400}, unit=unit,
                                   background=False)
        gains.append(broadband_db(anom) - broadband_db(normal))
    assert gains[1] >= 3.6 - 0.5, gains  # 0.5 dB for the estimate's scatter on a 4-s clip
    assert 0.3 < gains[0] < gains[1], gains


def test_pump_vane_pass_and_misalignment_two_x():
    unit = unit_for("pump", "00", 0)
    normal, anom, ni, ai = _pair("pump", "misalignment", params={"rpm": 1500, "load": 2}, unit=unit,
                                 background=False)
    f, s_n = _spectrum(normal)
    _, s_a = _spectrum(anom)
    fr = ai.params["shaft_hz"]
    assert _peak_ratio(f, s_n, fr * unit["vanes"], rel=0.015) > 10
    two_x = (f > 2 * fr * 0.97) & (f < 2 * fr * 1.03)
    assert s_a[two_x].max() > 5 * s_n[two_x].max()


def test_pump_clogging_moves_the_flow_noise_up_and_breaks_the_vane_symmetry():
    unit = unit_for("pump", "01", 0)
    normal, anom, _, ai = _pair("pump", "clogging", params={"rpm": 1500, "load": 2}, unit=unit, background=False)
    f, p_n = welch(normal.astype(np.float64), SR, nperseg=4096)
    _, p_a = welch(anom.astype(np.float64), SR, nperseg=4096)
    sel = (f > 300) & (f < 7000)
    centroid = lambda p: np.sum(f[sel] * p[sel]) / np.sum(p[sel])  # noqa: E731
    assert centroid(p_a) > 1.15 * centroid(p_n)
    fr, Z = ai.params["shaft_hz"], unit["vanes"]
    fs, s_n = _spectrum(normal)
    _, s_a = _spectrum(anom)
    line = lambda s, c: s[(fs > 0.99 * c) & (fs < 1.01 * c)].max()  # noqa: E731
    assert np.median([line(s_a, k * fr) / line(s_n, k * fr) for k in range(1, 2 * Z) if k % Z and k > 2]) > 2


def test_slider_loose_belt_makes_the_speed_unsteady():
    """The whine follows the carriage speed: at the strokes' constant top speed a healthy slider's
    whine is a sharp line; a slipping belt makes the speed (and the whine) wander, smearing it."""
    unit = unit_for("slider", "00", 0)
    normal, anom, _, ai = _pair("slider", "loose_belt", params={"vel": 500, "ac": 0.3}, unit=unit,
                                background=False, duration=6.0)
    top = unit["whine_hz"] + unit["whine_span"] * (1 + unit["speed_trim"])  # whine at full speed

    def sharpness(x):
        f, p = welch(x.astype(np.float64), SR, nperseg=8192)
        band = (f > 0.85 * top) & (f < 1.15 * top)
        return p[band].max() / p[band].mean()

    assert sharpness(normal) > 2 * sharpness(anom), (sharpness(normal), sharpness(anom))


def test_toy_car_whine_tracks_voltage():
    """The commutation whine (harmonics of 3 x motor rate) moves with the supply voltage: the
    clip's most prominent spectral peaks sit on its own motor's harmonic comb."""
    from scipy.signal import find_peaks

    combs = {}
    for spd in (28, 40):
        x, info = render_clip("ToyCar", {"spd": spd, "car": "A1", "mic": 1}, seed=3, duration=DUR,
                              unit=unit_for("ToyCar", "00", 0), background=False, return_info=True)
        f, p = welch(x.astype(np.float64), SR, nperseg=4096)
        c = 3 * info.params["motor_hz"]
        sel = (f > 200) & (f < 3000)
        db = 10 * np.log10(p[sel])
        idx, props = find_peaks(db, prominence=3)
        top = f[sel][idx[np.argsort(props["prominences"])[::-1][:5]]]
        on_comb = [abs(t / c - round(t / c)) * c < max(0.02 * t, 8.0) for t in top]
        assert sum(on_comb) >= 3, (spd, c, top)  # the others: the body's modes
        combs[spd] = c
    assert combs[40] / combs[28] == pytest.approx(40 / 28, rel=1e-6)


def test_valve_clicks_follow_pattern():
    """Pattern 00 opens every second: the click envelope repeats every second (lines at multiples
    of 1 Hz only)."""
    x = render_clip("valve", {"pat": "00"}, seed=2, duration=8.0, background=False)
    f, e = _envelope_spectrum(x, 1500, 4000)
    band = (f > 0.5) & (f < 5)
    peak = f[band][np.argmax(e[band])]
    assert abs(peak - round(peak)) < 0.05 and round(peak) in (1, 2)
    assert _peak_ratio(f, e, 1.0, rel=0.05, ref_band=(0.5, 1.8)) > 5


def test_target_domain_shifts_operating_point():
    for mach in MACHINES.values():
        unit = mach.sample_unit(np.random.default_rng(0))
        src = {mach.sample_params(np.random.default_rng(i), unit, "source")["attrs"].__repr__() for i in range(30)}
        tgt = {mach.sample_params(np.random.default_rng(i), unit, "target")["attrs"].__repr__() for i in range(30)}
        assert not src & tgt, f"{mach.name}: target attributes overlap the source ones"


def test_probe_log_mel_matches_librosa():
    librosa = pytest.importorskip("librosa")
    from auscult.data.synth.difficulty import log_mel

    x = np.random.default_rng(0).standard_normal(SR).astype(np.float32) * 0.1
    ref = librosa.feature.melspectrogram(y=x, sr=SR, n_fft=1024, hop_length=512, n_mels=128, htk=True,
                                         norm=None, power=2.0, pad_mode="reflect")
    np.testing.assert_allclose(log_mel(x, SR), np.log(ref + 1e-8), atol=1e-4)


def test_toy_train_rail_joints_repeat_at_speed_over_spacing():
    unit = unit_for("ToyTrain", "00", 0)
    x, info = render_clip("ToyTrain", {"spd": 8}, seed=4, unit=unit, duration=8.0, background=False,
                          return_info=True)
    rate = info.params["speed_m_s"] / unit["joint_m"]
    f, e = _envelope_spectrum(x, 0.8 * unit["click_hz"], 1.2 * unit["click_hz"])
    band = (f > 0.5) & (f < 1.5 * rate)
    assert abs(f[band][np.argmax(e[band])] - rate) < 0.05 * rate


def test_slider_rail_damage_clicks_once_per_stroke_at_the_dent():
    normal, anom, ni, ai = _pair("slider", "rail_damage", params={"vel": 500, "ac": 0.2}, duration=8.0)
    ev = np.asarray(ai.events_s)
    assert len(ev) >= 4
    # strokes alternate direction, so successive crossings alternate between two gaps that sum
    # to one back-and-forth period
    gaps = np.diff(ev)
    assert np.allclose(gaps[:-2:2] + gaps[1:-1:2], (gaps[0] + gaps[1]), rtol=0.15)
    # each click is where the anomaly component is loud
    d = anom.astype(np.float64) - normal
    for t in ev:
        i = int(t * SR)
        assert np.abs(d[i:i + int(0.01 * SR)]).max() > 0.3 * np.abs(d).max()


@pytest.mark.parametrize("machine,kind", KINDS)
def test_every_kind_is_present_even_in_a_short_clip(machine, kind):
    """An anomalous label must never ship a clip without anomaly content."""
    for seed in range(3):
        normal, anom, _, ai = _pair(machine, kind, severity=0.1, seed=seed, duration=0.3)
        assert np.abs(anom.astype(np.float64) - normal).max() > 1e-4, (machine, kind, seed)


# -- units differ by the same physics ------------------------------------------------------------
@pytest.mark.parametrize("machine", ["fan", "gearbox", "bearing", "pump"])
def test_units_differ_in_the_structure_faults_disturb(machine):
    """Clips of one unit (different clips, same operating point, no background) are closer to each
    other in time-averaged log-mel than to the clips of another unit: units differ by their own
    resonances and harmonic patterns, which a classifier of units learns to read."""
    from auscult.data.synth.difficulty import clip_feature

    params = {"fan": {"rpm": 1300, "mic": 1}, "gearbox": {"volt": 1.5, "wt": 50},
              "bearing": {"vel": 10, "loc": "A"}, "pump": {"rpm": 1500, "load": 2}}[machine]
    feats = {}
    for sec in ("00", "01", "02"):
        unit = unit_for(machine, sec, 0)
        feats[sec] = np.stack([clip_feature(render_clip(machine, params, seed=s, unit=unit, duration=2.0,
                                                        background=False), SR) for s in range(4)])
    within = np.mean([np.linalg.norm(a - b) for v in feats.values() for i, a in enumerate(v) for b in v[i + 1:]])
    between = np.mean([np.linalg.norm(a - b) for s1 in feats for s2 in feats if s1 < s2
                       for a in feats[s1] for b in feats[s2]])
    assert between > 2 * within, (within, between)


# -- recording chain and background --------------------------------------------------------------
def test_far_microphone_is_quieter_and_more_reverberant():
    from auscult.data.synth.render import room_response

    unit = unit_for("fan", "00", 0)
    near, far = room_response(unit, 1, SR), room_response(unit, 2, SR)
    assert np.sum(near ** 2) == pytest.approx(1.0)
    assert near[0] > far[0] * 1.5  # the direct path falls off with distance
    late = int(0.005 * SR)
    drr = lambda h: h[0] ** 2 / np.sum(h[late:] ** 2)  # noqa: E731
    assert drr(near) > 2 * drr(far)
    # the reverberation decays at the unit's RT60 (-60 dB over rt60_s, checked over 20 dB)
    tail = far[int(0.03 * SR):]
    edc = np.cumsum(tail[::-1] ** 2)[::-1]
    edc_db = 10 * np.log10(edc / edc[0])
    t20 = np.argmax(edc_db < -20) / SR
    assert t20 * 3 == pytest.approx(unit["rt60_s"], rel=0.3)


def test_background_is_mixed_at_the_recorded_snr_and_independent_of_the_label():
    for seed, dom in ((3, "source"), (4, "target"), (5, "source")):
        clean, _ = render_clip("gearbox", seed=seed, domain=dom, duration=3.0, background=False, return_info=True)
        mixed, info = render_clip("gearbox", seed=seed, domain=dom, duration=3.0, return_info=True)
        bg = mixed.astype(np.float64) - clean
        snr = 20 * np.log10(np.std(clean) / np.std(bg))
        assert snr == pytest.approx(info.snr_db, abs=0.1)
        assert -6.0 <= info.snr_db <= 6.0
        faulty = render_clip("gearbox", seed=seed, domain=dom, duration=3.0, anomaly="wear")
        faulty_clean = render_clip("gearbox", seed=seed, domain=dom, duration=3.0, anomaly="wear", background=False)
        np.testing.assert_allclose(faulty.astype(np.float64) - faulty_clean, bg, atol=2e-4)


def test_background_is_non_stationary_and_different_in_every_clip():
    from auscult.data.synth.background import PROFILES, render_background

    spectra, crest = [], []
    for seed in range(12):
        x = render_background(4 * SR, SR, np.random.default_rng(seed), PROFILES["source"])
        assert np.std(x) == pytest.approx(1.0, rel=1e-3)
        frames = x[: len(x) // 512 * 512].reshape(-1, 512)
        energy = np.mean(frames ** 2, axis=1)
        crest.append(energy.max() / np.median(energy))
        f, p = welch(x, SR, nperseg=1024)
        spectra.append(10 * np.log10(p + 1e-20))
    # loud events (impacts, babble, machines switching) in most clips
    assert sum(c > 4 for c in crest) >= 6, crest
    # the clips' spectra differ by several dB somewhere (different mixtures)
    diffs = [np.max(np.abs(a - b)[(f > 50) & (f < 7000)]) for i, a in enumerate(spectra) for b in spectra[i + 1:]]
    assert min(diffs) > 6, diffs


def test_each_unit_hears_the_background_at_its_own_level():
    """The SNR is the unit's (its microphone's place in the hall) within a few dB from clip to clip,
    inside the profile's -6..+6 dB; units differ by more than one unit's clips do."""
    from auscult.data.synth.base import SNR_CLIP_SPREAD_DB
    from auscult.data.synth.render import unit_for

    per_unit = []
    for sec in ("00", "01", "02", "03", "04", "05"):
        unit = unit_for("fan", sec, 7)
        snrs = [render_clip("fan", seed=s, unit=unit, duration=0.5, return_info=True)[1].snr_db for s in range(8)]
        assert all(-6.0 <= v <= 6.0 for v in snrs)
        assert max(snrs) - min(snrs) <= 2 * SNR_CLIP_SPREAD_DB + 1e-6
        assert max(snrs) - min(snrs) > 1.0  # it does vary per clip
        per_unit.append(np.mean(snrs))
    assert max(per_unit) - min(per_unit) > 2 * SNR_CLIP_SPREAD_DB, per_unit
