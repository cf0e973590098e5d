"""auscult fit: finding recordings, cutting, holding out, choosing the detector, setting the threshold."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from auscult.errors import ConfigError, DataError
from auscult.monitor.fit import FitConfig, calibrate_threshold, choose_method, discover_recordings, fit_bundle

from monitor_testlib import SR, WINDOW_S, render, write_wav


def test_discovery_layouts_and_skips(tmp_path):
    one = tmp_path / "press"
    write_wav(one / "a.wav", render(1, duration=1.0))
    write_wav(one / "b.flac", render(2, duration=1.0))
    found, skipped = discover_recordings(one)
    assert list(found) == ["press"] and len(found["press"]) == 2 and not skipped
    assert list(discover_recordings(one, machine="press-7")[0]) == ["press-7"]

    multi = tmp_path / "plant"
    write_wav(multi / "pump-1" / "day1" / "x.wav", render(3, duration=1.0))
    write_wav(multi / "fan-2" / "y.wav", render(4, duration=1.0))
    # DCASE-named test / anomaly clips are not training data: skipped and reported
    write_wav(multi / "fan-2" / "section_00_source_test_anomaly_0001_spd_1400_mic_1.wav", render(5, duration=1.0))
    write_wav(multi / "fan-2" / "section_00_source_test_normal_0002_spd_1400_mic_1.wav", render(6, duration=1.0))
    (multi / "fan-2" / "notes.mp3").write_bytes(b"ID3")
    found, skipped = discover_recordings(multi)
    assert sorted(found) == ["fan-2", "pump-1"]
    assert [p.name for p in found["fan-2"]] == ["y.wav"]
    reasons = {p.split("/")[-1]: why for p, why in skipped}
    assert "anomaly" in reasons["section_00_source_test_anomaly_0001_spd_1400_mic_1.wav"]
    assert "test clip" in reasons["section_00_source_test_normal_0002_spd_1400_mic_1.wav"]
    assert "convert" in reasons["notes.mp3"]
    with pytest.raises(ConfigError, match="single machine"):
        discover_recordings(multi, machine="x")
    bad = tmp_path / "bad name!"
    write_wav(bad / "a.wav", render(1, duration=1.0))
    with pytest.raises(ConfigError, match="rename the folder or pass --machine"):
        discover_recordings(bad)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no normal"):
        discover_recordings(tmp_path / "empty")
    with pytest.raises(DataError, match="not found"):
        discover_recordings(tmp_path / "nowhere")


def test_manifest_input(tmp_path):
    for i in range(2):
        write_wav(tmp_path / "audio" / f"r{i}.wav", render(10 + i, duration=1.0))
    (tmp_path / "m.csv").write_text("path,machine,split,label\naudio/r0.wav,comp-1,train,normal\n"
                                    "audio/r1.wav,comp-1,test,anomaly\n")
    found, skipped = discover_recordings(tmp_path / "m.csv")
    assert {m: [p.name for p in ps] for m, ps in found.items()} == {"comp-1": ["r0.wav"]}
    assert len(skipped) == 1 and "r1.wav" in skipped[0][0]


def test_choose_method_by_data_size():
    # the default: bandstats at every size (measured ahead of the autoencoder up to 300 ten-second
    # clips = 600 windows of 5 s, and the rule does not switch beyond what was measured)
    for n in (5, 199, 200, 600, 100_000):
        kind, why = choose_method(n, FitConfig())
        assert kind == "bandstats" and str(n) in why and "measured" in why
    # --min-net-windows opts in to the autoencoder from that many windows on
    cfg = FitConfig(min_net_windows=60)
    kind, why = choose_method(59, cfg)
    assert kind == "bandstats" and "59" in why
    kind, why = choose_method(60, cfg)
    assert kind == "autoencoder" and "60" in why
    for bad in (0, -3, True, 2.5, "200"):
        with pytest.raises(ConfigError, match="min_net_windows"):
            FitConfig(min_net_windows=bad)
    assert choose_method(10, FitConfig(method="autoencoder"))[0] == "autoencoder"
    with pytest.raises(ConfigError, match="magic"):
        FitConfig(method="magic")
    assert choose_method(5, FitConfig(method="clsia"))[0] == "clsia"  # every registered method is a choice


def test_knn_fit_report_holds_out_recordings(knn_fit):
    bundle, report, _ = knn_fit
    r = report.machines["fan"]
    assert r["detector"] == "logmel_knn" and r["detector_reason"] == "chosen with --method logmel_knn"
    # 16 recordings x 3 s, 1.5 s windows: 12 fit recordings -> 24 windows, 4 held out -> 8 windows
    assert (r["n_recordings"], r["fit_windows"], r["calibration_windows"]) == (16, 24, 8)
    assert "12 recordings fit, 4 held out" in r["split"]
    # 8 held-out scores cannot measure 1 %: the gamma extrapolation is used and says so
    assert r["threshold_method"] == "gamma" and r["expected_false_alarm_rate"] == pytest.approx(0.01)
    assert "extrapolated" in bundle.models["fan"].threshold["note"]
    assert bundle.window_s == WINDOW_S and bundle.hop_s == WINDOW_S / 2


def test_auto_fits_bandstats_on_every_recording_with_leave_one_recording_out_threshold(fan_dir):
    """auto on 16 short recordings: bandstats, no quarter held out; the threshold comes from each
    window scored by a model fitted without its recording, and a training window scored again gets
    exactly that score."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b, rep = fit_bundle(fan_dir, None, FitConfig(window_s=WINDOW_S))
    r = rep.machines["fan"]
    assert r["detector"] == "bandstats" and "measured best" in r["detector_reason"]
    assert (r["n_recordings"], r["fit_windows"], r["calibration_windows"]) == (16, 32, 32)
    assert r["calibration"] == "leave-one-recording-out" and "all 16 recordings fit" in r["split"]
    method = b.models["fan"].method
    ref = method.reference_scores()
    # 32 scores cannot measure 1 %: the gamma extrapolation, on exactly those scores
    assert r["threshold_method"] == "gamma" and b.models["fan"].threshold["n_scores"] == 32
    # heavy-tailed leave-one-out scores: the gamma's location is fixed at the smallest score
    assert b.models["fan"].threshold["params"]["loc_rule"] == "min"
    assert b.models["fan"].threshold["params"]["loc"] == pytest.approx(float(ref.min()))
    assert b.models["fan"].threshold["value"] > np.median(ref)
    # leave-one-recording-out: refit without recording 0 (its two windows) and score them
    from auscult.encoders import EmbeddingDetector
    from auscult.monitor.bundle import cut_windows
    from auscult.audio import AudioConfig, decode_audio

    files = sorted(fan_dir.glob("*.wav"))
    waves = [decode_audio(f, AudioConfig(sample_rate=SR)) for f in files]
    n = int(round(WINDOW_S * SR))
    wins = [[x[a:c] for a, c in cut_windows(x.shape[0], n, n)] for x in waves]
    x = method.encoder.embed([w for ws in wins for w in ws])
    # default bandstats: a Mahalanobis member on the band means (columns 0-31) and one on the flux (32-63)
    members = method.detector.members
    assert [m.backend_spec["name"] for m in members] == ["selective_mahalanobis"] * 2
    for m, (a, c) in zip(members, [(0, 32), (32, 64)]):
        alone = EmbeddingDetector({"name": "logmel_stats"}, backend=dict(m.backend_spec)).fit_embeddings(x[2:, a:c])
        np.testing.assert_allclose(alone.score_embeddings(x[:2, a:c]), m.normal_scores_[:2], rtol=1e-9)
    # the fused reference scores are the z-fusion of the members' leave-one-recording-out scores
    from auscult.backends import ScoreFusion

    cols = np.stack([m.normal_scores_ for m in members], axis=1)
    np.testing.assert_allclose(ScoreFusion("z").fit(cols).fuse(cols), ref, rtol=1e-9)
    # a fresh window scores through the bundle like the members fitted on all 32 windows, fused
    fresh = render(777)[:n]
    e = method.encoder.embed([fresh])
    full = [EmbeddingDetector({"name": "logmel_stats"}, backend=dict(m.backend_spec)).fit_embeddings(x[:, a:c])
            for m, (a, c) in zip(members, [(0, 32), (32, 64)])]
    want = ScoreFusion("z").fit(cols).fuse(np.stack([f.score_embeddings(e[:, a:c]) for f, (a, c)
                                                     in zip(full, [(0, 32), (32, 64)])], axis=1))
    np.testing.assert_allclose(b.models["fan"].score_waves([fresh]), want, rtol=1e-9)


