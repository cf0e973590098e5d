"""Watch long recordings or a live stream: sliding windows, JSON-line events, k-of-n alerts.

``auscult watch model.auscult --input FILE|DIR|-`` feeds audio through a :class:`StreamScorer`:
every ``hop_s`` seconds the last ``window_s`` seconds are scored with the bundle and one event is
emitted; an *alert* is on while at least ``k`` of the last ``n`` windows are anomalous (single
false alarms at the window's expected rate do not page anyone).

Event lines (one JSON object each; ``time``/``end`` in seconds from the start of the source)::

    {"type": "window", "source": "-", "time": 0.0, "end": 5.0, "score": 1.23, "decision": false,
     "threshold": 2.5, "alert": false, "positives": 0, "at": 1763712000.123}   # "at": live inputs only
    {"type": "alert", "source": "-", "state": "on", "time": 40.0}       # and "off" when it clears
    {"type": "gap", "source": "-", "time": 12.5, "code": "digital_silence", "reason": "...", "seconds": 1.0}
    {"type": "bad_chunk", "source": "-", "time": 20.0, "code": "non_finite", "reason": "..."}
    {"type": "error", "source": "x.wav", "code": "unreadable", "reason": "..."}  # a file that cannot be read
    {"type": "skipped", "source": "y.ogg", "code": "unsupported_format", "reason": "..."}  # not scored at all
    {"type": "input_fault", "source": "-", "time": 30.0, "end": 35.0, "code": "silent", "reason": "...",
     "measured": {...}}   # windows that are not machine sound (auscult.data.quality): not scored
    {"type": "end", "windows": 17, "alerts": 1, "gaps": 1, "bad_chunks": 1, "errors": 0, "skipped": 0,
     "files": 0, "files_scored": 0, "audio_seconds": 42.5, ...}

Gaps and bad chunks never stop the watch: the window buffer restarts after them (a window never
splices audio across a discontinuity), the event says what happened, and scoring resumes as soon as
a full window of good audio has arrived. What counts:

* **gap**: a stretch of exact digital silence (all samples 0: a dropped capture buffer) of a whole
  read chunk, or -- on stdin with ``gap_timeout_s`` -- no data for that long;
* **bad chunk**: samples that are NaN/Inf (float formats), a trailing partial frame at the end of
  the stream, an unreadable block of a file, or the missing end of a truncated WAV file (the part
  that is there is scored; the event says how much is missing).

Input faults (:mod:`auscult.data.quality`): every full window is checked before it is scored; a
silent, clipped or DC-offset window is not scored and does not enter the k-of-n rule, and a run of
them gives one ``input_fault`` event (counted as ``input_fault_windows``). A source whose every
window is a fault, or that is digital silence throughout, is ``skipped`` with the fault's code; a
file or stream at a sample rate below the model's band is ``skipped`` as ``rate_mismatch`` unread.

Nothing is dropped without an event: every file of a watched folder is scored, or gets an
``error`` (unreadable) or ``skipped`` event naming it and why (``unsupported_format``: not
.wav/.flac; ``empty``: no bytes or no samples; ``too_short``: less audio than one window;
``no_full_window``: gaps/bad chunks left no stretch of one window). So in the ``end`` summary
``files == files_scored + skipped + errors``, and ``audio_seconds`` counts the audio of every
source read. ``auscult watch`` exits with code 1 when nothing could be scored.

A microphone: ``--input mic`` (or ``mic:DEVICE``) reads the default (or named) input device through
the optional ``sounddevice`` package (``pip install 'auscult[mic]'``); an input overflow reported by
the device (samples lost) is a gap. Without it, pipe any capture tool into ``--input -``.
"""

from __future__ import annotations

import os
import queue
import select
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator, Optional, Union

import numpy as np

from ..errors import ChannelCountError, ConfigError
from .alerting import DEFAULT_K, DEFAULT_N, KOfN, check_k_of_n

__all__ = ["WatchConfig", "StreamScorer", "watch", "watch_pcm", "watch_file", "PCM_FORMATS"]

PCM_FORMATS = {"s16le": ("<i2", 32768.0), "s32le": ("<i4", 2147483648.0), "f32le": ("<f4", 1.0)}


