"""Issue 15 item 2: sensor faults are flagged, never scored as machine sound -- in score, fit and
watch (serve: tests/monitor/service/test_service_alerts.py and test_service_real_bundle.py; the
check itself: tests/data/test_quality.py)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from monitor_testlib import SR, WINDOW_S, render, write_wav


def _faulty_clips(d):
    """One clip of each fault (3 s each unless short), and a normal one."""
    x = render(840)
    hiss = (1e-5 * np.random.default_rng(0).standard_normal(3 * SR)).astype(np.float32)  # -100 dBFS
    from auscult.audio import resample

    return {
        "normal": write_wav(d / "normal.wav", x),
        "silent": write_wav(d / "silent.wav", np.zeros(3 * SR, np.float32)),
        "hiss": write_wav(d / "hiss.wav", hiss.astype(np.float32)),
        "short": write_wav(d / "short.wav", x[: int(0.1 * SR)]),
        "clipped": write_wav(d / "clipped.wav", np.clip(40 * x, -1, 1)),
        "dc": write_wav(d / "dc.wav", (x + 0.3).astype(np.float32)),
        "8k": write_wav(d / "8k.wav", resample(x, SR, 8000), sr=8000),
    }


EXPECTED = {"silent": "silent", "hiss": "silent", "short": "too_short", "clipped": "clipped", "dc": "dc_offset",
            "8k": "rate_mismatch"}


def test_score_reports_input_faults_not_anomalies(knn_fit, tmp_path):
    """Before: digital silence scored 'ANOMALY 58'-style, a 0.1 s clip scored, an 8 kHz clip was
    up-sampled into a score. Now each is an input fault row with its code, no score, no decision."""
    from typer.testing import CliRunner

    from auscult.cli import app

    bundle, _, path = knn_fit
    clips = _faulty_clips(tmp_path)
    runner = CliRunner()
    res = runner.invoke(app, ["score", str(path), *map(str, clips.values()), "--json"])
    assert res.exit_code == 3, res.output  # 3: input faults (1: unreadable files, 0: all scored)
    rows = {r["file"].split("/")[-1][:-4]: r for r in json.loads(res.stdout)}
    assert rows["normal"]["status"] == "scored" and rows["normal"]["score"] is not None
    for name, code in EXPECTED.items():
        r = rows[name]
        assert (r["status"], r["fault"], r["score"], r["decision"]) == ("input_fault", code, None, None), r
        assert r["reason"]
    res = runner.invoke(app, ["score", str(path), str(clips["normal"]), str(clips["silent"])])
    assert res.exit_code == 3
    line = [ln for ln in res.stdout.splitlines() if "silent.wav" in ln][0]
    assert "INPUT FAULT (silent)" in line and "ANOMALY" not in line and "normal" not in line.split("silent.wav")[1]
    assert "1 of 2 file(s) are input faults" in res.output
    # the Python API: a typed error with the fault
    from auscult.data.quality import InputFaultError

    with pytest.raises(InputFaultError) as exc:
        bundle.score_file(clips["8k"])
    assert exc.value.fault.code == "rate_mismatch" and exc.value.path == clips["8k"]
    assert runner.invoke(app, ["score", str(path), str(clips["normal"])]).exit_code == 0


def test_fit_refuses_an_all_silent_folder(tmp_path):
    """Before: an all-silent folder trained a model (every normal score 0.0). Now: an error that says so."""
    from auscult.errors import DataError
    from auscult.monitor.fit import FitConfig, fit_bundle

    d = tmp_path / "dead_mic"
    for i in range(6):
        write_wav(d / f"r{i}.wav", np.zeros(3 * SR, np.float32))
    with pytest.raises(DataError, match=r"every usable recording is an input fault.*6 silent of 6.*INPUT FAULT \(silent\)"):
        fit_bundle(d, None, FitConfig(window_s=WINDOW_S))


def test_fit_leaves_faulty_recordings_out_and_lists_them(fan_dir, tmp_path):
    from typer.testing import CliRunner

    from auscult.cli import app

    d = tmp_path / "fan"
    for p in sorted(fan_dir.glob("*.wav")):
        (d / p.name).parent.mkdir(parents=True, exist_ok=True)
        (d / p.name).write_bytes(p.read_bytes())
    write_wav(d / "zz_silent.wav", np.zeros(3 * SR, np.float32))
    write_wav(d / "zz_clipped.wav", np.clip(40 * render(850), -1, 1))
    out = tmp_path / "m.auscult"
    res = CliRunner().invoke(app, ["fit", str(d), "--out", str(out), "--window", str(WINDOW_S), "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout[res.stdout.index("{"):])
    assert sorted((f["path"].split("/")[-1], f["fault"]) for f in rep["input_faults"]) == [
        ("zz_clipped.wav", "clipped"), ("zz_silent.wav", "silent")]
    assert rep["machines"]["fan"]["n_recordings"] == len(list(fan_dir.glob("*.wav")))  # the faults are not in it
    res = CliRunner().invoke(app, ["fit", str(d), "--out", str(out), "--window", str(WINDOW_S)])
    assert res.exit_code == 0, res.output
    assert "left out 2 recording(s) as input faults" in res.stdout and "INPUT FAULT (silent)" in res.stdout


def test_watch_flags_near_silence_and_a_missing_band_instead_of_scoring(knn_fit, tmp_path):
    """Before: a near-silent file (a dead microphone's hiss, not exact zeros) was scored window by
    window, and an 8 kHz file was up-sampled and scored. Now: input_fault events, the file skipped
    with the fault's code, nothing in the k-of-n rule."""
    from auscult.monitor.stream import WatchConfig, watch

    bundle = knn_fit[0]
    d = tmp_path / "in"
    clips = _faulty_clips(d)
    clips["short"].unlink()  # shorter than a window: watch's own too_short (tests/monitor/test_stream.py)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        evs = list(watch(bundle, d, config=WatchConfig()))
    by = {}
    for e in evs:
        if "source" in e:
            by.setdefault(e["source"].split("/")[-1][:-4], []).append(e)
    assert any(e["type"] == "window" for e in by["normal"])
    for name in ("silent", "hiss", "clipped", "dc", "8k"):
        kinds = [e["type"] for e in by[name]]
        assert "window" not in kinds, (name, by[name])
        skipped = [e for e in by[name] if e["type"] == "skipped"]
        assert len(skipped) == 1 and skipped[0]["code"] == EXPECTED[name], by[name]
    assert [e["code"] for e in by["hiss"] if e["type"] == "input_fault"] == ["silent"]  # one per run of windows
    end = evs[-1]
    assert end["files"] == 6 and end["files_scored"] == 1 and end["skipped"] == 5
    assert end["input_fault_windows"] > 0 and end["anomalous_windows"] <= end["windows"]


def test_watch_stream_with_a_dead_stretch(knn_fit):
    """A live stream whose microphone goes near-silent for a while: one input_fault event, those
    windows are not scored (and not anomalies), scoring resumes when the sound is back."""
    import io

    from auscult.monitor.stream import WatchConfig, watch

    bundle = knn_fit[0]
    x = np.concatenate([render(860, duration=3.0), np.float32(3e-5) * np.sign(render(861, duration=3.0)),
                        render(862, duration=3.0)])
    pcm = np.round(np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()
    evs = list(watch(bundle, io.BytesIO(pcm), config=WatchConfig(rate=SR)))
    faults = [e for e in evs if e["type"] == "input_fault"]
    assert [f["code"] for f in faults] == ["silent"] and 2.0 <= faults[0]["time"] <= 3.5
    wins = [e for e in evs if e["type"] == "window"]
    assert wins and all(not (3.0 <= w["time"] and w["end"] <= 6.0) for w in wins)
    assert any(w["time"] >= 6.0 for w in wins)
    # 8 kHz on stdin lacks the model's band: not read, one skipped event
    evs = list(watch(bundle, io.BytesIO(pcm[: 4 * SR]), config=WatchConfig(rate=8000)))
    assert [(e["type"], e.get("code")) for e in evs[:-1]] == [("skipped", "rate_mismatch")]
