"""Model bundles: one file that scores and explains new audio of the machines it was fitted on.

::

    from auscult.monitor import load_bundle
    bundle = load_bundle("model.auscult")
    r = bundle.score_file("today.wav")            # ScoreResult(score, decision, threshold, ...)
    e = bundle.explain_waveform(wave, 16000)      # Explanation(times, frame_scores, freqs, tf_map, ...)

A bundle holds, per machine, a registered method (:mod:`auscult.methods`: any of them -- the
engineer's door ``auscult fit`` and the research door's ``auscult bundle RUN`` both make bundles),
its threshold record and its calibration statistics. The file (``*.auscult``) is a zip archive
holding two members and nothing executable (auscult's one save format, :mod:`auscult.fileio`):

* ``bundle.json`` -- the versioned envelope: ``format: "auscult-bundle"``, ``format_version``,
  the versions it was made with (auscult, torch, numpy, python), sample rate, window/hop for long
  recordings, the methods (name, recipe config, state as plain data) and per machine: which method
  scores it and as which unit (``machine``/``section`` of its clips), threshold record, calibration
  statistics (the held-out normal scores' count, mean, spread, quantiles), what it was fitted on;
* ``arrays.npz`` -- every weight and back-end array, referenced from ``bundle.json`` by key
  (loaded with ``allow_pickle=False``: no pickled code runs when a bundle is opened).

Several machines may share one method (a classification method fitted on all of them): it is
stored once. Bundles of format 1 (``autoencoder`` and ``logmel_knn`` detectors) are read and
converted on load.

Writes are atomic (temporary file + ``os.replace``). A missing, truncated, corrupt or
newer-format bundle raises :class:`~auscult.errors.CheckpointError` naming the file and the fix;
a bundle made by another auscult version loads with a warning.

Long inputs: a waveform up to ``1.5 x window_s`` is scored as one clip; a longer one is cut into
windows of ``window_s`` every ``hop_s`` seconds (the last one aligned to the end), each window is
scored, and the result is the worst window (``extra["windows"]`` lists them all). The threshold
and its expected false-alarm rate apply per window.
"""

from __future__ import annotations

import datetime
import io
import json
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from .. import __version__
from ..errors import CheckpointError, ConfigError, DataError, EmptyAudioError, NonFiniteAudioError
from ..fileio import atomic_write, pack_tree, read_arrays, unpack_tree, writer_versions

__all__ = ["Bundle", "MachineModel", "ScoreResult", "Explanation", "load_bundle", "save_bundle", "cut_windows",
           "bundle_from_run", "explain_calibration", "calibration_stats", "BUNDLE_FORMAT", "BUNDLE_FORMAT_VERSION",
           "BundleVersionWarning"]

BUNDLE_FORMAT = "auscult-bundle"
#: 1: one detector per machine (autoencoder / logmel_knn); 2: registered methods, shared between machines
BUNDLE_FORMAT_VERSION = 2
_JSON = "bundle.json"
_ARRAYS = "arrays.npz"


class BundleVersionWarning(UserWarning):
    """A bundle made by another auscult version was loaded (it usually works; refit if in doubt)."""


# ------------------------------------------------------------------------------------------------
# results
# ------------------------------------------------------------------------------------------------
@dataclass
class ScoreResult:
    """One scored input.

    Attributes:
        score: anomaly score (higher = more anomalous; the worst window for long inputs).
        decision: ``score > threshold``.
        threshold: the machine's decision threshold.
        expected_false_alarm_rate: fraction of normal windows expected above the threshold.
        machine: the machine it was scored as.
        extra: ``calibration_exceedance`` (fraction of held-out normal scores >= this score: a
            p-value-like number), ``z`` (standard scores above the normal mean), ``windows`` (for
            long inputs: ``[start_s, end_s, score]`` each), ``duration_s``, ``detector``.
    """

    score: float
    decision: bool
    threshold: float
    expected_false_alarm_rate: float
    machine: str
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, "decision": self.decision, "threshold": self.threshold,
                "expected_false_alarm_rate": self.expected_false_alarm_rate, "machine": self.machine,
                **{k: v for k, v in self.extra.items() if k != "windows"},
                **({"windows": self.extra["windows"]} if "windows" in self.extra else {})}


@dataclass
class Explanation:
    """Where an input is anomalous.

    Attributes:
        times: ``[F]`` frame centres in seconds.
        frame_scores: ``[F]`` per-frame anomaly (:func:`~auscult.monitor.explain.frame_curve` of ``tf_map``).
        freqs: ``[K]`` band centre frequencies in Hz (mel bands).
        tf_map: ``[K, F]`` anomaly per band and frame (frequency first, time second).
        spectrogram: ``[K, F]`` the input's log-mel spectrogram in dB (to draw under the map).
        score: the input's anomaly score (as one clip), ``threshold``, ``decision``, ``machine``.
        frame_threshold: the frame-score level normal frames rarely exceed (the cross-fitted 99th
            percentile of per-frame scores of held-out normals, when calibrated; else None).
        method: how the map is computed (one line).
        peak_time_s, peak_band_hz: the most anomalous frame (the curve's peak) and the brightest band
            around it -- what ``auscult explain`` prints
            (:func:`~auscult.monitor.explain.summary_peak`).
    """

    times: np.ndarray
    frame_scores: np.ndarray
    freqs: np.ndarray
    tf_map: np.ndarray
    spectrogram: np.ndarray
    score: float
    threshold: float
    decision: bool
    machine: str
    frame_threshold: Optional[float] = None
    method: str = ""
    peak_time_s: Optional[float] = None
    peak_band_hz: Optional[float] = None


