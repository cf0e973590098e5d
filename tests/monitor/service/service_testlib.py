"""Helpers for the service tests (imported by name; conftest.py only holds fixtures).

``FakeBundle``: a small stand-in for auscult.monitor.bundle's Bundle, with the same methods and
trivial maths: score = RMS of the clip; the heat map is a short-time power spectrum (so a loud
burst in the clip lights up where it is). Deterministic, fast, no torch.
``ThreadServer``: uvicorn on 127.0.0.1 in a background thread. ``wav_bytes``, ``tone``.
"""

from __future__ import annotations

import io
import socket
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import soundfile as sf

TOKEN = "test-token-0123456789abcdef"


def wav_bytes(x: np.ndarray, sr: int, fmt: str = "WAV", subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ThreadServer:
    """uvicorn serving an app on 127.0.0.1 from a background thread."""

    app: object
    port: int = field(default_factory=free_port)

    def __post_init__(self):
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "ThreadServer":
        self.thread.start()
        t0 = time.monotonic()
        while not self.server.started:
            if time.monotonic() - t0 > 60 or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


@dataclass
class ScoreResult:
    score: float
    decision: bool
    threshold: float
    expected_false_alarm_rate: float
    machine: str
    extra: dict = field(default_factory=dict)


@dataclass
class Explanation:
    times: np.ndarray
    frame_scores: np.ndarray
    freqs: np.ndarray
    tf_map: np.ndarray


class FakeBundle:
    def __init__(self, machine_ids, sample_rate: int = 16000, threshold: float = 0.2, delay_s: float = 0.0):
        self.machine_ids = list(machine_ids)
        self.sample_rate = sample_rate
        self.threshold = threshold
        self.delay_s = delay_s
        self.calls = 0

    def _check(self, wave, sample_rate, machine):
        if sample_rate > self.sample_rate:
            raise ValueError(f"fake bundle got {sample_rate} Hz")
        if machine is not None and machine not in self.machine_ids:
            raise KeyError(machine)
        # the real Bundle's input-quality check (auscult.data.quality), as Bundle.score_waveform runs it
        from auscult.data.quality import InputFaultError, check_wave

        fault = check_wave(np.asarray(wave), sample_rate, model_rate=self.sample_rate)
        if fault is not None:
            raise InputFaultError(None, fault, "waveform")

    def model(self, machine=None):
        from types import SimpleNamespace

        m = machine or self.machine_ids[0]
        return m, SimpleNamespace(threshold_value=self.threshold, expected_false_alarm_rate=0.01)

    def score_waveform(self, wave, sample_rate, machine=None):
        self._check(wave, sample_rate, machine)
        self.calls += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        s = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64))))
        return ScoreResult(s, s > self.threshold, self.threshold, 0.01, machine or self.machine_ids[0],
                           {"fake": True})

    def explain_waveform(self, wave, sample_rate, machine=None):
        self._check(wave, sample_rate, machine)
        n_fft, hop = 512, 256
        n = 1 + max(0, len(wave) - n_fft) // hop
        frames = np.stack([wave[i * hop:i * hop + n_fft] if i * hop + n_fft <= len(wave)
                           else np.pad(wave[i * hop:], (0, n_fft - len(wave[i * hop:]))) for i in range(n)])
        spec = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=1)) ** 2  # [T, F]
        tf = np.log1p(spec).T
        return Explanation(times=(np.arange(n) * hop + n_fft / 2) / sample_rate, frame_scores=tf.mean(axis=0),
                           freqs=np.fft.rfftfreq(n_fft, 1 / sample_rate), tf_map=tf)


def tone(seconds: float = 1.0, sr: int = 16000, amp: float = 0.1, freq: float = 440.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