@dataclass
class WatchConfig:
    """Settings of :func:`watch`.

    Attributes:
        window_s, hop_s: scoring window and hop (default: the bundle's).
        k, n: alert while at least ``k`` of the last ``n`` windows are anomalous.
        format, rate, channels: raw PCM layout on stdin (``s16le``, ``s32le`` or ``f32le``,
            interleaved channels, read with the model's channel policy: the near / far mic of a
            two-channel DCASE 2026 style input, a channel index, or the mean for ``mean``/``auto``).
        chunk_s: how much audio is read at a time (also the smallest detected gap).
        gap_timeout_s: on stdin, report a gap after this long without data (None: wait forever).
        realtime: pace file input at real time (for demos); default as fast as possible.
        duration_s: stop after this many seconds of audio (None: until the input ends).
    """

    window_s: Optional[float] = None
    hop_s: Optional[float] = None
    k: int = DEFAULT_K
    n: int = DEFAULT_N
    format: str = "s16le"
    rate: int = 16000
    channels: int = 1
    chunk_s: float = 0.5
    gap_timeout_s: Optional[float] = None
    realtime: bool = False
    duration_s: Optional[float] = None

    def __post_init__(self) -> None:
        check_k_of_n(self.k, self.n, "watch")
        if self.format not in PCM_FORMATS:
            raise ConfigError(f"watch: --format must be one of {sorted(PCM_FORMATS)}, got {self.format!r}")
        if int(self.rate) <= 0 or int(self.channels) <= 0:
            raise ConfigError(f"watch: --rate and --channels must be positive, got {self.rate}, {self.channels}")
        for name in ("window_s", "hop_s", "chunk_s", "gap_timeout_s", "duration_s"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise ConfigError(f"watch: {name} must be > 0, got {v}")


class StreamScorer:
    """Turns pushed audio into window events with k-of-n alert debouncing.

    ``push(samples)`` (mono float32 at the bundle's rate) returns the events it produced;
    ``gap(reason, seconds)`` / ``bad_chunk(reason)`` record a discontinuity (the window buffer
    restarts); ``summary()`` is the final ``end`` event.
    """

    def __init__(self, bundle: Any, machine: Optional[str] = None, config: Optional[WatchConfig] = None,
                 source: str = "-"):
        self.bundle = bundle
        self.machine, self.model = bundle.model(machine)
        self.config = config or WatchConfig()
        sr = bundle.sample_rate
        self.window = max(1, int(round((self.config.window_s or bundle.window_s) * sr)))
        self.hop = max(1, int(round((self.config.hop_s or bundle.hop_s) * sr)))
        if self.window < self.model.min_samples:
            raise ConfigError(f"watch: a {self.window / sr:g} s window is shorter than the model needs "
                              f"({self.model.min_samples / sr:g} s)")
        self.sr = sr
        self.source = source
        # how a multi-channel input is read (Bundle.channel: near / far / index / mean); test doubles: mean
        self.channel = self.model.channel if hasattr(type(self.model), "channel") else "mean"
        self._buf = np.zeros(0, dtype=np.float32)
        self._buf_start = 0  # sample index (in the source's timeline) of _buf[0]
        self._pos = 0        # samples seen (including gaps we know the length of)
        self._total = 0      # samples read over all sources (for duration_s)
        self.live = False    # stdin / microphone: events also carry the wall-clock time "at"
        self.rule = KOfN(self.config.k, self.config.n)  # the same rule the service's dashboard counts with
        self.counts = {"windows": 0, "alerts": 0, "gaps": 0, "bad_chunks": 0, "errors": 0, "skipped": 0,
                       "files": 0, "files_scored": 0, "anomalous_windows": 0, "input_fault_windows": 0}
        self.score_seconds = 0.0
        self._before = 0     # samples of earlier sources (audio_seconds adds up over files)
        self._src = {"windows": 0, "good": 0, "problems": 0, "faults": {}, "silence": 0, "silence_gaps": 0}
        self._fault: Optional[str] = None  # the input fault of the current run of faulty windows

    def check_channels(self, n_channels: int, what: str) -> None:
        """Raise :class:`~auscult.errors.ChannelCountError` when an input of ``n_channels`` channels
        cannot be read with this model's channel policy (a near/far model and an input that is not
        two-channel; a channel index the input lacks). Mono is always read as it is."""
        n = int(n_channels)
        if n <= 1 or self.channel == "mean":
            return
        if self.channel in ("near", "far"):
            if n != 2:
                raise ChannelCountError(None, f"{what}: {n} channels, but this model reads the {self.channel} mic of a "
                                              f"two-channel recording (left = near, right = far)",
                                        "send the two-channel recording or the one microphone's mono signal")
        elif int(self.channel) >= n:
            raise ChannelCountError(None, f"{what}: {n} channel(s), but this model reads channel {self.channel}",
                                    "send a recording with that channel, or its mono signal")

    def pick(self, data: np.ndarray) -> np.ndarray:
        """The mono signal of ``[frames, channels]`` audio as this model reads it (call
        :meth:`check_channels` first): the policy's channel, or the mean for ``mean``."""
        data = np.asarray(data)
        if data.ndim == 1:
            return data
        if data.shape[1] == 1:
            return data[:, 0]
        if self.channel == "mean":
            return data.mean(axis=1)
        return data[:, {"near": 0, "far": 1}.get(self.channel, self.channel)]

    @property
    def alert(self) -> bool:
        """Whether the k-of-n alert is on."""
        return self.rule.state

    def restart(self, source: str, is_file: bool = False) -> None:
        """A new source (next file): new timeline and buffer, alert history kept."""
        self._before += self._pos
        self.source = source
        self._buf = np.zeros(0, dtype=np.float32)
        self._buf_start = 0
        self._pos = 0
        self._src = {"windows": 0, "good": 0, "problems": 0, "faults": {}, "silence": 0, "silence_gaps": 0}
        self._fault: Optional[str] = None  # the input fault of the current run of faulty windows
        if is_file:
            self.counts["files"] += 1

    def end_source(self) -> list[dict[str, Any]]:
        """Close the current source: a ``skipped`` event when none of it could be scored, and the
        per-file count. Call once per source that ended (not after an ``error``/``skipped``)."""
        if self._src["windows"]:
            if self.source_is_file:
                self.counts["files_scored"] += 1
            return []
        w = self.window / self.sr
        if self._src["faults"]:  # every window was an input fault: the source is that fault
            code = max(self._src["faults"], key=self._src["faults"].get)
            return [self.skipped(self.source, code, f"input fault: every window of it is {code} (see the "
                                                    f"input_fault events); not scored")]
        if self._src["silence"] and not self._src["good"] and self._src["problems"] == self._src["silence_gaps"]:
            from ..data.quality import LIMITS

            return [self.skipped(self.source, "silent", f"input fault: digital silence throughout "
                                                        f"({self._src['silence'] / self.sr:g} s, below "
                                                        f"{LIMITS.silent_dbfs:g} dBFS); not scored")]
        if not self._src["problems"]:
            got = self._src["good"] / self.sr
            return [self.skipped(self.source, "too_short", f"{got:g} s of audio, shorter than one {w:g} s window; "
                                                         f"not scored (send at least {w:g} s)")]
        return [self.skipped(self.source, "no_full_window", f"no stretch of good audio as long as one {w:g} s window "
                                                            f"(see the gap/bad_chunk events); not scored")]

    @property
    def source_is_file(self) -> bool:
        return self.source not in ("-",) and not self.source.startswith("mic")

    def _t(self, sample: int) -> float:
        return round(sample / self.sr, 6)

    def push(self, samples: np.ndarray) -> list[dict[str, Any]]:
        x = np.asarray(samples, dtype=np.float32).ravel()
        events: list[dict[str, Any]] = []
        if x.size == 0:
            return events
        if not self._buf.size:
            self._buf_start = self._pos
        self._buf = np.concatenate([self._buf, x]) if self._buf.size else x.copy()
        self._pos += x.size
        self._src["good"] += x.size
        while self._buf.size >= self.window:
            events.extend(self._score(self._buf[:self.window], self._buf_start))
            self._buf = self._buf[self.hop:]
            self._buf_start += self.hop
        return events

    def _score(self, w: np.ndarray, start: int) -> list[dict[str, Any]]:
        from ..data.quality import check_wave

        fault = check_wave(w, self.sr)  # a full window at the model's rate: the level checks
        if fault is not None:  # not machine sound: no score, not in the k-of-n rule
            self.counts["input_fault_windows"] += 1
            self._src["faults"][fault.code] = self._src["faults"].get(fault.code, 0) + 1
            if fault.code == self._fault:
                return []
            self._fault = fault.code
            return [{"type": "input_fault", "source": self.source, "machine": self.machine, "time": self._t(start),
                     "end": self._t(start + w.size), "code": fault.code, "reason": fault.reason,
                     "measured": fault.measured}]
        self._fault = None
        t0 = time.perf_counter()
        score = float(self.model.score_waves([w])[0])
        self.score_seconds += time.perf_counter() - t0
        thr = self.model.threshold_value
        decision = bool(score > thr)
        changed = self.rule.update(decision)
        positives = self.rule.positives
        self.counts["windows"] += 1
        self._src["windows"] += 1
        self.counts["anomalous_windows"] += int(decision)
        ev = [{"type": "window", "source": self.source, "machine": self.machine, "time": self._t(start),
               "end": self._t(start + w.size), "score": score, "decision": decision, "threshold": thr,
               "alert": False, "positives": positives}]
        if self.live:  # wall-clock time the window was scored (Unix seconds): when it happened
            ev[0]["at"] = round(time.time(), 3)
        if changed:
            if self.rule.state:
                self.counts["alerts"] += 1
            ev.append({"type": "alert", "source": self.source, "machine": self.machine,
                       "state": "on" if self.rule.state else "off", "time": self._t(start + w.size),
                       "positives": positives, "of": self.rule.seen})
        ev[0]["alert"] = self.alert
        return ev

    def gap(self, reason: str, seconds: Optional[float] = None, samples: int = 0,
            code: str = "gap") -> dict[str, Any]:
        """Record a gap (``samples`` of lost audio advance the timeline); the buffer restarts."""
        t = self._t(self._pos)
        self._pos += int(samples)
        self._buf = np.zeros(0, dtype=np.float32)
        self._fault = None
        self.counts["gaps"] += 1
        self._src["problems"] += 1
        ev = {"type": "gap", "source": self.source, "time": t, "code": code, "reason": reason}
        if seconds is not None:
            ev["seconds"] = round(float(seconds), 6)
        return ev

    def bad_chunk(self, reason: str, samples: int = 0, code: str = "bad_chunk") -> dict[str, Any]:
        """Record a bad chunk (its ``samples`` advance the timeline); the buffer restarts."""
        t = self._t(self._pos)
        self._pos += int(samples)
        self._buf = np.zeros(0, dtype=np.float32)
        self._fault = None
        self.counts["bad_chunks"] += 1
        self._src["problems"] += 1
        return {"type": "bad_chunk", "source": self.source, "time": t, "code": code, "reason": reason}

    def error(self, source: str, reason: str, code: str = "unreadable") -> dict[str, Any]:
        """A source that cannot be read at all."""
        self.counts["errors"] += 1
        return {"type": "error", "source": source, "code": code, "reason": reason}

    def skipped(self, source: str, code: str, reason: str) -> dict[str, Any]:
        """A source that was not scored, with a machine-readable ``code`` and the reason.

        The one place watch turns "this input cannot be scored" into an event: item 2's input
        faults (``silent``, ``too_short``, ``rate_mismatch``, ...) are meant to come through here."""
        self.counts["skipped"] += 1
        return {"type": "skipped", "source": source, "code": code, "reason": reason}

    def rate_fault(self, rate: int) -> Optional[dict[str, Any]]:
        """A ``skipped`` event (code ``rate_mismatch``) for a source recorded at ``rate`` when that
        lacks the band the model listens to (:func:`auscult.data.quality.check_rate`), else None."""
        from ..data.quality import check_rate

        fault = check_rate(int(rate), self.sr, (getattr(self.model, "fit_info", None) or {}).get("source_sample_rates"))
        if fault is None:
            return None
        return self.skipped(self.source, fault.code, f"input fault: {fault.reason}; not scored")

    @property
    def done(self) -> bool:
        """True once ``config.duration_s`` seconds of audio have been seen."""
        d = self.config.duration_s
        return d is not None and self._total >= d * self.sr

    def feed_chunk(self, x: np.ndarray) -> list[dict[str, Any]]:
        """Classify a read chunk (bad / gap / audio) and push it."""
        if self.config.duration_s is not None:
            room = int(round(self.config.duration_s * self.sr)) - self._total
            x = x[:max(0, room)]
        self._total += x.size
        if not np.isfinite(x).all():
            return [self.bad_chunk(f"{int((~np.isfinite(x)).sum())} NaN/Inf sample(s) in {x.size}; chunk skipped",
                                   samples=x.size, code="non_finite")]
        if x.size and not np.any(x):
            self._src["silence"] += x.size
            self._src["silence_gaps"] += 1
            return [self.gap("digital silence (all samples zero: dropped audio?); not scored",
                             seconds=x.size / self.sr, samples=x.size, code="digital_silence")]
        return self.push(x)

    def summary(self) -> dict[str, Any]:
        return {"type": "end", "machine": self.machine, **self.counts,
                "audio_seconds": round((self._before + self._pos) / self.sr, 3),
                "score_cpu_seconds": round(self.score_seconds, 3), "alert": self.alert}


# ------------------------------------------------------------------------------------------------
# sources
# ------------------------------------------------------------------------------------------------
def _read_ready(stream: BinaryIO, n: int, timeout: Optional[float]) -> Optional[bytes]:
    """Up to ``n`` bytes; None when ``timeout`` passed without data; b"" at end of stream."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        fd = None
    if fd is None:
        return stream.read(n)
    if timeout is not None:
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            return None
    return os.read(fd, n)


def watch_pcm(stream: BinaryIO, scorer: StreamScorer, config: WatchConfig) -> Iterator[dict[str, Any]]:
    """Events from raw interleaved PCM read from ``stream`` (e.g. ``sys.stdin.buffer``)."""
    from ..audio import resample

    dtype, scale = PCM_FORMATS[config.format]
    scorer.check_channels(int(config.channels), "--channels")
    scorer.live = True
    frame = np.dtype(dtype).itemsize * int(config.channels)
    chunk_frames = max(1, int(round(config.chunk_s * config.rate)))
    want = chunk_frames * frame
    pending = b""
    if int(config.rate) != scorer.sr:
        warnings.warn(f"stdin audio at {config.rate} Hz is resampled chunk by chunk to the bundle's {scorer.sr} Hz; "
                      f"send {scorer.sr} Hz to avoid it", UserWarning, stacklevel=2)
    waited = 0.0
    while True:
        data = _read_ready(stream, want - len(pending), config.gap_timeout_s)
        if data is None:  # timeout: score what arrived before the stall, then record the gap
            usable = len(pending) - len(pending) % frame
            if usable:
                yield from _decode_and_feed(pending[:usable], dtype, scale, config, scorer, resample)
                pending = pending[usable:]
            waited += float(config.gap_timeout_s or 0)
            yield scorer.gap(f"no data for {waited:g} s", seconds=config.gap_timeout_s, code="no_data")
            continue
        waited = 0.0
        if not data:
            break
        pending += data
        if len(pending) < want:
            continue
        yield from _decode_and_feed(pending, dtype, scale, config, scorer, resample)
        pending = b""
        if scorer.done:
            return
    usable = len(pending) - len(pending) % frame
    if usable:
        yield from _decode_and_feed(pending[:usable], dtype, scale, config, scorer, resample)
    if len(pending) % frame:
        yield scorer.bad_chunk(f"stream ended inside a sample frame ({len(pending) % frame} trailing byte(s) of a "
                               f"{frame}-byte frame dropped)", code="partial_frame")


def _decode_and_feed(raw: bytes, dtype: str, scale: float, config: WatchConfig, scorer: StreamScorer, resample):
    x = np.frombuffer(raw, dtype=dtype).astype(np.float32)
    if scale != 1.0:
        x = x / np.float32(scale)
    if int(config.channels) > 1:
        x = scorer.pick(x.reshape(-1, int(config.channels)))
    if int(config.rate) != scorer.sr and np.isfinite(x).all():
        x = resample(x, int(config.rate), scorer.sr)
    yield from scorer.feed_chunk(x)


def watch_file(path: Path, scorer: StreamScorer, config: WatchConfig) -> Iterator[dict[str, Any]]:
    """Events from one audio file, read block by block (hours-long files are fine).

    Every file ends in windows, an ``error`` or a ``skipped`` event (see the module docstring);
    a truncated WAV is scored as far as it goes, then a ``bad_chunk`` (code ``truncated``) says
    what is missing."""
    import soundfile as sf

    from ..audio import resample, wav_truncation
    from ..data.naming import AUDIO_EXTENSIONS, is_audio_path

    path = Path(path)
    scorer.restart(str(path), is_file=True)
    if not is_audio_path(path):
        yield scorer.skipped(str(path), "unsupported_format",
                             f"not a format auscult watches ({path.suffix or 'no suffix'}; it reads "
                             f"{', '.join(sorted(AUDIO_EXTENSIONS))}); convert it or move it out of the folder")
        return
    try:
        if path.stat().st_size == 0:
            yield scorer.skipped(str(path), "empty", "empty file (0 bytes); nothing to score")
            return
        truncated = wav_truncation(path)
    except OSError as exc:
        yield scorer.error(str(path), f"cannot read ({exc.strerror or exc})")
        return
    try:
        info = sf.info(str(path))
    except Exception as exc:
        yield scorer.error(str(path), f"cannot read ({exc.__class__.__name__}: {str(exc)[:200]})")
        return
    if info.frames == 0:
        yield scorer.skipped(str(path), "empty", "the file holds zero samples; nothing to score")
        return
    try:  # a near/far model and a file that is not two-channel: this file is an error, the watch goes on
        scorer.check_channels(int(info.channels), "the file")
    except ChannelCountError as exc:
        yield scorer.error(str(path), f"{exc.reason} ({exc.fix})", code="channel_count")
        return
    fault = scorer.rate_fault(int(info.samplerate))
    if fault is not None:
        yield fault
        return
    t_start = time.perf_counter()
    if info.samplerate != scorer.sr:  # resample the whole file once (per-block resampling leaves seams)
        try:
            data, _ = sf.read(str(path), dtype="float32", always_2d=True)
        except Exception as exc:
            yield scorer.error(str(path), f"cannot decode ({exc.__class__.__name__}: {str(exc)[:200]})")
            return
        x = scorer.pick(data)
        if np.isfinite(x).all() and x.size:
            x = resample(x, int(info.samplerate), scorer.sr)
        else:  # keep the NaN/Inf for feed_chunk to report, on the model's timeline
            x = np.full(int(round(x.size * scorer.sr / info.samplerate)), np.nan, dtype=np.float32)
        step = max(1, int(round(config.chunk_s * scorer.sr)))
        blocks: Iterable[Any] = (x[i:i + step] for i in range(0, x.size, step))
    else:
        blocks = _sf_blocks(path, max(1, int(round(config.chunk_s * info.samplerate))), scorer)
    done = 0
    for b in blocks:
        if isinstance(b, dict):
            yield b
            if b["type"] == "error":
                return
            continue
        yield from scorer.feed_chunk(b)
        if scorer.done:
            return
        done += b.size
        if config.realtime:
            lag = done / scorer.sr - (time.perf_counter() - t_start)
            if lag > 0:
                time.sleep(lag)
    tail = scorer.end_source()  # judged on the audio that is there (the missing end is not a gap inside it)
    if truncated:
        yield scorer.bad_chunk(f"truncated: {truncated}; the {done / scorer.sr:g} s that are there were "
                               f"{'scored' if not tail else 'read'}, the rest of the recording is missing",
                               code="truncated")
    yield from tail


def _sf_blocks(path: Path, block: int, scorer: StreamScorer):
    import soundfile as sf

    try:
        f = sf.SoundFile(str(path))
    except Exception as exc:
        yield scorer.error(str(path), f"cannot open ({exc.__class__.__name__}: {str(exc)[:200]})")
        return
    with f:
        while True:
            try:
                data = f.read(block, dtype="float32", always_2d=True)
            except Exception as exc:  # a damaged block: say so, skip what is left of the file
                yield scorer.bad_chunk(f"unreadable block ({exc.__class__.__name__}: {str(exc)[:200]}); rest of the "
                                       f"file skipped", code="unreadable_block")
                return
            if data.shape[0] == 0:
                return
            yield scorer.pick(data)


def watch_microphone(device: Optional[str], scorer: StreamScorer, config: WatchConfig) -> Iterator[dict[str, Any]]:
    """Events from a sound card input through the optional ``sounddevice`` package."""
    try:
        import sounddevice as sd
    except (ImportError, OSError) as exc:  # OSError: the package is there but PortAudio is not
        raise ConfigError(f"--input mic needs the optional 'sounddevice' package and PortAudio ({exc}): "
                          f"pip install 'auscult[mic]', or pipe a capture tool into --input -, e.g. "
                          f"arecord -q -f S16_LE -r {scorer.sr} -c 1 | auscult watch MODEL --input -") from None
    from ..audio import resample

    rate, channels = int(config.rate), int(config.channels)
    scorer.check_channels(channels, "--channels")
    blocks: "queue.Queue[tuple[np.ndarray, str]]" = queue.Queue()

    def callback(indata, frames, time_info, status):  # runs in the audio thread: copy and hand over
        blocks.put((np.array(indata, dtype=np.float32, copy=True), str(status) if status else ""))

    dev: Any = device
    if device is not None and device.isdigit():
        dev = int(device)
    scorer.restart(f"mic:{device}" if device else "mic")
    scorer.live = True
    with sd.InputStream(samplerate=rate, channels=channels, dtype="float32", device=dev,
                        blocksize=max(1, int(round(config.chunk_s * rate))), callback=callback):
        while not scorer.done:
            try:
                data, status = blocks.get(timeout=config.gap_timeout_s)
            except queue.Empty:
                yield scorer.gap(f"no audio from the device for {config.gap_timeout_s:g} s",
                                 seconds=config.gap_timeout_s, code="no_data")
                continue
            if status:  # e.g. "input overflow": the device dropped samples
                yield scorer.gap(f"audio device reported: {status} (samples may be lost)", code="device")
            x = scorer.pick(data) if data.ndim == 2 else data.ravel()
            if rate != scorer.sr and np.isfinite(x).all():
                x = resample(x, rate, scorer.sr)
            yield from scorer.feed_chunk(x)


def _files_of(path: Path) -> list[Path]:
    """Every file under ``path`` in name order: audio is scored, anything else gets a skipped event."""
    return sorted(p for p in path.rglob("*") if p.is_file())


def _source_events(input: Any, scorer: StreamScorer, config: WatchConfig) -> Iterator[dict[str, Any]]:
    import sys

    live = (isinstance(input, (str, Path)) and str(input) == "-") or hasattr(input, "read") or (
        isinstance(input, str) and (input == "mic" or input.startswith("mic:")) and not Path(input).exists())
    if live:  # a stream at a rate that lacks the model's band is not read at all
        fault = scorer.rate_fault(int(config.rate))
        if fault is not None:
            yield fault
            return
    if isinstance(input, (str, Path)) and str(input) == "-":
        yield from watch_pcm(sys.stdin.buffer, scorer, config)
        yield from scorer.end_source()
    elif isinstance(input, str) and (input == "mic" or input.startswith("mic:")) and not Path(input).exists():
        yield from watch_microphone(input[4:] or None, scorer, config)
    elif hasattr(input, "read"):
        yield from watch_pcm(input, scorer, config)  # type: ignore[arg-type]
        yield from scorer.end_source()
    else:
        p = Path(input)
        if p.is_dir():
            files = _files_of(p)
            if not files:
                raise ConfigError(f"{p}: the folder holds no files to watch (.wav/.flac recordings)")
            for f in files:
                yield from watch_file(f, scorer, config)
                if scorer.done:
                    break
        elif p.is_file():
            yield from watch_file(p, scorer, config)
        else:
            raise ConfigError(f"{p}: not found (pass an audio file, a folder of them, or '-' for raw PCM on stdin)")


def watch(bundle: Any, input: Union[str, Path, BinaryIO], machine: Optional[str] = None,
          config: Optional[WatchConfig] = None) -> Iterator[dict[str, Any]]:
    """Events (dicts, see the module docstring) from a file, a folder (files in name order), a
    binary stream of raw PCM (``"-"`` = stdin) or a microphone (``"mic"`` / ``"mic:DEVICE"``).
    Ends with one ``end`` event (``"interrupted": true`` after Ctrl-C)."""
    config = config or WatchConfig()
    scorer = StreamScorer(bundle, machine, config, source="-")
    try:
        yield from _source_events(input, scorer, config)
    except KeyboardInterrupt:  # a live stream stopped with Ctrl-C: still say what was seen
        yield {**scorer.summary(), "interrupted": True}
        return
    yield scorer.summary()