@dataclass
class MachineModel:
    """One machine's fitted method with its threshold and calibration statistics.

    Attributes:
        method: a fitted :class:`~auscult.methods.Method` (several machines may share one).
        threshold: :meth:`auscult.eval.thresholds.Threshold.to_dict` of the machine.
        calibration: ``n``, ``mean``, ``std``, ``quantiles``, sorted ``scores`` of held-out normals,
            and for methods that explain: ``band_scale``, ``tail_loc``, ``tail_scale``, ``tail_smooth``,
            ``frame_q99`` (:func:`explain_calibration`).
        fit_info: what it was fitted on (free form, for reports).
        unit: the clip metadata the method scores this machine's audio as: ``machine`` (default:
            the machine id) and ``section`` (default ``"00"``).
    """

    method: Any
    threshold: dict[str, Any]          # auscult.eval.thresholds.Threshold.to_dict()
    calibration: dict[str, Any]        # n, mean, std, quantiles, sorted scores, frame_q99
    fit_info: dict[str, Any] = field(default_factory=dict)
    unit: dict[str, Any] = field(default_factory=dict)

    @property
    def threshold_value(self) -> float:
        return float(self.threshold["value"])

    @property
    def expected_false_alarm_rate(self) -> float:
        return float(self.threshold["expected_false_alarm_rate"])

    # -- the scorer of this machine (also reachable as ``detector``, the name of the first bundle format)
    @property
    def kind(self) -> str:
        """The method's registry name."""
        return str(self.method.name)

    @property
    def min_samples(self) -> int:
        """The shortest waveform the method can score."""
        return int(self.method.min_samples)

    @property
    def feature_config(self) -> Any:
        return self.method.feature_config

    @property
    def channel(self) -> Union[str, int]:
        """How this machine's model reads a multi-channel input (:func:`input_channel`): the run's
        resolved policy when the bundle comes from a run (``fit_info["channel"]``), else the method's
        declared ``audio.channel`` (its :attr:`audio_config`: a two-microphone-trained method declares
        the mic it scores)."""
        declared = self.fit_info.get("channel", self.method.audio_config.get("channel", "auto"))
        return input_channel(declared, self.kind)

    @property
    def detector(self) -> "MachineModel":
        """This machine's scorer: ``score_waves``, ``explain_wave``, ``min_samples``, ``kind``
        (kept for code written against the first bundle format's detectors)."""
        return self

    def _clips(self, waves: Sequence[np.ndarray]) -> tuple[list, Any]:
        from ..data.source import WaveformSource

        src = WaveformSource(self.method.audio_config)
        machine, section = str(self.unit.get("machine", "machine")), str(self.unit.get("section", "00"))
        return [src.add(w, machine, section=section) for w in waves], src

    def score_waves(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        """Scores of mono float32 waveforms at the method's sample rate (one per waveform)."""
        if len(waves) == 0:
            return np.zeros(0)
        clips, src = self._clips(waves)
        return np.asarray(self.method.score(clips, src), dtype=np.float64)

    def explain_wave(self, wave: np.ndarray) -> Any:
        """The method's raw :class:`~auscult.methods.TFMap` of one waveform (capability ``explain``)."""
        clips, src = self._clips([wave])
        return self.method.explain(clips[0], src)

    def scoring_graph(self) -> Any:
        """The method's exportable :class:`~auscult.methods.ScoringGraph` for this machine's clips."""
        from ..data.clip import Clip

        clip = Clip(path=Path("memory:/export"), machine=str(self.unit.get("machine", "machine")),
                    section=str(self.unit.get("section", "00")), layout="memory")
        return self.method.scoring_graph(clip)

    def describe(self) -> str:
        return self.method.describe()


def cut_windows(n_samples: int, window: int, hop: int) -> list[tuple[int, int]]:
    """``(start, end)`` sample ranges of windows covering ``n_samples``.

    Windows of ``window`` samples every ``hop``; when the last one stops short of the end, one more
    is aligned to the end, so every sample is covered. A signal shorter than a window is one range.
    """
    if window < 1 or hop < 1:
        raise ConfigError(f"window and hop must be >= 1 sample, got {window}, {hop}")
    if n_samples <= window:
        return [(0, n_samples)]
    starts = list(range(0, n_samples - window + 1, hop))
    if starts[-1] + window < n_samples:
        starts.append(n_samples - window)
    return [(s, s + window) for s in starts]


# ------------------------------------------------------------------------------------------------
# the bundle
# ------------------------------------------------------------------------------------------------
def input_channel(policy: Any, who: str = "the model") -> Union[str, int]:
    """The monitor's reading of a recipe's ``audio.channel`` for one recorded input.

    ``"mean"`` mixes the channels (the 2020-2025 clips, own data); ``"near"`` / ``"far"`` take
    channel 0 / 1 of a two-channel DCASE 2026 style recording (left = near mic, right = far mic);
    an integer takes that channel. ``"auto"`` reads as ``"mean"``: a recording handed to a bundle has
    no dataset year (:func:`bundle_from_run` records the run's resolved policy instead). ``"both"``
    is refused: the monitor hands a method one channel, so a method trained on two microphones must
    declare which one it scores (``autoencoder_mc`` does, with ``mics.score``). A mono input is
    scored as given under every policy (a single-microphone recording)."""
    from ..audio import AudioConfig

    if isinstance(policy, str) and policy.strip().lstrip("-").isdigit():
        policy = int(policy)
    if policy == "both":
        raise ConfigError(f"{who}: audio.channel 'both' (two-channel input) cannot be scored by the monitor, which "
                          f"hands a method one channel; use a method that declares the microphone it scores "
                          f"(e.g. autoencoder_mc: mics.score near|far) or a recipe with channel near/far/mean")
    policy = AudioConfig(channel=policy).decode_channel  # validates; auto -> mean
    return policy


class Bundle:
    """Fitted detectors for one or more machines, with thresholds and calibration.

    Args:
        models: machine id -> :class:`MachineModel`.
        sample_rate: the rate every detector expects (other rates are resampled with a warning).
        window_s, hop_s: how long inputs are cut for scoring (and how ``watch`` slides).
        info: free-form fit summary (data, method choice and why, timings).
    """

    def __init__(self, models: dict[str, MachineModel], sample_rate: int, window_s: float, hop_s: float,
                 info: Optional[dict[str, Any]] = None, versions: Optional[dict[str, str]] = None,
                 path: Optional[Path] = None):
        if not models:
            raise ConfigError("a bundle needs at least one machine model")
        if not window_s > 0 or not hop_s > 0:
            raise ConfigError(f"window_s and hop_s must be > 0, got {window_s}, {hop_s}")
        self.models = dict(sorted(models.items()))
        for mid, mm in self.models.items():
            mm.unit = {"machine": str(mm.unit.get("machine", mid)), "section": str(mm.unit.get("section", "00"))}
        self._sample_rate = int(sample_rate)
        self.window_s, self.hop_s = float(window_s), float(hop_s)
        self.info = dict(info or {})
        self.versions = dict(versions or _versions())
        self.path = path

    # -- the API the service and the CLI use
    @property
    def machine_ids(self) -> list[str]:
        """Machines this bundle was fitted on."""
        return list(self.models)

    @property
    def sample_rate(self) -> int:
        """The sample rate the detectors expect."""
        return self._sample_rate

    @property
    def window_samples(self) -> int:
        return max(1, int(round(self.window_s * self.sample_rate)))

    @property
    def hop_samples(self) -> int:
        return max(1, int(round(self.hop_s * self.sample_rate)))

    def model(self, machine: Optional[str] = None) -> tuple[str, MachineModel]:
        """``(machine id, model)``; ``machine=None`` works when the bundle holds one machine."""
        if machine is None:
            if len(self.models) == 1:
                return next(iter(self.models.items()))
            raise ConfigError(f"this bundle holds {len(self.models)} machines {self.machine_ids}; say which one "
                              f"(--machine NAME / machine=...)")
        if machine not in self.models:
            raise ConfigError(f"machine {machine!r} is not in this bundle (it holds {self.machine_ids}); fit one for "
                              f"it with 'auscult fit DIR --out model.auscult'")
        return machine, self.models[machine]

    def prepare(self, wave: np.ndarray, sample_rate: int, what: str = "waveform",
                machine: Optional[str] = None) -> np.ndarray:
        """A mono float32 waveform at the bundle's rate: a multi-channel input is read with
        ``machine``'s channel policy (:attr:`MachineModel.channel`: the mean of the channels, or the
        near / far mic of a two-channel recording), then resampled with a warning.

        Raises EmptyAudioError / NonFiniteAudioError / ChannelCountError / DataError naming ``what``.
        """
        from ..audio import ResampleWarning, resample

        x = self._mono(wave, what, machine)
        sr = int(sample_rate)
        if sr <= 0:
            raise ConfigError(f"{what}: sample_rate must be positive, got {sample_rate}")
        if sr != self.sample_rate:
            warnings.warn(f"resampling {what} from {sr} Hz to the bundle's {self.sample_rate} Hz", ResampleWarning,
                          stacklevel=3)
            x = resample(x, sr, self.sample_rate)
        return np.ascontiguousarray(x, dtype=np.float32)

    def input_fault(self, wave: np.ndarray, sample_rate: int, machine: Optional[str] = None,
                    what: str = "waveform") -> Optional[Any]:
        """The :class:`~auscult.data.quality.InputFault` of a waveform at its own rate for ``machine``
        (None when it may be scored): the one input-quality check, with this bundle's window, the
        method's minimum length, its sample rate and the rates it was fitted on."""
        from ..data.quality import check_wave

        name, mm = self.model(machine)
        x = self._mono(wave, what, name)
        ref = self.window_s  # the clip length the threshold was calibrated on: the window, or shorter run clips
        if mm.fit_info.get("calibration_min_seconds") is not None:
            ref = min(ref, float(mm.fit_info["calibration_min_seconds"]))
        return check_wave(x, int(sample_rate), window_s=ref if ref > 0 else None, min_samples=mm.min_samples,
                          model_rate=self.sample_rate, training_rates=mm.fit_info.get("source_sample_rates"))

    def _refuse_faults(self, wave: np.ndarray, sample_rate: int, machine: Optional[str], what: str,
                       path: Any = None) -> None:
        from ..data.quality import InputFaultError

        fault = self.input_fault(wave, sample_rate, machine, what)
        if fault is not None:
            raise InputFaultError(path, fault, what)

    def channel(self, machine: Optional[str] = None) -> Union[str, int]:
        """The channel policy multi-channel inputs of ``machine`` are read with (None: the one policy
        of every machine in the bundle)."""
        if machine is not None or len(self.models) == 1:
            return self.model(machine)[1].channel
        policies = {mm.channel for mm in self.models.values()}
        if len(policies) == 1:
            return policies.pop()
        raise ConfigError(f"this bundle's machines read multi-channel input differently ({sorted(map(str, policies))}); "
                          f"say which machine (--machine NAME / machine=...)")

    def _mono(self, wave: np.ndarray, what: str, machine: Optional[str] = None) -> np.ndarray:
        from ..errors import ChannelCountError

        x = np.asarray(wave)
        if x.ndim == 2:  # [T, C] or [C, T]: the shorter axis is the channels
            axis = 1 if x.shape[0] >= x.shape[1] else 0
            n_ch = x.shape[axis]
            policy = self.channel(machine) if n_ch > 1 else "mean"
            if policy == "mean":
                x = x.mean(axis=axis)
            elif policy in ("near", "far"):
                if n_ch != 2:
                    raise ChannelCountError(None, f"{what}: {n_ch} channels, but this model reads the {policy} mic "
                                                  f"of a two-channel recording (left = near, right = far)",
                                            "send the two-channel recording or the one microphone's mono signal")
                x = np.take(x, 0 if policy == "near" else 1, axis=axis)
            else:
                if int(policy) >= n_ch:
                    raise ChannelCountError(None, f"{what}: {n_ch} channel(s), but this model reads channel {policy}",
                                            "send a recording with that channel, or its mono signal")
                x = np.take(x, int(policy), axis=axis)
        if x.ndim != 1:
            raise DataError(f"{what}: expected a 1-D waveform (or [samples, channels]), got shape {x.shape}")
        if x.size == 0:
            raise EmptyAudioError(None, f"{what}: zero samples", "send a non-empty clip")
        if not np.issubdtype(x.dtype, np.floating):
            if np.issubdtype(x.dtype, np.signedinteger):  # PCM: full scale is -2**(bits-1)
                x = x.astype(np.float32) / float(-np.iinfo(x.dtype).min)
            elif np.issubdtype(x.dtype, np.unsignedinteger):  # offset-binary PCM (8-bit WAV)
                mid = float(np.iinfo(x.dtype).max // 2 + 1)
                x = (x.astype(np.float32) - mid) / mid
            else:
                raise DataError(f"{what}: samples of dtype {x.dtype} are not audio")
        x = x.astype(np.float32, copy=False)
        if not np.isfinite(x).all():
            raise NonFiniteAudioError(None, f"{what}: {int((~np.isfinite(x)).sum())} NaN/Inf sample(s)",
                                      "the audio is corrupt")
        return x

    def _check_length(self, x: np.ndarray, det: Any, what: str) -> None:
        if x.shape[0] < det.min_samples:
            raise DataError(f"{what}: {x.shape[0]} samples ({x.shape[0] / self.sample_rate:.3f} s) is too short; "
                            f"this model needs at least {det.min_samples} samples "
                            f"({det.min_samples / self.sample_rate:.3f} s)")

    def _result(self, machine: str, mm: MachineModel, score: float, extra: dict[str, Any]) -> ScoreResult:
        thr = mm.threshold_value
        cal = mm.calibration
        scores = np.asarray(cal.get("scores", []), dtype=np.float64)
        ex = {"detector": mm.kind, "method": mm.kind}
        if scores.size:
            ex["calibration_exceedance"] = float((scores >= score).mean())
        if cal.get("std"):
            ex["z"] = float((score - float(cal["mean"])) / float(cal["std"]))
        ex.update(extra)
        return ScoreResult(score=float(score), decision=bool(score > thr), threshold=thr,
                           expected_false_alarm_rate=mm.expected_false_alarm_rate, machine=machine, extra=ex)

    def window_scores(self, wave: np.ndarray, sample_rate: int, machine: Optional[str] = None,
                      what: str = "waveform") -> tuple[list[tuple[int, int]], np.ndarray]:
        """Sample ranges and scores of the windows of a waveform (one range when it is short)."""
        name, mm = self.model(machine)
        x = self.prepare(wave, sample_rate, what, name)
        self._check_length(x, mm, what)
        if x.shape[0] <= 1.5 * self.window_samples:
            ranges = [(0, x.shape[0])]
        else:
            ranges = cut_windows(x.shape[0], self.window_samples, self.hop_samples)
        scores = mm.score_waves([x[a:b] for a, b in ranges])
        return ranges, np.asarray(scores, dtype=np.float64)

    def score_waveform(self, wave: np.ndarray, sample_rate: int, machine: Optional[str] = None) -> ScoreResult:
        """Score one waveform (any length, any rate; ``[T]`` or ``[T, C]``) as ``machine``.

        Raises :class:`~auscult.data.quality.InputFaultError` (``.fault``: code and reason) for a
        recording that is not machine sound (silent, clipped, DC offset, too short, a rate that
        lacks the model's band): it is not scored."""
        name, mm = self.model(machine)
        return self._score(wave, sample_rate, name, mm, "waveform")

    def _score(self, wave, sample_rate, name, mm, what, path=None) -> ScoreResult:
        self._refuse_faults(wave, sample_rate, name, what, path)  # a sensor fault is not scored
        ranges, scores = self.window_scores(wave, sample_rate, name, what)
        if not np.isfinite(scores).all():
            raise DataError(f"{what}: the model produced a non-finite score; the input may be degenerate")
        worst = int(np.argmax(scores))
        n = ranges[-1][1]
        extra: dict[str, Any] = {"duration_s": n / self.sample_rate}
        if len(ranges) > 1:
            sr = self.sample_rate
            extra["windows"] = [[a / sr, b / sr, float(s)] for (a, b), s in zip(ranges, scores)]
            extra["worst_window_s"] = [ranges[worst][0] / sr, ranges[worst][1] / sr]
        return self._result(name, mm, float(scores[worst]), extra)

    def decode_file(self, path: Union[str, Path], machine: Optional[str] = None) -> tuple[np.ndarray, int]:
        """``(mono float32 waveform, its own sample rate)`` of an audio file as ``machine`` reads it:
        a multi-channel file with the machine's channel policy (:attr:`MachineModel.channel`), a mono
        file as it is. Typed AudioError naming the file (ChannelCountError when a near/far policy
        meets a file that is not two-channel)."""
        from ..audio import AudioConfig, audio_info, decode_audio

        info = audio_info(path)
        native = int(info["sample_rate"])  # checked at its own rate: a missing band is a fault
        policy = self.channel(machine) if int(info["channels"]) > 1 else "mean"
        return decode_audio(path, AudioConfig(sample_rate=native, channel=policy)), native

    def score_file(self, path: Union[str, Path], machine: Optional[str] = None) -> ScoreResult:
        """Decode an audio file (typed AudioError naming it; a multi-channel file read with the
        machine's channel policy, see :meth:`decode_file`) and score it."""
        name, mm = self.model(machine)
        x, native = self.decode_file(path, name)
        return self._score(x, native, name, mm, str(path), path=path)

    def explain_waveform(self, wave: np.ndarray, sample_rate: int, machine: Optional[str] = None) -> Explanation:
        """Per-frame anomaly curve and time-frequency map of a waveform (scored as one clip).

        Only methods that declare the ``explain`` capability explain (others raise
        :class:`~auscult.errors.CapabilityError`). Frames whose analysis window runs past either end of
        the input are left out. The method's raw map is compared, band by band, with the highest level
        held-out normal audio reached in that band and its neighbours
        (:func:`~auscult.monitor.explain.tail_map`: ``1`` = as high as normal audio ever got there;
        bundles written before that calibration existed divide by the band's mean normal level
        instead). The per-frame curve is the mean of each frame's most anomalous 1/32 of the bands,
        smoothed over 5 frames (:func:`~auscult.monitor.explain.frame_curve`); ``peak_time_s`` /
        ``peak_band_hz`` (what ``auscult explain`` prints) are the curve's peak and the brightest band
        around it (:func:`~auscult.monitor.explain.summary_peak`).
        """
        from .explain import calibrated_map, frame_curve, interior_frames, summary_peak, tail_map

        name, mm = self.model(machine)
        if not mm.method.supports("explain"):
            raise mm.method.unsupported("explain", "explain its scores")
        self._refuse_faults(wave, sample_rate, name, "waveform")
        x = self.prepare(wave, sample_rate, "waveform", name)
        self._check_length(x, mm, "waveform")
        t = mm.explain_wave(x)
        fc = mm.feature_config
        keep = interior_frames(len(t.times), x.shape[0], fc.n_fft, fc.hop_length)
        cal = mm.calibration
        if cal.get("tail_scale") is not None:
            tf = tail_map(t.tf_map[:, keep], np.asarray(cal["tail_loc"]), np.asarray(cal["tail_scale"]),
                          int(cal.get("tail_smooth", 1)))
            how = "; compared per band with the highest level held-out normal audio reached there (1 = as high)"
        else:
            scale = cal.get("band_scale")
            tf = calibrated_map(t.tf_map[:, keep], None if scale is None else np.asarray(scale))
            how = "; divided per band by its level on held-out normals" if scale is not None else ""
        thr = mm.threshold_value
        fq = cal.get("frame_q99")
        curve = frame_curve(tf)
        pt, pb = summary_peak(tf, curve)
        times = t.times[keep]
        return Explanation(times=times, frame_scores=curve, freqs=t.freqs, tf_map=tf,
                           spectrogram=t.spectrogram[:, keep], score=t.score, threshold=thr,
                           decision=bool(t.score > thr), machine=name,
                           frame_threshold=None if fq is None else float(fq), method=t.how + how,
                           peak_time_s=float(times[pt]), peak_band_hz=float(t.freqs[pb]))

    def explain_file(self, path: Union[str, Path], machine: Optional[str] = None) -> Explanation:
        """:meth:`explain_waveform` of an audio file."""
        name, _ = self.model(machine)
        x, native = self.decode_file(path, name)
        return self.explain_waveform(x, native, name)

    def describe(self) -> dict[str, Any]:
        """Plain summary: machines, detectors, thresholds, calibration sizes, versions."""
        return {
            "path": str(self.path) if self.path else None,
            "sample_rate": self.sample_rate, "window_s": self.window_s, "hop_s": self.hop_s,
            "versions": self.versions,
            "machines": {m: {"method": mm.kind, "unit": dict(mm.unit), "detector": mm.describe(),
                             "capabilities": sorted(mm.method.capabilities), "threshold": mm.threshold_value,
                             "threshold_method": mm.threshold.get("method"),
                             "expected_false_alarm_rate": mm.expected_false_alarm_rate,
                             "calibration_n": mm.calibration.get("n"), **mm.fit_info}
                         for m, mm in self.models.items()},
        }

    def save(self, path: Union[str, Path]) -> Path:
        """Same as :func:`save_bundle`."""
        return save_bundle(path, self)

    def __repr__(self) -> str:
        return f"Bundle(machines={self.machine_ids}, sample_rate={self.sample_rate}, path={self.path})"


# ------------------------------------------------------------------------------------------------
# calibration statistics (shared by auscult fit and auscult bundle)
# ------------------------------------------------------------------------------------------------
def calibration_stats(scores: Sequence[float]) -> dict[str, Any]:
    """Count, mean, spread, quantiles and (at most 4096, sorted) held-out normal scores."""
    cal = np.asarray(scores, dtype=np.float64)
    srt = np.sort(cal)
    if srt.size > 4096:
        srt = srt[np.linspace(0, srt.size - 1, 4096).round().astype(int)]
    return {"n": int(cal.size), "mean": float(cal.mean()), "std": float(cal.std(ddof=1)) if cal.size > 1 else 0.0,
            "quantiles": {str(q): float(np.quantile(cal, q)) for q in (0.5, 0.9, 0.95, 0.99)}, "scores": srt}


def explain_calibration(mm: MachineModel, windows: Sequence[np.ndarray],
                        groups: Optional[Sequence[Any]] = None) -> dict[str, Any]:
    """What explanations of this machine are compared with, from held-out normal windows: the
    per-band mean level of the raw map (``band_scale``, the earlier calibration, kept for readers of
    it), the per-band reference of :func:`~auscult.monitor.explain.tail_map` (``tail_loc``,
    ``tail_scale``, ``tail_smooth``) and the 99th percentile of the per-frame curve of normal audio
    the reference has not seen (``frame_q99``, the level normal frames rarely exceed). Update
    ``mm.calibration`` with it.

    ``frame_q99`` is cross-fitted: each window's curve is computed against the reference of the
    *other* windows (of the other recordings, when ``groups`` names each window's recording and
    there are at least two). The reference is the highest level the windows reached, so each
    window's own curve against it is bounded by construction; an in-sample 99th percentile sat far
    below what fresh normal audio reaches. Measured on the simulated fan of tests/monitor (8
    held-out windows of 4 recordings, 30 fresh normal clips): frames above ``frame_q99`` with the
    in-sample percentile 7-10 % (k-NN, both simulators) and 10 % (autoencoder), leaving one window
    out 0.6-0.7 % and 3.3 %, one recording out 0.3-0.6 % and 2.1 % (the target is 1 %)."""
    from .explain import TAIL_SMOOTH, frame_curve, interior_frames, tail_map, tail_reference

    fc = mm.feature_config
    maps = []
    for w in windows:
        t = mm.explain_wave(w)
        maps.append(t.tf_map[:, interior_frames(len(t.times), w.shape[0], fc.n_fft, fc.hop_length)])
    raw = np.concatenate(maps, axis=1)
    scale = raw.mean(axis=1)
    scale = np.maximum(scale, 1e-6 * max(float(scale.max()), 1e-12))
    loc, tscale = tail_reference(maps, TAIL_SMOOTH)
    labels = list(range(len(maps))) if groups is None else list(groups)
    if len(labels) != len(maps):
        raise ConfigError(f"explain_calibration: {len(labels)} group labels for {len(maps)} windows")
    if len(set(labels)) < 2:  # one recording: leave one window out instead
        labels = list(range(len(maps)))
    if len(maps) >= 2:  # each window against the reference of the others (see above)
        curves = []
        for g in dict.fromkeys(labels):
            rest = [m for m, lab in zip(maps, labels) if lab != g]
            oloc, oscale = tail_reference(rest, TAIL_SMOOTH)
            curves += [frame_curve(tail_map(m, oloc, oscale, TAIL_SMOOTH)) for m, lab in zip(maps, labels) if lab == g]
    else:  # one window: nothing to hold out
        curves = [frame_curve(tail_map(m, loc, tscale, TAIL_SMOOTH)) for m in maps]
    curve = np.concatenate(curves)
    return {"band_scale": scale, "tail_loc": loc, "tail_scale": tscale, "tail_smooth": int(TAIL_SMOOTH),
            "frame_q99": float(np.quantile(curve, 0.99))}


# ------------------------------------------------------------------------------------------------
# (de)serialisation: JSON skeleton + npz arrays, no pickle (auscult.fileio's packer)
# ------------------------------------------------------------------------------------------------
def _versions() -> dict[str, str]:
    out = writer_versions()
    try:
        import torch

        out["torch"] = str(torch.__version__)
    except ImportError:  # pragma: no cover
        pass
    return out


def save_bundle(path: Union[str, Path], bundle: Bundle) -> Path:
    """Write ``bundle`` to ``path`` (one file, atomic: a crash never leaves a half-written bundle).

    Returns the path. The envelope records the bundle format version and the library versions; a
    method shared by several machines is stored once.
    """
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    methods: list[dict[str, Any]] = []
    index: dict[int, int] = {}
    machines = {}
    for mid, mm in bundle.models.items():
        key = id(mm.method)
        if key not in index:
            index[key] = len(methods)
            methods.append({"name": mm.method.name, "config": pack_tree(mm.method.config, arrays),
                            "state": pack_tree(mm.method.state_dict(), arrays)})
        machines[mid] = {
            "method": index[key],
            "unit": pack_tree(dict(mm.unit), arrays),
            "threshold": pack_tree(mm.threshold, arrays),
            "calibration": pack_tree(mm.calibration, arrays),
            "fit_info": pack_tree(mm.fit_info, arrays),
        }
    envelope = {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_FORMAT_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(),
        "sample_rate": bundle.sample_rate,
        "window_s": bundle.window_s,
        "hop_s": bundle.hop_s,
        "info": pack_tree(bundle.info, arrays),
        "methods": methods,
        "machines": machines,
    }
    buf = io.BytesIO()
    np.savez(buf, **arrays)

    def _write(f):
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as z:
            z.writestr(_JSON, json.dumps(envelope, indent=1, allow_nan=False))
            z.writestr(_ARRAYS, buf.getvalue())

    atomic_write(path, _write)
    bundle.path = path
    return path


def _bad(path: Path, why: str) -> CheckpointError:
    return CheckpointError(f"{path}: {why}; refit it with 'auscult fit DIR --out {path.name}'")


def _build_method(name: str, config: dict[str, Any], state: dict[str, Any]) -> Any:
    from ..methods import METHODS, FitContext

    if name not in METHODS:
        raise CheckpointError(f"unknown method {name!r} (this auscult knows {METHODS.names()}); upgrade auscult or "
                              f"refit the bundle")
    method = METHODS.build(name, config=config, context=FitContext(device="cpu", quiet=True, group="monitor"))
    method.load_state_dict(state)
    return method


def _v1_method(mid: str, m: dict[str, Any], arrays: Any, sample_rate: int) -> tuple[Any, dict[str, Any]]:
    """A method from a format-1 machine entry (``detector``: ``autoencoder`` or ``logmel_knn``)."""
    kind = m["detector"]
    config, state = unpack_tree(m["config"], arrays), unpack_tree(m["state"], arrays)
    unit = {"machine": mid, "section": "00"}
    if kind == "autoencoder":
        return _build_method("autoencoder", dict(config["recipe"]), state), unit
    if kind == "logmel_knn":
        feats = {k: v for k, v in dict(config.get("features") or {}).items()}
        feats.pop("sample_rate", None)
        cfg = {"method": "logmel_knn", "audio": {"sample_rate": int(sample_rate)}, "features": feats,
               "logmel_knn": {"sd_floor_db": float(config.get("sd_floor_db", 0.5))},
               "backend": {"name": "knn", "k": int(config.get("k", 2)), "metric": "euclidean", "group_by": "section"}}
        from ..methods import METHODS, FitContext

        method = METHODS.build("logmel_knn", config=cfg, context=FitContext(device="cpu", quiet=True))
        bank = np.asarray(state["bank"], dtype=np.float64)
        meta = [{"machine": mid, "section": "00", "domain": None, "attribute": "noAttribute", "path": ""}] * len(bank)
        method.bank, method.mu, method.sd = bank, np.asarray(state["mu"], np.float64), np.asarray(state["sd"], np.float64)
        method.train_meta = [dict(r) for r in meta]
        if bank.ndim != 2 or bank.shape[1] != 2 * method.feature_cfg.n_mels:
            raise CheckpointError(f"logmel_knn: saved bank has shape {bank.shape}, expected [N, "
                                  f"{2 * method.feature_cfg.n_mels}]")
        method._fit_backend()
        return method, unit
    raise CheckpointError(f"unknown detector kind {kind!r} (this auscult knows ['autoencoder', 'logmel_knn']); upgrade "
                          f"auscult or refit the bundle")


def load_bundle(path: Union[str, Path]) -> Bundle:
    """Open a ``.auscult`` bundle written by :func:`save_bundle` (or by auscult's first bundle format).

    Raises:
        CheckpointError: missing, not a bundle, truncated/corrupt (zip CRC), a pickled array, made by
            a newer bundle format, or holding a method this auscult does not know -- naming the file.
    Warns:
        BundleVersionWarning: made by another auscult version.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: model bundle not found (make one with 'auscult fit DIR --out {path.name}')")
    if not path.is_file():
        raise CheckpointError(f"{path}: is not a file (pass the .auscult bundle file)")
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            if _JSON not in names or _ARRAYS not in names:
                raise _bad(path, f"not an auscult model bundle (members {sorted(names)[:5]})")
            envelope = json.loads(z.read(_JSON).decode("utf-8"))
            raw_arrays = z.read(_ARRAYS)
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, ValueError,
            UnicodeDecodeError) as exc:
        raise _bad(path, f"not a model bundle or truncated/corrupt ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(envelope, dict) or envelope.get("format") != BUNDLE_FORMAT:
        raise _bad(path, "not an auscult model bundle (no 'auscult-bundle' envelope)")
    fv = envelope.get("format_version")
    if not isinstance(fv, int) or fv > BUNDLE_FORMAT_VERSION or fv < 1:
        made = (envelope.get("versions") or {}).get("auscult", "?")
        raise CheckpointError(f"{path}: bundle format {fv!r} (made by auscult {made}) is newer than this auscult "
                              f"{__version__} reads (format {BUNDLE_FORMAT_VERSION}); upgrade auscult "
                              f"(pip install -U auscult) or refit the bundle with this version")
    made = (envelope.get("versions") or {}).get("auscult")
    if made != __version__:
        warnings.warn(f"{path}: made by auscult {made}, loading with {__version__}; if scores look off, refit it",
                      BundleVersionWarning, stacklevel=2)
    try:
        arrays = read_arrays(raw_arrays, f"{path} ({_ARRAYS})")
    except CheckpointError as exc:
        raise _bad(path, f"its arrays are unreadable ({exc})") from None
    try:
        sr = int(envelope["sample_rate"])
        models = {}
        if fv == 1:
            for mid, m in envelope["machines"].items():
                method, unit = _v1_method(str(mid), m, arrays, sr)
                models[str(mid)] = MachineModel(method, unpack_tree(m["threshold"], arrays),
                                                unpack_tree(m["calibration"], arrays),
                                                unpack_tree(m.get("fit_info") or {}, arrays), unit)
        else:
            methods = [_build_method(str(m["name"]), unpack_tree(m["config"], arrays), unpack_tree(m["state"], arrays))
                       for m in envelope["methods"]]
            for mid, m in envelope["machines"].items():
                models[str(mid)] = MachineModel(methods[int(m["method"])], unpack_tree(m["threshold"], arrays),
                                                unpack_tree(m["calibration"], arrays),
                                                unpack_tree(m.get("fit_info") or {}, arrays),
                                                unpack_tree(m.get("unit") or {}, arrays))
        return Bundle(models, sr, float(envelope["window_s"]), float(envelope["hop_s"]),
                      info=unpack_tree(envelope.get("info") or {}, arrays), versions=envelope.get("versions"), path=path)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    except (KeyError, TypeError, ValueError, IndexError, ConfigError, RuntimeError) as exc:
        raise _bad(path, f"incompatible or damaged contents ({exc.__class__.__name__}: {exc})") from None


# ------------------------------------------------------------------------------------------------
# a research run as a bundle (auscult bundle RUN --out x.auscult)
# ------------------------------------------------------------------------------------------------
def unit_id(machine: str, section: str) -> str:
    """The bundle machine id of a DCASE unit: ``<machine>.section_<SS>``."""
    return f"{machine}.section_{section}"


def bundle_from_run(run_dir: Union[str, Path], out: Union[str, Path, None] = None, calibrate_explain: int = 32,
                    log: Any = None) -> Bundle:
    """A bundle of every trained group of a research run (``auscult run`` / ``train``).

    Each (machine type, section) of the run becomes one bundle machine ``<machine>.section_<SS>``,
    scored by its group's method with the run's threshold for that section; the calibration
    statistics are the scores the threshold was fitted on (``models/<group>/train_scores.csv``).
    For methods that explain, the per-band explanation level is measured on up to
    ``calibrate_explain`` of those clips when their files are still there. The window for long
    recordings is the clip length the group was trained on. Writes ``out`` when given.
    """
    import csv

    from ..audio import AudioConfig
    from ..engine import RunDir
    from ..pipeline.run import group_dir, load_group_model, load_method

    log = log or (lambda msg: None)
    rd = RunDir.open(run_dir)
    cfg = rd.read_config()
    meta = rd.read_meta()
    groups = list(meta.get("groups_done") or [])
    if not groups:
        raise CheckpointError(f"{rd.path}: no trained group in this run; train it first (auscult train ... --out {rd.path})")
    thresholds = json.loads((rd.path / "thresholds.json").read_text(encoding="utf-8"))
    models: dict[str, MachineModel] = {}
    windows: list[float] = []
    for group in groups:
        record = load_group_model(rd.path, group)
        method = load_method(rd.path, group, device="cpu")
        # the channel the run read (audio.channel auto resolved with the run's DCASE year: near for
        # 2026 two-mic clips), so that the bundle reads a multi-channel recording the same way
        channel = AudioConfig(channel=method.audio_config.get("channel", "auto")).for_year(meta.get("year")).channel
        windows.append(float(record.get("clip_seconds") or 0.0))
        rows: dict[tuple[str, str], list[dict[str, str]]] = {}
        scores_csv = group_dir(rd.path, group) / "train_scores.csv"
        if scores_csv.is_file():
            with open(scores_csv, newline="", encoding="utf-8") as f:
                for r in csv.DictReader(f):
                    rows.setdefault((r["machine"], r["section"]), []).append(r)
        for key, thr in sorted(thresholds.items()):
            if thr.get("group") != group:
                continue
            machine, section = key.split("/", 1)
            ref = rows.get((machine, section), [])
            if not ref:
                raise CheckpointError(f"{scores_csv}: no scores of {machine} section {section} (the threshold's "
                                      f"fitting scores); retrain the group")
            cal = calibration_stats([float(r["score"]) for r in ref])
            mm = MachineModel(method, dict(thr), cal, {"run": str(rd.path), "group": group,
                                                       "recipe": cfg.get("name") or cfg["method"],
                                                       "threshold_fitted_on": thr.get("fitted_on"),
                                                       "calibration_min_seconds": _shortest([r["path"] for r in ref]),
                                                       "channel": channel},
                              {"machine": machine, "section": section})
            if method.supports("explain") and calibrate_explain:
                # the method's audio (a two-mic trained method reads one mic here, as the bundle scores)
                acfg = {**method.audio_config, **({"channel": channel} if channel != "both" else {})}
                waves = _ref_waves({"audio": acfg}, [r["path"] for r in ref][:int(calibrate_explain)])
                if waves:
                    mm.calibration.update(explain_calibration(mm, waves))
                else:
                    mm.fit_info["explain_calibration"] = "skipped: the run's training clips are not readable here"
            models[unit_id(machine, section)] = mm
            log(f"{unit_id(machine, section)}: {method.name} of group {group}, threshold {mm.threshold_value:.6g}")
    window_s = max(windows) if windows and max(windows) > 0 else 10.0
    sr = int(dict(cfg.get("audio") or {}).get("sample_rate", 16000))
    bundle = Bundle(models, sr, window_s, window_s / 2,
                    info={"source": "run", "run": str(rd.path), "recipe": cfg.get("name") or cfg["method"],
                          "method": cfg["method"], "data": meta.get("data")})
    if out is not None:
        save_bundle(out, bundle)
    return bundle


def _shortest(paths: Sequence[str]) -> float:
    """The shortest of the clips a run's threshold was fitted on, in seconds (from their headers; a
    fixed-length recipe pads or tiles shorter clips, so a clip that short is still a calibrated length
    for the input-quality check's ``too_short``). 0.0 when none is readable here (no window check)."""
    from ..audio import audio_info
    from ..errors import AudioError

    durations = []
    for p in paths:
        try:
            durations.append(float(audio_info(p)["duration"]))
        except AudioError:
            continue
    return min(durations) if durations else 0.0


def _ref_waves(cfg: dict[str, Any], paths: Sequence[str]) -> list[np.ndarray]:
    from ..audio import AudioConfig, decode_audio
    from ..errors import AudioError

    acfg = AudioConfig.from_dict(dict(cfg.get("audio") or {}))
    out = []
    for p in paths:
        try:
            out.append(decode_audio(p, AudioConfig(sample_rate=acfg.sample_rate, channel=acfg.channel)))
        except AudioError:
            return []
    return out
