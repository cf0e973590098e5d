"""auscult watch: sliding windows, k-of-n alerts, and a stream with gaps or bad chunks keeps going."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from auscult.errors import ConfigError
from auscult.methods import Method
from auscult.monitor.bundle import Bundle, MachineModel
from auscult.monitor.stream import StreamScorer, WatchConfig, watch

from monitor_testlib import SR, render, write_wav


class LevelMethod(Method):
    """A method (the real contract) that scores a window by its RMS: lets a test decide exactly which
    windows are anomalous."""

    name = "level"
    min_samples = 1

    def fit(self, train, val, audio):
        return self

    def score(self, clips, audio):
        return np.array([float(np.sqrt(np.mean(np.square(w, dtype=np.float64)))) for w in audio.load_many(clips)])

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def level_bundle(window_s=1.0, hop_s=1.0, threshold=0.5) -> Bundle:
    mm = MachineModel(LevelMethod({"audio": {"sample_rate": SR}}),
                      {"value": threshold, "expected_false_alarm_rate": 0.01, "method": "test"}, {"n": 0})
    return Bundle({"m": mm}, SR, window_s, hop_s)


def seconds_of(levels, sr=SR):
    """A signal whose second i has RMS levels[i] (a constant-magnitude square-ish wave)."""
    sign = np.where(np.arange(sr) % 2 == 0, 1.0, -1.0).astype(np.float32)
    return np.concatenate([lv * sign for lv in levels]).astype(np.float32)


def run(bundle, data: bytes, **kw):
    cfg = WatchConfig(**kw)
    return list(watch(bundle, io.BytesIO(data), config=cfg))


def f32(x):
    return np.asarray(x, dtype="<f4").tobytes()


def test_windows_hops_and_times():
    b = level_bundle(window_s=1.0, hop_s=0.5)
    evs = run(b, f32(seconds_of([0.1] * 4)), format="f32le")
    wins = [e for e in evs if e["type"] == "window"]
    assert [(w["time"], w["end"]) for w in wins] == [(0.0, 1.0), (0.5, 1.5), (1.0, 2.0), (1.5, 2.5), (2.0, 3.0),
                                                     (2.5, 3.5), (3.0, 4.0)]
    assert all(w["score"] == pytest.approx(0.1, rel=1e-5) and not w["decision"] for w in wins)
    assert all(abs(w["at"] - time.time()) < 60 for w in wins)  # a live stream: wall-clock time too
    end = evs[-1]
    assert end["type"] == "end" and end["windows"] == 7 and end["audio_seconds"] == 4.0


def test_k_of_n_debouncing():
    # seconds:      0    1    2    3    4    5    6    7    8    9   10   11
    levels = [0.1, 0.9, 0.1, 0.1, 0.9, 0.9, 0.1, 0.9, 0.1, 0.1, 0.1, 0.1]
    evs = run(level_bundle(), f32(seconds_of(levels)), format="f32le", k=2, n=3)
    wins = [e for e in evs if e["type"] == "window"]
    assert [w["decision"] for w in wins] == [lv > 0.5 for lv in levels]
    # windows 1 and 4 are lone positives (1 of the last 3); window 5 makes 2 of 3 (4, 5): on at its end
    # (6.0 s); windows 6 and 7 keep 2 of 3; window 8 leaves 1 of 3 (7): off at its end (9.0 s)
    assert [w["alert"] for w in wins] == [False, False, False, False, False, True, True, True, False, False,
                                          False, False]
    alerts = [(e["state"], e["time"]) for e in evs if e["type"] == "alert"]
    assert alerts == [("on", 6.0), ("off", 9.0)]
    assert evs[-1]["alerts"] == 1 and evs[-1]["anomalous_windows"] == 4
    # a lone anomalous window never alerts with k=2
    evs = run(level_bundle(), f32(seconds_of([0.1, 0.9, 0.1, 0.1, 0.9, 0.1])), format="f32le", k=2, n=3)
    assert not [e for e in evs if e["type"] == "alert"]


def test_gaps_and_bad_chunks_keep_going_and_say_so():
    b = level_bundle()
    x = seconds_of([0.1] * 3)
    nan = np.full(SR // 2, np.nan, dtype=np.float32)
    silence = np.zeros(SR, dtype=np.float32)
    data = f32(x) + f32(nan) + f32(x) + f32(silence) + f32(x) + b"\x00\x01"  # + 2 stray bytes
    evs = run(b, data, format="f32le", chunk_s=0.5)
    kinds = [e["type"] for e in evs]
    assert kinds.count("bad_chunk") == 2 and kinds.count("gap") == 2  # NaN chunk, trailing bytes; 2 x 0.5 s zeros
    bad = [e for e in evs if e["type"] == "bad_chunk"]
    assert "NaN" in bad[0]["reason"] and bad[0]["time"] == 3.0
    assert "trailing byte" in bad[1]["reason"]
    gap = [e for e in evs if e["type"] == "gap"]
    assert gap[0]["time"] == 6.5 and "silence" in gap[0]["reason"]
    wins = [e for e in evs if e["type"] == "window"]
    # every window lies inside good audio: none straddles the NaN chunk or the silence
    spans = [(w["time"], w["end"]) for w in wins]
    assert spans == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (3.5, 4.5), (4.5, 5.5), (5.5, 6.5), (7.5, 8.5),
                     (8.5, 9.5), (9.5, 10.5)]
    end = evs[-1]
    assert end["type"] == "end" and end["windows"] == 9 and end["gaps"] == 2 and end["bad_chunks"] == 2


def test_gap_timeout_on_a_stalled_pipe():
    """A live stream that stops delivering data for a while: a gap event, then scoring resumes."""
    b = level_bundle()
    r, w = os.pipe()
    part = f32(seconds_of([0.1] * 2))

    def writer():
        os.write(w, part)
        time.sleep(0.8)
        os.write(w, part)
        os.close(w)

    t = threading.Thread(target=writer)
    t.start()
    with os.fdopen(r, "rb", buffering=0) as stream:
        evs = list(watch(b, stream, config=WatchConfig(format="f32le", gap_timeout_s=0.3)))
    t.join()
    gaps = [e for e in evs if e["type"] == "gap"]
    assert gaps and "no data for" in gaps[0]["reason"]
    assert evs[-1]["windows"] == 4  # 2 s before the stall, 2 s after


def test_pcm_formats_channels_and_resampling():
    b = level_bundle()
    x = seconds_of([0.25] * 2)
    s16 = np.round(x * 32767).astype("<i2")
    evs = run(b, s16.tobytes(), format="s16le")
    assert [round(e["score"], 3) for e in evs if e["type"] == "window"] == [0.25, 0.25]
    stereo = np.stack([s16, s16], axis=1).ravel()
    evs = run(b, stereo.tobytes(), format="s16le", channels=2)
    assert sum(e["type"] == "window" for e in evs) == 2
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(2 * 48000) / 48000)).astype("<f4")
    with pytest.warns(UserWarning, match="resampled"):  # down from 48 kHz (8 kHz: an input fault, test_input_faults)
        evs = run(b, tone.tobytes(), format="f32le", rate=48000)
    wins = [e for e in evs if e["type"] == "window"]
    assert len(wins) == 2 and wins[0]["score"] == pytest.approx(0.3 / np.sqrt(2), rel=0.02)


def test_folder_with_a_corrupt_file_keeps_going(knn_fit, tmp_path):
    bundle = knn_fit[0]
    write_wav(tmp_path / "a.wav", render(700, duration=4.0))
    (tmp_path / "b.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot really")
    write_wav(tmp_path / "c.wav", render(701, duration=4.0))
    evs = list(watch(bundle, tmp_path))
    errors = [e for e in evs if e["type"] == "error"]
    assert len(errors) == 1 and errors[0]["source"].endswith("b.wav")
    per_file = {}
    for e in evs:
        if e["type"] == "window":
            per_file.setdefault(e["source"].split("/")[-1], []).append(e["time"])
    # 4 s files, 1.5 s windows every 0.75 s: 4 windows each, times restart per file
    assert per_file == {"a.wav": [0.0, 0.75, 1.5, 2.25], "c.wav": [0.0, 0.75, 1.5, 2.25]}
    assert evs[-1]["errors"] == 1 and evs[-1]["windows"] == 8


def test_watch_scores_match_the_bundle(knn_fit):
    bundle = knn_fit[0]
    x = render(702, duration=3.0)
    pcm = np.round(np.clip(x, -1, 1) * 32767).astype("<i2")
    evs = run(bundle, pcm.tobytes(), format="s16le")
    wins = [e for e in evs if e["type"] == "window"]
    xs = pcm.astype(np.float32) / 32768
    for w in wins:
        a, e = round(w["time"] * SR), round(w["end"] * SR)
        assert w["score"] == pytest.approx(bundle.score_waveform(xs[a:e], SR).score, rel=1e-6)


def test_bad_settings():
    with pytest.raises(ConfigError, match="k <= n"):
        WatchConfig(k=4, n=3)
    with pytest.raises(ConfigError, match="format"):
        WatchConfig(format="mp3")
    with pytest.raises(ConfigError, match="not found"):
        list(watch(level_bundle(), "/nonexistent/file.wav"))
    with pytest.raises(ConfigError, match="shorter than the model needs"):
        b = level_bundle()
        b.models["m"].method.min_samples = SR * 2
        StreamScorer(b, config=WatchConfig(window_s=1.0))


def test_watch_cli_on_stdin(knn_fit):
    """The real command, raw s16le PCM piped in, with a dropout and a stray byte: JSON lines out."""
    _, _, path = knn_fit
    x = np.concatenate([render(703, duration=3.0), np.zeros(SR, np.float32), render(704, duration=3.0)])
    data = np.round(np.clip(x, -1, 1) * 32767).astype("<i2").tobytes() + b"\x07"
    proc = subprocess.run([sys.executable, "-m", "auscult.cli", "watch", str(path), "--input", "-", "--format",
                           "s16le", "--rate", str(SR), "--channels", "1", "--k", "2", "--n", "3"],
                          input=data, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    lines = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    kinds = [e["type"] for e in lines]
    assert kinds[-1] == "end" and kinds.count("gap") == 2 and kinds.count("bad_chunk") == 1
    assert lines[-1]["windows"] == 6 and lines[-1]["audio_seconds"] == 7.0
    assert all({"time", "score", "decision"} <= set(e) for e in lines if e["type"] == "window")


def test_duration_limit():
    b = level_bundle()
    evs = run(b, f32(seconds_of([0.1] * 6)), format="f32le", duration_s=2.5)
    assert evs[-1]["audio_seconds"] == 2.5 and evs[-1]["windows"] == 2


class _FakeInputStream:
    """Stands in for sounddevice.InputStream: delivers blocks from a thread, like PortAudio's callback."""

    blocks: list = []

    def __init__(self, samplerate, channels, dtype, device, blocksize, callback):
        self.kw = dict(samplerate=samplerate, channels=channels, dtype=dtype, device=device, blocksize=blocksize)
        self.callback = callback
        _FakeInputStream.last = self

    def __enter__(self):
        def run_():
            for data, status in self.blocks:
                self.callback(data, len(data), None, status)

        self.thread = threading.Thread(target=run_, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.thread.join(timeout=5)


def test_microphone_input_through_sounddevice(monkeypatch):
    import types

    b = level_bundle()
    half = SR // 2
    sign = np.where(np.arange(half) % 2 == 0, 1.0, -1.0).astype(np.float32)[:, None]
    _FakeInputStream.blocks = [(0.1 * sign, "")] * 4 + [(0.1 * sign, "input overflow")] + [(0.1 * sign, "")] * 3
    monkeypatch.setitem(sys.modules, "sounddevice", types.SimpleNamespace(InputStream=_FakeInputStream))
    evs = list(watch(b, "mic:3", config=WatchConfig(duration_s=4.0, gap_timeout_s=2.0)))
    assert _FakeInputStream.last.kw["device"] == 3 and _FakeInputStream.last.kw["samplerate"] == SR
    gaps = [e for e in evs if e["type"] == "gap"]
    assert len(gaps) == 1 and "input overflow" in gaps[0]["reason"] and gaps[0]["source"] == "mic:3"
    # 2 s before the overflow (2 windows), the buffer restarts, 2 s after (2 windows)
    assert evs[-1]["windows"] == 4 and evs[-1]["audio_seconds"] == 4.0


def test_microphone_without_the_optional_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import fails
    with pytest.raises(ConfigError, match="auscult\\[mic\\]"):
        list(watch(level_bundle(), "mic"))


# ----------------------------------------------------------------------------- nothing lost silently
def _sq(seconds, level=0.1, sr=SR):
    return seconds_of([level] * int(np.ceil(seconds)), sr=sr)[: int(round(seconds * sr))]


def _bad_folder(tmp_path):
    """A watched folder holding every kind of input that used to vanish without an event."""
    import soundfile as sf

    d = tmp_path / "in"
    write_wav(d / "a_good.wav", _sq(3.0))                                   # 3 windows
    full = write_wav(tmp_path / "full.wav", _sq(4.0)).read_bytes()
    (d / "b_truncated.wav").write_bytes(full[: 44 + 2 * SR * 2])            # header says 4 s, 2 s present
    (d / "c_empty.wav").write_bytes(b"")
    write_wav(d / "d_short.wav", _sq(0.5))                                  # shorter than the 1 s window
    sf.write(str(d / "e_clip.ogg"), _sq(3.0), SR, format="OGG")             # readable, but not a watched format
    (d / "f_notes.txt").write_text("maintenance on Tuesday")
    write_wav(d / "g_header_only.wav", np.zeros(0, np.float32))             # a header and zero samples
    # a higher rate is resampled down (a lower one is an input fault); a 440 Hz tone survives that
    x8 = (0.1 * np.sqrt(2) * np.sin(2 * np.pi * 440 * np.arange(4 * 48000) / 48000)).astype(np.float32)
    full8 = write_wav(tmp_path / "full8.wav", x8, sr=48000).read_bytes()
    (d / "h_truncated_8k.wav").write_bytes(full8[: 44 + 3 * 48000 * 2])    # another rate (resampled), 3 of 4 s
    write_wav(d / "i_silent.wav", np.zeros(2 * SR, np.float32))            # all digital silence: gaps only
    full = write_wav(tmp_path / "full_j.wav", _sq(2.0)).read_bytes()
    (d / "j_truncated_short.wav").write_bytes(full[: 44 + SR])              # 0.5 s left of 2 s: too short
    return d


def test_folder_inputs_are_never_lost_silently(tmp_path):
    evs = list(watch(level_bundle(), _bad_folder(tmp_path)))
    by_file: dict = {}
    for e in evs:
        if "source" in e:
            by_file.setdefault(e["source"].split("/")[-1], []).append(e)
    wins = {f: sum(e["type"] == "window" for e in es) for f, es in by_file.items()}
    assert wins["a_good.wav"] == 3 and wins["b_truncated.wav"] == 2 and wins["h_truncated_8k.wav"] == 3

    def only(name, kind):
        es = [e for e in by_file[name] if e["type"] == kind]
        assert len(es) == 1, (name, by_file[name])
        return es[0]

    t = only("b_truncated.wav", "bad_chunk")
    assert t["code"] == "truncated" and "header promises" in t["reason"] and t["time"] == 2.0
    assert only("h_truncated_8k.wav", "bad_chunk")["code"] == "truncated"
    for name, code, words in (("c_empty.wav", "empty", "0 bytes"), ("g_header_only.wav", "empty", "zero samples"),
                              ("d_short.wav", "too_short", "shorter than one"),
                              ("e_clip.ogg", "unsupported_format", ".ogg"),
                              ("f_notes.txt", "unsupported_format", ".txt"),
                              ("i_silent.wav", "silent", "digital silence throughout"),
                              ("j_truncated_short.wav", "too_short", "0.5 s of audio")):
        e = only(name, "skipped")
        assert e["code"] == code and words in e["reason"], e
        assert e["source"].endswith(name)
    assert only("j_truncated_short.wav", "bad_chunk")["code"] == "truncated"
    assert set(by_file) == {"a_good.wav", "b_truncated.wav", "c_empty.wav", "d_short.wav", "e_clip.ogg",
                            "f_notes.txt", "g_header_only.wav", "h_truncated_8k.wav", "i_silent.wav",
                            "j_truncated_short.wav"}
    end = evs[-1]
    assert end["type"] == "end"
    assert end["windows"] == 8 and end["skipped"] == 7 and end["errors"] == 0 and end["bad_chunks"] == 3
    assert end["files"] == 10 and end["files_scored"] == 3
    assert end["files"] == end["files_scored"] + end["skipped"] + end["errors"]
    assert end["gaps"] == sum(e["type"] == "gap" for e in evs) == 4  # i_silent.wav: 4 chunks of 0.5 s
    # audio seconds add up over the files (3 + 2 + 0.5 + 3 + 2 + 0.5) instead of restarting with each one
    assert end["audio_seconds"] == pytest.approx(11.0)


def test_watch_cli_exit_code(knn_fit, tmp_path):
    """rc 1 when nothing could be scored (every input skipped or unreadable), 0 when something was."""
    _, _, path = knn_fit
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.wav").write_bytes(b"")
    write_wav(bad / "short.wav", render(705, duration=0.5))
    (bad / "x.ogg").write_bytes(b"OggS")

    def run_cli(inp):
        return subprocess.run([sys.executable, "-m", "auscult.cli", "watch", str(path), "--input", str(inp)],
                              capture_output=True, text=True, timeout=120)

    r = run_cli(bad)
    assert r.returncode == 1, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [e["type"] for e in lines] == ["skipped"] * 3 + ["end"] and lines[-1]["windows"] == 0
    assert "nothing could be scored" in r.stderr and "3 skipped" in r.stderr
    write_wav(bad / "z_good.wav", render(706, duration=3.0))
    r = run_cli(bad)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.splitlines()[-1])["windows"] >= 1


