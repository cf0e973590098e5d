"""Model bundles: one file that scores and explains new audio of the machines it was fitted on.

::

    from auscult.monitor import load_bundle
    bundle = load_bundle("model.auscult")
    r = bundle.score_file("today.wav")            # ScoreResult(score, decision, threshold, ...)
    e = bundle.explain_waveform(wave, 16000)      # Explanation(times, frame_scores, freqs, tf_map, ...)

The file (``*.auscult``) is a zip archive holding two members and nothing executable:

* ``bundle.json`` -- the versioned envelope: ``format: "auscult-bundle"``, ``format_version``,
  the versions it was made with (auscult, torch, numpy, python), sample rate, window/hop for long
  recordings, and per machine: detector kind and config, threshold record, calibration statistics
  (the held-out normal scores' count, mean, spread, quantiles), what it was fitted on;
* ``arrays.npz`` -- every weight and back-end array, referenced from ``bundle.json`` by key
  (loaded with ``allow_pickle=False``: no pickled code runs when a bundle is opened).

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
import math
import platform
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from .. import __version__
from ..errors import CheckpointError, ConfigError, DataError, EmptyAudioError, NonFiniteAudioError
from ..fileio import atomic_write

__all__ = ["Bundle", "MachineModel", "ScoreResult", "Explanation", "load_bundle", "save_bundle", "cut_windows",
           "BUNDLE_FORMAT", "BUNDLE_FORMAT_VERSION", "BundleVersionWarning"]

BUNDLE_FORMAT = "auscult-bundle"
BUNDLE_FORMAT_VERSION = 1
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
        frame_scores: ``[F]`` per-frame anomaly (mean of ``tf_map`` over frequency).
        freqs: ``[K]`` band centre frequencies in Hz (mel bands).
        tf_map: ``[K, F]`` anomaly per band and frame (frequency first, time second).
        spectrogram: ``[K, F]`` the input's log-mel spectrogram in dB (to draw under the map).
        score: the input's anomaly score (as one clip), ``threshold``, ``decision``, ``machine``.
        frame_threshold: the frame-score level normal training frames rarely exceed (the 99th
            percentile of per-frame scores of held-out normals, when calibrated; else None).
        method: how the map is computed (one line).
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


@dataclass
class MachineModel:
    """One machine's detector with its threshold and calibration statistics."""

    detector: Any
    threshold: dict[str, Any]          # auscult.eval.thresholds.Threshold.to_dict()
    calibration: dict[str, Any]        # n, mean, std, quantiles, sorted scores, frame_q99
    fit_info: dict[str, Any] = field(default_factory=dict)

    @property
    def threshold_value(self) -> float:
        return float(self.threshold["value"])

    @property
    def expected_false_alarm_rate(self) -> float:
        return float(self.threshold["expected_false_alarm_rate"])


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

    def prepare(self, wave: np.ndarray, sample_rate: int, what: str = "waveform") -> np.ndarray:
        """A mono float32 waveform at the bundle's rate (mixes channels, resamples with a warning).

        Raises EmptyAudioError / NonFiniteAudioError / DataError (too short) naming ``what``.
        """
        from ..audio import ResampleWarning, resample

        x = np.asarray(wave)
        if x.ndim == 2:  # [T, C] or [C, T]: the shorter axis is the channels
            x = x.mean(axis=1 if x.shape[0] >= x.shape[1] else 0)
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
        sr = int(sample_rate)
        if sr <= 0:
            raise ConfigError(f"{what}: sample_rate must be positive, got {sample_rate}")
        if sr != self.sample_rate:
            warnings.warn(f"resampling {what} from {sr} Hz to the bundle's {self.sample_rate} Hz", ResampleWarning,
                          stacklevel=3)
            x = resample(x, sr, self.sample_rate)
        return np.ascontiguousarray(x, dtype=np.float32)

    def _check_length(self, x: np.ndarray, det: Any, what: str) -> None:
        if x.shape[0] < det.min_samples:
            raise DataError(f"{what}: {x.shape[0]} samples ({x.shape[0] / self.sample_rate:.3f} s) is too short; "
                            f"this model needs at least {det.min_samples} samples "
                            f"({det.min_samples / self.sample_rate:.3f} s)")

    def _result(self, machine: str, mm: MachineModel, score: float, extra: dict[str, Any]) -> ScoreResult:
        thr = mm.threshold_value
        cal = mm.calibration
        scores = np.asarray(cal.get("scores", []), dtype=np.float64)
        ex = {"detector": mm.detector.kind}
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
        x = self.prepare(wave, sample_rate, what)
        self._check_length(x, mm.detector, what)
        if x.shape[0] <= 1.5 * self.window_samples:
            ranges = [(0, x.shape[0])]
        else:
            ranges = cut_windows(x.shape[0], self.window_samples, self.hop_samples)
        scores = mm.detector.score_waves([x[a:b] for a, b in ranges])
        return ranges, np.asarray(scores, dtype=np.float64)

    def score_waveform(self, wave: np.ndarray, sample_rate: int, machine: Optional[str] = None) -> ScoreResult:
        """Score one waveform (any length, any rate; ``[T]`` or ``[T, C]``) as ``machine``."""
        name, mm = self.model(machine)
        return self._score(wave, sample_rate, name, mm, "waveform")

    def _score(self, wave, sample_rate, name, mm, what) -> ScoreResult:
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

    def score_file(self, path: Union[str, Path], machine: Optional[str] = None) -> ScoreResult:
        """Decode an audio file (typed AudioError naming it) and score it."""
        from ..audio import AudioConfig, decode_audio

        name, mm = self.model(machine)
        x = decode_audio(path, AudioConfig(sample_rate=self.sample_rate))
        return self._score(x, self.sample_rate, name, mm, str(path))

    def explain_waveform(self, wave: np.ndarray, sample_rate: int, machine: Optional[str] = None) -> Explanation:
        """Per-frame anomaly curve and time-frequency map of a waveform (scored as one clip).

        The detector's raw map (see :mod:`auscult.monitor.detectors`) is divided, band by band, by
        its typical level on held-out normal audio (``1`` = normal for that band), frames whose
        analysis window runs past either end of the input are left out, and the per-frame curve is
        the mean of each frame's most anomalous 1/32 of the bands, smoothed over 5 frames
        (:func:`~auscult.monitor.detectors.frame_curve`).
        """
        from .detectors import calibrated_map, frame_curve, interior_frames

        name, mm = self.model(machine)
        x = self.prepare(wave, sample_rate)
        self._check_length(x, mm.detector, "waveform")
        t = mm.detector.explain_wave(x)
        fc = mm.detector.feature_config
        keep = interior_frames(len(t.times), x.shape[0], fc.n_fft, fc.hop_length)
        scale = mm.calibration.get("band_scale")
        tf = calibrated_map(t.tf_map[:, keep], None if scale is None else np.asarray(scale))
        thr = mm.threshold_value
        fq = mm.calibration.get("frame_q99")
        base = ("squared AE reconstruction residual per frame and mel band (averaged over the stacked vectors "
                "containing the frame; the clip score is their mean)" if mm.detector.kind == "autoencoder" else
                "squared z-score of each frame's log-mel band against the nearest normal clip's band mean and spread")
        method = base + ("; divided per band by its level on held-out normals" if scale is not None else "")
        return Explanation(times=t.times[keep], frame_scores=frame_curve(tf), freqs=t.freqs, tf_map=tf,
                           spectrogram=t.spectrogram[:, keep], score=t.score, threshold=thr,
                           decision=bool(t.score > thr), machine=name,
                           frame_threshold=None if fq is None else float(fq), method=method)

    def explain_file(self, path: Union[str, Path], machine: Optional[str] = None) -> Explanation:
        """:meth:`explain_waveform` of an audio file."""
        from ..audio import AudioConfig, decode_audio

        return self.explain_waveform(decode_audio(path, AudioConfig(sample_rate=self.sample_rate)), self.sample_rate,
                                     machine)

    def describe(self) -> dict[str, Any]:
        """Plain summary: machines, detectors, thresholds, calibration sizes, versions."""
        return {
            "path": str(self.path) if self.path else None,
            "sample_rate": self.sample_rate, "window_s": self.window_s, "hop_s": self.hop_s,
            "versions": self.versions,
            "machines": {m: {"detector": mm.detector.describe(), "threshold": mm.threshold_value,
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
# (de)serialisation: JSON skeleton + npz arrays, no pickle
# ------------------------------------------------------------------------------------------------
def _versions() -> dict[str, str]:
    import numpy

    out = {"auscult": __version__, "numpy": numpy.__version__, "python": platform.python_version()}
    try:
        import torch

        out["torch"] = torch.__version__
    except ImportError:  # pragma: no cover
        pass
    return out


def _pack(obj: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(obj, (str, bool)) or obj is None:
        return obj
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else {"__float__": repr(v)}
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            raise CheckpointError("cannot store an object array in a bundle")
        key = f"a{len(arrays)}"
        arrays[key] = np.ascontiguousarray(obj)
        return {"__ndarray__": key}
    if type(obj).__module__.startswith("torch") and hasattr(obj, "detach"):
        key = f"a{len(arrays)}"
        t = obj.detach().cpu()
        arrays[key] = t.numpy() if str(t.dtype) != "torch.bfloat16" else t.float().numpy()
        return {"__tensor__": key, "dtype": str(t.dtype)}
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _pack(v, arrays) for k, v in obj.items()}
        return {"__items__": [[_pack(k, arrays), _pack(v, arrays)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_pack(v, arrays) for v in obj]}
    if isinstance(obj, (list,)):
        return [_pack(v, arrays) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    raise CheckpointError(f"cannot store a {type(obj).__name__} in a bundle (plain data, arrays and tensors only)")


def _unpack(obj: Any, arrays: Any) -> Any:
    if isinstance(obj, list):
        return [_unpack(v, arrays) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__ndarray__" in obj:
        return np.asarray(arrays[obj["__ndarray__"]])
    if "__tensor__" in obj:
        import torch

        t = torch.from_numpy(np.array(arrays[obj["__tensor__"]]))
        if obj.get("dtype") == "torch.bfloat16":
            t = t.to(torch.bfloat16)
        return t
    if "__float__" in obj:
        return float(obj["__float__"])
    if "__tuple__" in obj:
        return tuple(_unpack(v, arrays) for v in obj["__tuple__"])
    if "__items__" in obj:
        return {_unpack(k, arrays): _unpack(v, arrays) for k, v in obj["__items__"]}
    return {k: _unpack(v, arrays) for k, v in obj.items()}


def save_bundle(path: Union[str, Path], bundle: Bundle) -> Path:
    """Write ``bundle`` to ``path`` (one file, atomic: a crash never leaves a half-written bundle).

    Returns the path. The envelope records the bundle format version and the library versions.
    """
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    machines = {}
    for mid, mm in bundle.models.items():
        machines[mid] = {
            "detector": mm.detector.kind,
            "config": _pack(mm.detector.config(), arrays),
            "state": _pack(mm.detector.state(), arrays),
            "threshold": _pack(mm.threshold, arrays),
            "calibration": _pack(mm.calibration, arrays),
            "fit_info": _pack(mm.fit_info, arrays),
        }
    envelope = {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_FORMAT_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(),
        "sample_rate": bundle.sample_rate,
        "window_s": bundle.window_s,
        "hop_s": bundle.hop_s,
        "info": _pack(bundle.info, arrays),
        "machines": machines,
    }
    buf = io.BytesIO()
    np.savez(buf, **arrays)

    def _write(f):
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as z:
            z.writestr(_JSON, json.dumps(envelope, indent=1))
            z.writestr(_ARRAYS, buf.getvalue())

    atomic_write(path, _write)
    bundle.path = path
    return path


def _bad(path: Path, why: str) -> CheckpointError:
    return CheckpointError(f"{path}: {why}; refit it with 'auscult fit DIR --out {path.name}'")


def load_bundle(path: Union[str, Path]) -> Bundle:
    """Open a ``.auscult`` bundle written by :func:`save_bundle`.

    Raises:
        CheckpointError: missing, not a bundle, truncated/corrupt (zip CRC), made by a newer
            bundle format, or holding a detector this auscult does not know -- naming the file.
    Warns:
        BundleVersionWarning: made by another auscult version.
    """
    from .detectors import detector_from_saved

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
        with np.load(io.BytesIO(raw_arrays), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as exc:
        raise _bad(path, f"its arrays are unreadable ({exc.__class__.__name__}: {exc})") from None
    try:
        models = {}
        for mid, m in envelope["machines"].items():
            det = detector_from_saved(m["detector"], _unpack(m["config"], arrays), _unpack(m["state"], arrays))
            models[str(mid)] = MachineModel(det, _unpack(m["threshold"], arrays), _unpack(m["calibration"], arrays),
                                            _unpack(m.get("fit_info") or {}, arrays))
        return Bundle(models, int(envelope["sample_rate"]), float(envelope["window_s"]), float(envelope["hop_s"]),
                      info=_unpack(envelope.get("info") or {}, arrays), versions=envelope.get("versions"), path=path)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    except (KeyError, TypeError, ValueError, ConfigError, RuntimeError) as exc:
        raise _bad(path, f"incompatible or damaged contents ({exc.__class__.__name__}: {exc})") from None