def test_single_long_recording_is_split_in_time(tmp_path):
    x = np.concatenate([render(40 + i) for i in range(4)])  # 12 s
    write_wav(tmp_path / "line" / "long.wav", x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b, rep = fit_bundle(tmp_path / "line", None, FitConfig(window_s=1.0, calibration_fraction=0.5,
                                                               method="logmel_knn"))
    r = rep.machines["line"]
    assert r["split"].startswith("one recording") and (r["fit_windows"], r["calibration_windows"]) == (6, 6)
    # auto (bandstats) fits all 12 windows and leaves each tenth of the recording out in turn for its threshold
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b, rep = fit_bundle(tmp_path / "line", None, FitConfig(window_s=1.0, calibration_fraction=0.5))
    r = rep.machines["line"]
    assert r["detector"] == "bandstats" and r["split"].startswith("one recording, all fit")
    assert (r["fit_windows"], r["calibration_windows"]) == (12, 12)


def test_any_rate_and_channel_count(tmp_path):
    """A 44.1 kHz stereo folder fits into a 16 kHz bundle; a corrupt file is skipped and reported."""
    from auscult.audio import resample

    d = tmp_path / "stereo"
    for i in range(8):
        x = resample(render(60 + i, duration=2.0), SR, 44100)
        write_wav(d / f"r{i}.wav", np.stack([x, 0.5 * x], axis=1), sr=44100)
    (d / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b, rep = fit_bundle(d, None, FitConfig(window_s=1.0, calibration_fraction=0.4))
    assert b.sample_rate == SR and rep.machines["stereo"]["n_recordings"] == 8
    assert rep.machines["stereo"]["source_sample_rates"] == [44100]
    assert rep.machines["stereo"]["source_channels"] == [2]
    assert [p.endswith("broken.wav") for p, _ in rep.skipped] == [True]


def test_fit_reads_a_two_microphone_folder_with_its_channel_and_the_bundle_keeps_it(tmp_path):
    """``--channel far`` fits on the far mic of two-channel recordings -- the same bundle as a fit on
    the far mic's mono files -- and the bundle reads a two-channel file's far mic afterwards; the
    default still mixes the channels; ``both`` cannot be fitted by the monitor."""
    import soundfile as sf

    stereo, far_only = tmp_path / "two" / "fan", tmp_path / "far" / "fan"
    for i in range(8):
        near, far = render(60 + i, duration=2.0), render(80 + i, duration=2.0, anomaly="rub")
        write_wav(stereo / f"r{i}.wav", np.stack([near, far], axis=1))
        write_wav(far_only / f"r{i}.wav", far)
    cfg = dict(window_s=1.0, calibration_fraction=0.4, method="logmel_knn")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b_far, rep = fit_bundle(stereo, None, FitConfig(channel="far", **cfg))
        b_ref, _ = fit_bundle(far_only, None, FitConfig(**cfg))
        b_mean, _ = fit_bundle(stereo, None, FitConfig(**cfg))
    assert rep.machines["fan"]["channel"] == "far" and b_far.channel() == "far" and b_mean.channel() == "mean"
    probe_near, probe_far = render(95, duration=2.0), render(96, duration=2.0, anomaly="rub")
    sf.write(tmp_path / "probe.wav", np.stack([probe_near, probe_far], axis=1), SR, subtype="FLOAT")
    sf.write(tmp_path / "probe_far.wav", probe_far, SR, subtype="FLOAT")
    want = b_ref.score_file(tmp_path / "probe_far.wav").score
    assert b_far.score_file(tmp_path / "probe_far.wav").score == pytest.approx(want, rel=1e-5)
    assert b_far.score_file(tmp_path / "probe.wav").score == pytest.approx(want, rel=1e-5)
    assert b_mean.score_file(tmp_path / "probe.wav").score != pytest.approx(want, rel=1e-3)
    with pytest.raises(ConfigError, match="both"):
        FitConfig(channel="both")
    with pytest.raises(ConfigError):
        FitConfig(channel="left")


def test_too_little_audio_says_how_much_is_needed(tmp_path):
    write_wav(tmp_path / "tiny" / "a.wav", render(1, duration=1.0))
    with pytest.raises(DataError, match="add recordings or use a shorter --window"):
        fit_bundle(tmp_path / "tiny", None, FitConfig(window_s=0.5))


def test_autoencoder_chosen_for_more_data(tmp_path):
    d = tmp_path / "big"
    for i in range(8):
        write_wav(d / f"r{i}.wav", render(200 + i, duration=4.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b, rep = fit_bundle(d, None, FitConfig(window_s=0.5, min_net_windows=40, epochs=3))
    r = rep.machines["big"]
    assert r["detector"] == "autoencoder" and r["fit_windows"] >= 40 and r["epochs"] == 3
    assert b.models["big"].method.name == "autoencoder"


@pytest.mark.parametrize("n,expect", [(2000, "false_alarm_rate"), (40, "gamma")])
def test_threshold_meets_the_target_rate_on_fresh_normals(n, expect):
    """Scores from a known distribution: the fitted threshold's false-alarm rate on fresh draws is
    close to the 1 % target (binomial slack: 200k fresh draws)."""
    rng = np.random.default_rng(0)
    draw = lambda size: rng.gamma(3.0, 2.0, size)  # noqa: E731
    rates = []
    for rep in range(20 if n == 40 else 3):
        thr = calibrate_threshold(draw(n), 0.01)
        assert thr["method"] == expect
        rates.append(float((draw(200_000) > thr["value"]).mean()))
    mean_rate = float(np.mean(rates))
    if expect == "false_alarm_rate":
        assert 0.006 < mean_rate <= 0.013, rates
    else:  # 40 scores: an extrapolation, right on average
        assert 0.004 < mean_rate < 0.025, rates
    forced = calibrate_threshold(draw(2000), 0.01, method="gamma")
    assert forced["method"] == "gamma"


def test_fit_cli_json(fan_dir, tmp_path):
    from typer.testing import CliRunner

    from auscult.cli import app

    out = tmp_path / "m.auscult"
    res = CliRunner().invoke(app, ["fit", str(fan_dir), "--out", str(out), "--window", "1.5",
                                   "--method", "logmel_knn", "--false-alarm-rate", "0.05", "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output[res.output.index("{"):])
    assert rep["machines"]["fan"]["detector"] == "logmel_knn"
    assert rep["machines"]["fan"]["expected_false_alarm_rate"] == pytest.approx(0.05)
    assert out.is_file()
    res = CliRunner().invoke(app, ["fit", str(fan_dir), "--out", str(out), "--method", "nope"])
    assert res.exit_code != 0


def test_several_machines_in_one_bundle(tmp_path):
    for m, seed in (("fan-1", 300), ("fan-2", 400)):
        for i in range(8):
            write_wav(tmp_path / "plant" / m / f"r{i}.wav", render(seed + i, duration=2.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b, rep = fit_bundle(tmp_path / "plant", tmp_path / "plant.auscult", FitConfig(window_s=0.5))
    assert b.machine_ids == ["fan-1", "fan-2"] and sorted(rep.machines) == ["fan-1", "fan-2"]
    from auscult.monitor.bundle import load_bundle

    loaded = load_bundle(tmp_path / "plant.auscult")
    x = render(999, duration=2.0)
    r1, r2 = loaded.score_waveform(x, SR, machine="fan-1"), loaded.score_waveform(x, SR, machine="fan-2")
    assert (r1.machine, r2.machine) == ("fan-1", "fan-2") and r1.threshold != r2.threshold
    with pytest.raises(ConfigError, match="holds 2 machines"):
        loaded.score_waveform(x, SR)


def test_dcase_sections_of_one_machine_folder_become_units(tmp_path):
    """A machine folder whose DCASE file names span several sections is one unit per section
    (<machine>.section_<SS>): each gets its own model and threshold, scored as its section."""
    d = tmp_path / "dev" / "fan" / "train"
    for sec, seed in (("00", 1500), ("01", 1600)):
        for i in range(8):
            write_wav(d / f"section_{sec}_source_train_normal_{i:04d}_noAttribute.wav", render(seed + i, duration=2.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b, rep = fit_bundle(tmp_path / "dev", None, FitConfig(window_s=0.5, method="logmel_knn"))
    assert b.machine_ids == ["fan.section_00", "fan.section_01"] and sorted(rep.machines) == b.machine_ids
    assert [b.models[m].unit for m in b.machine_ids] == [{"machine": "fan", "section": "00"},
                                                         {"machine": "fan", "section": "01"}]
    assert b.models["fan.section_00"].method is not b.models["fan.section_01"].method
    assert all(r["n_recordings"] == 8 for r in rep.machines.values())
