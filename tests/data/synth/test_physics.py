"""Physics checks of the machine models and the anomaly kinds.

The renderer uses separate random streams for the machine, the mix and the background, so the same
seed gives the same healthy clip whatever the anomaly: ``anomalous - normal`` is the anomaly alone.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import hilbert, sosfiltfilt, butter, welch

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
    assert 0.02 < np.sqrt(np.mean(a ** 2)) < 0.2 and np.abs(a).max() <= 0.99 + 1e-6


def test_severity_zero_is_normal_and_gain_grows():
    assert severity_gain(0.0, -6) == 0.0
    g = [severity_gain(s, -6) for s in (0.1, 0.5, 1.0)]
    assert g[0] < g[1] < g[2] and abs(20 * np.log10(g[2]) + 6) < 1e-9
    n, a0, _, _ = _pair("fan", "imbalance", severity=0.0)
    assert np.array_equal(n, a0)
    d = [np.std(_pair("fan", "imbalance", severity=s)[1] - n) for s in (0.2, 0.6, 1.0)]
    assert d[0] < d[1] < d[2]


def test_bad_arguments_raise_config_errors():
    with pytest.raises(ConfigError, match="unknown machine"):
        render_clip("blender")
    with pytest.raises(ConfigError, match="no anomaly kind"):
        render_clip("fan", anomaly="outer_race")
    with pytest.raises(ConfigError, match="severity"):
        render_clip("fan", anomaly="rub", severity=1.5)


# -- every kind: where its energy lands ----------------------------------------------------------
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
        assert (d[outside] ** 2).sum() < 0.05 * (d ** 2).sum()
    else:
        assert ai.onset_s is None


def test_some_kinds_low_some_high_for_every_layout_machine():
    regions = {m: {k.region for k in mach.kinds.values()} for m, mach in MACHINES.items()}
    assert sum("low" in r for r in regions.values()) >= 6
    assert sum("high" in r for r in regions.values()) >= 6
    assert all(len(mach.kinds) >= 3 for mach in MACHINES.values())


# -- machine-specific physics --------------------------------------------------------------------
@pytest.mark.parametrize("kind,rate_key", [("outer_race", "bpfo"), ("inner_race", "bpfi"), ("ball", "bsf")])
def test_bearing_fault_frequency_in_envelope_spectrum(kind, rate_key):
    normal, anom, ni, ai = _pair("bearing", kind, params={"vel": 12, "loc": "A"})
    lo, hi = ai.band_hz
    rate = ai.params[rate_key] * (2 if kind == "ball" else 1)
    f, e_anom = _envelope_spectrum(anom, lo, hi)
    _, e_norm = _envelope_spectrum(normal, lo, hi)
    assert _peak_ratio(f, e_anom, rate, rel=0.02) > 8
    assert _peak_ratio(f, e_norm, rate, rel=0.02) < 4
    # the strongest envelope line below 1.5x the fault rate sits at the fault rate
    band = (f > 3) & (f < 1.5 * rate)
    assert abs(f[band][np.argmax(e_anom[band])] - rate) < 0.02 * rate
    if kind == "inner_race":  # amplitude modulation by the shaft: sidebands at BPFI ± 1x
        fr = float(ai.params["vel"])
        assert _peak_ratio(f, e_anom, rate + fr, rel=0.02) > 3
        assert _peak_ratio(f, e_anom, rate - fr, rel=0.02) > 3


def test_bearing_frequencies_follow_geometry():
    from auscult.data.synth import bearing_frequencies

    fq = bearing_frequencies(10.0, 9, 0.2, 0.0)
    assert fq["bpfo"] == pytest.approx(9 / 2 * 10 * 0.8)
    assert fq["bpfi"] == pytest.approx(9 / 2 * 10 * 1.2)
    assert fq["bpfo"] + fq["bpfi"] == pytest.approx(9 * 10)
    assert fq["ftf"] == pytest.approx(5 * 0.8)


def test_gearbox_mesh_frequency_and_damage_sidebands():
    unit = unit_for("gearbox", "00", 0)
    normal, anom, ni, ai = _pair("gearbox", "tooth_damage", params={"volt": 2.0, "wt": 100}, unit=unit)
    gmf, f1 = ai.params["mesh_hz"], ai.params["shaft1_hz"]
    assert gmf == pytest.approx(unit["z1"] * f1)
    f, s_norm = _spectrum(normal)
    _, s_anom = _spectrum(anom)
    assert abs(f[(f > 50) & (f < 2000)][np.argmax(s_norm[(f > 50) & (f < 2000)])] - gmf) < 0.02 * gmf
    ratio_n = max(_peak_ratio(f, s_norm, gmf + k * f1, rel=0.004) for k in (-1, 1))
    ratio_a = min(_peak_ratio(f, s_anom, gmf + k * f1, rel=0.004) for k in (-2, -1, 1, 2))
    assert ratio_a > 2 * ratio_n, "tooth damage must raise the mesh sidebands at the input shaft rate"


def test_fan_blade_pass_and_imbalance():
    unit = unit_for("fan", "00", 0)
    normal, anom, ni, ai = _pair("fan", "imbalance", params={"rpm": 1500}, unit=unit)
    f, s_n = _spectrum(normal)
    _, s_a = _spectrum(anom)
    bpf = 1500 / 60 * unit["blades"]
    assert _peak_ratio(f, s_n, bpf, rel=0.015) > 5
    one_x = (f > 1500 / 60 * 0.97) & (f < 1500 / 60 * 1.03)
    assert s_a[one_x].max() > 5 * s_n[one_x].max()


def test_pump_vane_pass_and_misalignment_two_x():
    unit = unit_for("pump", "00", 0)
    normal, anom, ni, ai = _pair("pump", "misalignment", params={"rpm": 1500, "load": 2}, unit=unit)
    f, s_n = _spectrum(normal)
    _, s_a = _spectrum(anom)
    assert _peak_ratio(f, s_n, 1500 / 60 * unit["vanes"], rel=0.015) > 10
    two_x = (f > 50 * 0.97) & (f < 50 * 1.03)
    assert s_a[two_x].max() > 5 * s_n[two_x].max()


def test_toy_car_whine_tracks_voltage():
    peaks = []
    for spd in (28, 40):
        x = render_clip("ToyCar", {"spd": spd, "car": "A1"}, seed=3, duration=DUR, background=False)
        f, s = _spectrum(x)
        band = (f > 200) & (f < 1200)
        peaks.append(f[band][np.argmax(s[band])])
    assert peaks[1] / peaks[0] == pytest.approx(40 / 28, rel=0.05)


def test_valve_clicks_follow_pattern():
    """Pattern 00 opens every second: the click envelope repeats at 1 Hz."""
    x = render_clip("valve", {"pat": "00"}, seed=2, duration=8.0, background=False)
    f, e = _envelope_spectrum(x, 1500, 4000)
    band = (f > 0.5) & (f < 5)
    assert abs(f[band][np.argmax(e[band])] - 1.0) < 0.05


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
