"""The one input-quality check (auscult.data.quality): each fault on a generated signal, its limit
from both sides, and real DCASE / MIMII clips never tripping it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from auscult.data.quality import FAULT_CODES, LIMITS, InputFault, InputFaultError, check_rate, check_wave, measure

SR = 16000


def _noise(seconds=2.0, dbfs=-30.0, seed=0):
    x = np.random.default_rng(seed).standard_normal(int(seconds * SR))
    return (x / np.sqrt(np.mean(x ** 2)) * 10 ** (dbfs / 20)).astype(np.float32)


def test_machine_sound_passes():
    assert check_wave(_noise(), SR, window_s=2.0, min_samples=400, model_rate=SR) is None


@pytest.mark.parametrize("dbfs,fault", [(-69.0, None), (-71.0, "silent"), (-120.0, "silent")])
def test_silence_limit(dbfs, fault):
    f = check_wave(_noise(dbfs=dbfs), SR)
    assert (f.code if f else None) == fault
    if f:
        assert "dBFS" in f.reason and f.measured["rms_dbfs"] == pytest.approx(dbfs, abs=0.1)


def test_digital_silence_and_a_stuck_sensor_are_silent():
    f = check_wave(np.zeros(SR, np.float32), SR)
    assert f.code == "silent" and "digital silence" in f.reason and f.measured["rms_dbfs"] is None
    f = check_wave(np.full(SR, 0.4, np.float32), SR)  # stuck at a constant value: no signal around it
    assert f.code == "silent" and "constant" in f.reason
    assert check_wave(np.zeros(SR, np.int16), SR).code == "silent"  # integer PCM


def test_clipping_limit():
    x = _noise(dbfs=-20.0)
    n = x.size
    y = x.copy()
    y[: int(0.005 * n)] = 1.0                      # 0.5 % at the rail: a loud knock, not saturation
    assert check_wave(y, SR) is None
    y[: int(0.02 * n)] = -1.0                      # 2 %: saturated
    f = check_wave(y, SR)
    assert f.code == "clipped" and f.measured["clipped_fraction"] == pytest.approx(0.02, abs=1e-4)
    assert check_wave(np.clip(20 * x, -1, 1), SR).code == "clipped"
    pcm = np.clip(np.round(20 * x * 32768), -32768, 32767).astype(np.int16)  # int16 at its rails
    assert check_wave(pcm, SR).code == "clipped"


def test_dc_offset_limit():
    x = _noise(dbfs=-30.0)
    assert check_wave(x + 0.04, SR) is None
    f = check_wave(x - 0.06, SR)
    assert f.code == "dc_offset" and f.measured["dc"] == pytest.approx(-0.06, abs=2e-3)


def test_too_short_against_the_window_and_the_method_minimum():
    x = _noise(seconds=0.1)
    f = check_wave(x, SR, window_s=1.0)
    assert f.code == "too_short" and f.measured["min_duration_s"] == pytest.approx(0.5)
    assert check_wave(_noise(seconds=0.5), SR, window_s=1.0) is None  # half a window is enough
    f = check_wave(_noise(seconds=0.2), SR, min_samples=8000, model_rate=SR)
    assert f.code == "too_short" and f.measured["min_duration_s"] == pytest.approx(0.5)


def test_rate_mismatch_is_a_missing_band_not_any_other_rate():
    assert check_rate(8000, 16000).code == "rate_mismatch"
    assert "4000 Hz" in check_rate(8000, 16000).reason
    assert check_rate(48000, 16000) is None and check_rate(16000, 16000) is None
    # a model fitted on 8 kHz recordings (up-sampled to 16 kHz) takes 8 kHz clips; 4 kHz ones lack its band
    assert check_rate(8000, 16000, training_rates=[8000]) is None
    assert check_rate(4000, 16000, training_rates=[8000]).measured["band_rate"] == 8000
    f = check_wave(_noise(), 8000, model_rate=16000)
    assert f.code == "rate_mismatch"


def test_order_and_the_typed_error():
    f = check_wave(np.zeros(10, np.float32), SR, window_s=1.0)  # short and silent: too short first
    assert f.code == "too_short" and FAULT_CODES.index("too_short") == 0
    err = InputFaultError("x.wav", InputFault("silent", "-90 dBFS"))
    from auscult.errors import AudioError, DataError

    assert isinstance(err, AudioError) and isinstance(err, DataError)
    assert "x.wav" in str(err) and "INPUT FAULT (silent)" in str(err) and "microphone" in str(err)
    assert err.fault.to_dict()["status"] == "input_fault"
    assert math.isinf(measure(np.zeros(4))["rms_dbfs"])


def test_real_dcase_and_mimii_clips_never_trip_the_check(shared_data):
    """Every real clip in ../shared/data (DCASE 2020, 2021 gearbox, 2023, raw 8-channel MIMII) at its
    own rate, against a 16 kHz model with a 10 s window, is machine sound. Also prints the margins."""
    import soundfile as sf

    files = sorted(shared_data.rglob("*.wav"))
    assert len(files) >= 40, files[:3]
    worst = {"rms_dbfs": math.inf, "clipped_fraction": 0.0, "dc": 0.0}
    for p in files:
        x, sr = sf.read(str(p), dtype="float32", always_2d=True)
        mono = x.mean(axis=1)
        f = check_wave(mono, sr, window_s=10.0, min_samples=SR, model_rate=16000)
        assert f is None, (p, f)
        m = measure(mono)
        worst = {"rms_dbfs": min(worst["rms_dbfs"], m["rms_dbfs"]),
                 "clipped_fraction": max(worst["clipped_fraction"], m["clipped_fraction"]),
                 "dc": max(worst["dc"], abs(m["dc"]))}
    assert worst["rms_dbfs"] > LIMITS.silent_dbfs + 20  # a wide margin, not a threshold tuned to the data
    assert worst["clipped_fraction"] < LIMITS.clip_fraction / 10 and worst["dc"] < LIMITS.dc_offset / 100
    print(f"{len(files)} real clips; quietest {worst['rms_dbfs']:.1f} dBFS, most clipped "
          f"{worst['clipped_fraction']:.2g}, largest |DC| {worst['dc']:.2g}")