def test_stdin_shorter_than_a_window_says_so():
    evs = run(level_bundle(), f32(_sq(0.4)), format="f32le")
    assert [e["type"] for e in evs] == ["skipped", "end"]
    assert evs[0]["code"] == "too_short" and evs[0]["source"] == "-" and evs[-1]["windows"] == 0


def test_watch_cli_shows_the_resampling_warning_as_one_line(knn_fit):
    """stdin at another rate is resampled chunk by chunk: the user is told, in one line on stderr."""
    _, _, path = knn_fit
    from auscult.audio import resample

    x = resample(render(707, duration=3.0), SR, 48000)  # 48 kHz (8 kHz lacks the model's band: an input fault)
    data = np.round(np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()
    proc = subprocess.run([sys.executable, "-m", "auscult.cli", "watch", str(path), "--input", "-", "--rate", "48000"],
                          input=data, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    err = proc.stderr.decode().strip().splitlines()
    assert err == ["warning: stdin audio at 48000 Hz is resampled chunk by chunk to the bundle's 16000 Hz; "
                   "send 16000 Hz to avoid it"], err


def channel_bundle(channel=None) -> Bundle:
    """A level bundle whose model reads multi-channel input with ``channel`` (as a run or ``auscult fit
    --channel`` records it in ``fit_info``; None: the default, the mean)."""
    mm = MachineModel(LevelMethod({"audio": {"sample_rate": SR}}),
                      {"value": 0.5, "expected_false_alarm_rate": 0.01, "method": "test"}, {"n": 0},
                      {} if channel is None else {"channel": channel})
    return Bundle({"m": mm}, SR, 1.0, 1.0)


@pytest.mark.parametrize("policy,want", [("near", 0.1), ("far", 0.4), (1, 0.4), ("mean", 0.25), (None, 0.25)])
def test_multi_channel_input_is_read_with_the_models_channel_policy(policy, want, tmp_path, monkeypatch):
    """stdin PCM (``--channels 2``), files (read block by block, or whole when resampled) and the
    microphone give the model the channel it reads -- the near or far mic of a two-channel recording,
    an index, or the mean -- not always the mean of the channels."""
    import types

    import soundfile as sf

    b = channel_bundle(policy)
    near, far = seconds_of([0.1] * 2), seconds_of([0.4] * 2)
    two = np.stack([near, far], axis=1)

    def scores(evs):
        return [round(e["score"], 3) for e in evs if e["type"] == "window"]

    assert scores(run(b, f32(two.ravel()), format="f32le", channels=2)) == [want, want]
    sf.write(tmp_path / "two.wav", two, SR, subtype="FLOAT")
    assert scores(watch(b, tmp_path / "two.wav")) == [want, want]
    # at another rate the file is decoded whole, then resampled: a tone's RMS survives resampling
    t = np.arange(2 * 48000) / 48000
    tone = np.sin(2 * np.pi * 440 * t)
    sf.write(tmp_path / "two48k.wav", np.stack([0.1 * tone, 0.4 * tone], axis=1), 48000, subtype="FLOAT")
    got = [e["score"] for e in watch(b, tmp_path / "two48k.wav") if e["type"] == "window"]
    assert got == pytest.approx([want / np.sqrt(2)] * 2, rel=0.02)
    # the microphone, two channels
    _FakeInputStream.blocks = [(two[i:i + SR // 2], "") for i in range(0, 2 * SR, SR // 2)]
    monkeypatch.setitem(sys.modules, "sounddevice", types.SimpleNamespace(InputStream=_FakeInputStream))
    evs = list(watch(b, "mic", config=WatchConfig(channels=2, duration_s=2.0, gap_timeout_s=2.0)))
    assert _FakeInputStream.last.kw["channels"] == 2 and scores(evs) == [want, want]
    # a mono input is one microphone: scored as given under every policy
    assert scores(run(b, f32(far), format="f32le")) == [0.4, 0.4]


def test_a_near_or_far_model_refuses_inputs_without_two_channels(tmp_path):
    """stdin and the microphone: a ChannelCountError before anything is read; a file in a folder: an
    error event naming it, and the watch goes on with the next file."""
    import soundfile as sf

    from auscult.errors import ChannelCountError

    b = channel_bundle("far")
    three = np.stack([seconds_of([0.1] * 2)] * 3, axis=1)
    with pytest.raises(ChannelCountError, match="3 channels.*far mic"):
        run(b, f32(three.ravel()), format="f32le", channels=3)
    with pytest.raises(ChannelCountError, match="channel 2"):
        run(channel_bundle(2), f32(seconds_of([0.1] * 4)), format="f32le", channels=2)
    sf.write(tmp_path / "a_three.wav", three, SR, subtype="FLOAT")
    sf.write(tmp_path / "b_two.wav", np.stack([seconds_of([0.1] * 2), seconds_of([0.4] * 2)], axis=1), SR,
             subtype="FLOAT")
    evs = list(watch(b, tmp_path))
    errors = [e for e in evs if e["type"] == "error"]
    assert len(errors) == 1 and errors[0]["source"].endswith("a_three.wav") and errors[0]["code"] == "channel_count"
    assert "3 channels" in errors[0]["reason"]
    assert [round(e["score"], 3) for e in evs if e["type"] == "window"] == [0.4, 0.4]
    # the mean policy mixes any channel count
    assert [round(e["score"], 3) for e in run(channel_bundle("mean"), f32(three.ravel()), format="f32le", channels=3)
            if e["type"] == "window"] == [0.1, 0.1]
