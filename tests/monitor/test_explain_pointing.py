"""Does the summary line of ``auscult explain`` point at the fault? (the pointing game of
benchmarks/bench_localisation.py on one generated case, seconds not minutes)

Normal audio of a plant has loud, short transients from other machines that ring at a different
frequency each time. A fault -- here a steady 4 kHz squeal 8 dB above its band between 1.2 s and
1.9 s -- must win over such a transient in the same clip: the summary's time must fall inside the
fault's window and its band inside the fault's band. With the map divided by the band's mean
normal level (as shipped before ``tail_map``) the transient won.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from monitor_testlib import SR, write_wav

DUR = 3.0
FAULT_T = (1.2, 1.9)
FAULT_HZ = 4000.0


def _normal(seed: int) -> np.ndarray:
    """Pink-ish noise + a machine hum + 3-6 transients ringing somewhere in 400-2500 Hz."""
    rng = np.random.default_rng(seed)
    n = int(DUR * SR)
    t = np.arange(n) / SR
    spec = np.fft.rfft(rng.standard_normal(n)) / np.sqrt(np.maximum(np.fft.rfftfreq(n, 1 / SR), 50.0) / 50.0)
    x = np.fft.irfft(spec, n)
    x = x / x.std() + 0.5 * np.sin(2 * np.pi * 120 * t) + 0.3 * np.sin(2 * np.pi * 240 * t)
    for _ in range(int(rng.integers(3, 7))):
        t0 = rng.uniform(0.1, DUR - 0.2)
        f = rng.uniform(400, 2500)
        tt = t - t0
        ring = np.where(tt >= 0, np.exp(-np.maximum(tt, 0) / rng.uniform(0.01, 0.05)), 0.0)
        x += rng.uniform(3.0, 8.0) * ring * np.sin(2 * np.pi * f * tt)
    return (0.05 * x).astype(np.float32)


def _band_level(x: np.ndarray, lo: float, hi: float) -> float:
    s = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / SR)
    return float(s[(f >= lo) & (f <= hi)].sum())


@pytest.fixture(scope="module")
def pointing_bundle(tmp_path_factory):
    from auscult.monitor.fit import FitConfig, fit_bundle

    d = tmp_path_factory.mktemp("pointing") / "machine"
    for i in range(24):  # a quarter (6 clips) held out: the threshold and the map's reference
        write_wav(d / f"rec_{i:02d}.wav", _normal(i))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_bundle(d, None, FitConfig(method="logmel_knn", window_s=DUR))[0]


def _faulty(seed: int) -> np.ndarray:
    x = _normal(seed).astype(np.float64)
    rng = np.random.default_rng(seed + 1)
    n = x.size
    t = np.arange(n) / SR
    # a loud transient outside the fault window, of the middling size normal clips have
    tt = t - 0.5
    x += 0.05 * 5.0 * np.where(tt >= 0, np.exp(-np.maximum(tt, 0) / 0.03), 0.0) * np.sin(2 * np.pi * 900 * tt)
    # the fault: a steady squeal 8 dB above the normal level of its band
    gate = ((t >= FAULT_T[0]) & (t <= FAULT_T[1])).astype(float)
    sq = np.sin(2 * np.pi * FAULT_HZ * t + rng.uniform(0, 6.28))
    seg = slice(int(FAULT_T[0] * SR), int(FAULT_T[1] * SR))
    lo, hi = FAULT_HZ * 0.97, FAULT_HZ * 1.03
    want = _band_level(x[seg], lo, hi) * 10 ** (8 / 10)
    sq *= np.sqrt(want / max(_band_level(sq[seg], lo, hi), 1e-20))
    return (x + gate * sq).astype(np.float32)


def _hits(e) -> tuple[bool, bool]:
    k = int(np.argmin(np.abs(e.freqs - FAULT_HZ)))  # the fault's band, widened by one band each side
    band = (e.freqs[max(0, k - 1)], e.freqs[min(len(e.freqs) - 1, k + 1)])
    return (FAULT_T[0] <= e.peak_time_s <= FAULT_T[1]), (band[0] <= e.peak_band_hz <= band[1])


def test_summary_line_points_at_the_fault_not_at_a_normal_transient(pointing_bundle):
    from auscult.monitor.explain import frame_curve

    _, mm = pointing_bundle.model(None)
    assert {"tail_loc", "tail_scale", "frame_q99"} <= set(mm.calibration)
    hits = []
    for seed in (100, 101, 102):
        e = pointing_bundle.explain_waveform(_faulty(seed), SR)
        np.testing.assert_allclose(e.frame_scores, frame_curve(e.tf_map))
        hits.append(_hits(e))
    assert all(t and b for t, b in hits), hits


def test_the_mean_scaled_map_falls_for_the_transient(pointing_bundle):
    """Control: the earlier calibration (divide by the band's mean normal level, peak frame's brightest
    cell) on the same clips points at the transient -- so the test above can fail."""
    from auscult.monitor.explain import calibrated_map, frame_curve, interior_frames

    _, mm = pointing_bundle.model(None)
    fc = mm.feature_config
    misses = 0
    for seed in (100, 101, 102):
        x = _faulty(seed)
        t = mm.explain_wave(x)
        keep = interior_frames(len(t.times), x.shape[0], fc.n_fft, fc.hop_length)
        tf = calibrated_map(t.tf_map[:, keep], mm.calibration["band_scale"])
        c = frame_curve(tf)
        p = int(np.argmax(c))
        misses += not (FAULT_T[0] <= t.times[keep][p] <= FAULT_T[1])
    assert misses >= 2


def test_a_normal_clip_stays_near_its_normal_maximum(pointing_bundle):
    e = pointing_bundle.explain_waveform(_normal(200), SR)
    assert np.quantile(e.tf_map, 0.99) < 1.5


def test_a_bundle_without_the_tail_reference_still_explains(pointing_bundle):
    """Bundles written before ``tail_loc``/``tail_scale`` existed keep the mean-level division."""
    import copy

    from auscult.monitor.explain import calibrated_map, frame_curve, interior_frames

    b = copy.copy(pointing_bundle)
    name, mm = b.model(None)
    mm2 = copy.copy(mm)
    mm2.calibration = {k: v for k, v in mm.calibration.items() if not k.startswith("tail_")}
    b.models = {name: mm2}
    x = _faulty(100)
    e = b.explain_waveform(x, SR)
    assert "divided per band" in e.method and "highest level" not in e.method
    assert e.peak_time_s is not None and e.peak_band_hz is not None
    np.testing.assert_allclose(e.frame_scores, frame_curve(e.tf_map))
    new = pointing_bundle.explain_waveform(x, SR)
    assert "highest level" in new.method and not np.allclose(new.tf_map, e.tf_map)
    fc = mm.feature_config
    raw = mm.explain_wave(x)
    keep = interior_frames(len(raw.times), x.shape[0], fc.n_fft, fc.hop_length)
    np.testing.assert_allclose(e.tf_map, calibrated_map(raw.tf_map[:, keep], mm.calibration["band_scale"]))
