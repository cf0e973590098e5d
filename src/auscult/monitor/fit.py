"""Fit a model bundle on a folder of normal recordings (``auscult fit DIR --out model.auscult``).

What it does, per machine:

1. **Finds the recordings.** ``DIR/*.wav|flac`` are one machine (named after ``DIR``, or
   ``--machine``); ``DIR/<name>/**`` are machine ``<name>``; a CSV manifest (see
   :mod:`auscult.data.manifest`) names machines per row. Files whose DCASE-style names say
   ``test`` or ``anomaly`` are skipped and reported (fitting uses normal recordings only);
   undecodable files are skipped and reported too.
2. **Cuts them into windows** of ``window_s`` seconds (non-overlapping; the last window aligned to
   the end of the recording; a recording shorter than a window is one window). Any sample rate is
   resampled, any channel count is averaged to mono.
3. **Holds out normals for calibration**, by whole recording (windows of one recording are
   correlated, so they never straddle the split): ``calibration_fraction`` of the recordings; with
   a single recording, its last ``calibration_fraction`` of time.
4. **Picks the detector for the data size** (``method="auto"``):

   * fewer than ``min_net_windows`` training windows -> ``logmel_knn``: a k-NN on per-band log-mel
     mean and spread. A network trained on a handful of clips memorises them and its held-out
     scores say little; a k-NN has nothing to train and no training hyper-parameters to get wrong.
   * otherwise -> ``autoencoder``, the DCASE baseline (dense AE on stacked log-mel frames):
     it models frame-level structure, so a short or intermittent fault that clip statistics
     average away still raises the reconstruction error -- and it explains itself per frame and
     band. Epochs scale with the data (about 2000 optimiser steps, 10 to 100 epochs).

5. **Sets the threshold** for the target false-alarm rate (default 1 %) on the held-out scores:
   the empirical rule (:func:`~auscult.eval.thresholds.false_alarm_threshold`) when the held-out
   set expects at least 10 false alarms at that rate (``n * rate >= 10``), else the quantile
   ``1 - rate`` of a gamma distribution fitted to them (an extrapolation, recorded as such).
"""

from __future__ import annotations

import math
import re
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

from ..errors import AudioError, ConfigError, DataError
from .bundle import Bundle, MachineModel, cut_windows, save_bundle

__all__ = ["FitConfig", "FitReport", "fit_bundle", "discover_recordings", "choose_method", "calibrate_threshold",
           "METHOD_CHOICES"]

METHOD_CHOICES = ("auto", "autoencoder", "logmel_knn")
THRESHOLD_CHOICES = ("auto", "empirical", "gamma")
_MACHINE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SPLIT_FOLDERS = ("train", "test", "source_test", "target_test", "supplemental")
_ANOMALY_NAME = re.compile(r"(^|[_-])(anomaly|abnormal)([_-]|$)")
_DCASE_TEST_NAME = re.compile(r"^section_\d+_((source|target)_)?test_")


@dataclass
class FitConfig:
    """Settings of :func:`fit_bundle` (CLI options of ``auscult fit``).

    Attributes:
        method: ``auto`` (by data size, see the module docstring), ``autoencoder`` or ``logmel_knn``.
        sample_rate: the rate everything is resampled to.
        window_s: clip length for fitting and scoring long recordings, seconds.
        hop_s: hop between scoring windows of long inputs and of ``watch`` (default ``window_s / 2``).
        false_alarm_rate: target fraction of normal windows flagged.
        calibration_fraction: share of recordings (or of a single recording's time) held out.
        min_net_windows: from this many training windows on, ``auto`` trains the autoencoder.
        threshold: ``auto``, ``empirical`` or ``gamma`` (see the module docstring).
        epochs: autoencoder epochs (``None``: scaled to the data).
        knn_k: neighbours of ``logmel_knn``.
        features: :class:`~auscult.features.FeatureConfig` overrides (``n_mels``, ``hop_length``...).
        seed, device: reproducibility and where the autoencoder trains.
    """

    method: str = "auto"
    sample_rate: int = 16000
    window_s: float = 5.0
    hop_s: Optional[float] = None
    false_alarm_rate: float = 0.01
    calibration_fraction: float = 0.25
    min_net_windows: int = 60
    threshold: str = "auto"
    epochs: Optional[int] = None
    knn_k: int = 2
    features: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.method not in METHOD_CHOICES:
            raise ConfigError(f"fit: method must be one of {METHOD_CHOICES}, got {self.method!r}")
        if self.threshold not in THRESHOLD_CHOICES:
            raise ConfigError(f"fit: threshold must be one of {THRESHOLD_CHOICES}, got {self.threshold!r}")
        if not (isinstance(self.window_s, (int, float)) and self.window_s > 0):
            raise ConfigError(f"fit: window_s must be > 0 seconds, got {self.window_s!r}")
        if self.hop_s is not None and not self.hop_s > 0:
            raise ConfigError(f"fit: hop_s must be > 0 seconds, got {self.hop_s!r}")
        if not 0.0 < float(self.false_alarm_rate) < 0.5:
            raise ConfigError(f"fit: false_alarm_rate must be in (0, 0.5), got {self.false_alarm_rate}")
        if not 0.0 < float(self.calibration_fraction) < 1.0:
            raise ConfigError(f"fit: calibration_fraction must be in (0, 1), got {self.calibration_fraction}")
        if self.epochs is not None and (isinstance(self.epochs, bool) or int(self.epochs) < 1):
            raise ConfigError(f"fit: epochs must be >= 1, got {self.epochs!r}")

    @property
    def scoring_hop_s(self) -> float:
        return float(self.hop_s) if self.hop_s is not None else float(self.window_s) / 2


@dataclass
class FitReport:
    """What :func:`fit_bundle` did: per machine summary and every skipped file with the reason."""

    machines: dict[str, dict[str, Any]]
    skipped: list[tuple[str, str]]
    seconds: float
    out: Optional[str] = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------------------------------------
# finding the recordings
# ------------------------------------------------------------------------------------------------
def _is_audio(p: Path) -> bool:
    from ..data.naming import is_audio_path

    return p.is_file() and is_audio_path(p)


def _not_normal_training(p: Path) -> Optional[str]:
    """Why a DCASE-named file is not a normal training recording (None when it may be used)."""
    from ..data.naming import UnparsedNameError, parse_path

    try:
        c = parse_path(p)
    except (UnparsedNameError, Exception):  # not in a DCASE folder layout: look at the name alone
        stem = p.stem.lower()
        if _ANOMALY_NAME.search(stem):
            return "its name marks it as an anomaly (fitting uses normal recordings only)"
        if _DCASE_TEST_NAME.match(stem):
            return "its name marks it as a DCASE test clip (fitting uses training recordings only)"
        return None
    if c.label == "anomaly":
        return "its name marks it as an anomaly (fitting uses normal recordings only)"
    if c.split == "test":
        return "its name marks it as a test clip (fitting uses training recordings only)"
    return None


def discover_recordings(data: Union[str, Path], machine: Optional[str] = None
                        ) -> tuple[dict[str, list[Path]], list[tuple[str, str]]]:
    """Machine id -> its recordings, and ``(path, reason)`` for every file left out.

    See the module docstring for the accepted layouts.
    """
    data = Path(data)
    skipped: list[tuple[str, str]] = []
    found: dict[str, list[Path]] = {}
    if not data.exists():
        raise DataError(f"{data}: not found (pass a folder of normal recordings, an audio file or a manifest CSV)")
    if data.is_file() and data.suffix.lower() == ".csv":
        from ..data.manifest import read_manifest

        for c in read_manifest(data):
            if c.split == "test" or c.label == "anomaly":
                skipped.append((str(c.path), f"manifest row is {c.split}/{c.label} (fitting uses normal training rows)"))
                continue
            found.setdefault(c.machine, []).append(Path(c.path))
    elif data.is_file():
        if not _is_audio(data):
            raise DataError(f"{data}: not a .wav/.flac file or a manifest CSV")
        found[data.parent.name or "machine"] = [data]
    else:
        direct = sorted(p for p in data.iterdir() if _is_audio(p))
        if direct:  # a DCASE split folder (fan/train) is named after its machine folder
            here = data.resolve()
            found[here.parent.name if here.name in _SPLIT_FOLDERS else here.name] = direct
        for sub in sorted(p for p in data.iterdir() if p.is_dir() and not p.name.startswith(".")):
            files = sorted(p for p in sub.rglob("*") if _is_audio(p))
            if files:
                found.setdefault(sub.name, []).extend(files)
        for p in sorted(data.rglob("*")):
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() not in (".wav", ".flac") \
                    and p.suffix.lower() in (".mp3", ".ogg", ".m4a", ".aac", ".aif", ".aiff"):
                skipped.append((str(p), "not a .wav/.flac file (convert it)"))
    out: dict[str, list[Path]] = {}
    for m, files in found.items():
        keep = []
        for p in files:
            why = _not_normal_training(p)
            if why:
                skipped.append((str(p), why))
            else:
                keep.append(p)
        if keep:
            out[m] = keep
    if machine is not None:
        if len(out) > 1:
            raise ConfigError(f"{data}: holds recordings of {len(out)} machines {sorted(out)}; --machine names a "
                              f"single machine (drop it, the folder names are used)")
        out = {machine: files for files in out.values()}
    if not out:
        raise DataError(f"{data}: no normal .wav/.flac recordings found (expected DIR/*.wav for one machine or "
                        f"DIR/<machine>/*.wav for several)" + (f"; {len(skipped)} file(s) left out, e.g. "
                                                               f"{skipped[0][0]}: {skipped[0][1]}" if skipped else ""))
    for m in out:
        if not _MACHINE_ID.match(m):
            raise ConfigError(f"machine name {m!r} cannot be served over HTTP (letters, digits, '.', '_', '-'; "
                              f"start with a letter or digit): rename the folder or pass --machine NAME")
    return out, skipped


# ------------------------------------------------------------------------------------------------
# choices
# ------------------------------------------------------------------------------------------------
def choose_method(n_windows: int, config: FitConfig) -> tuple[str, str]:
    """``(detector kind, why)`` for ``n_windows`` training windows."""
    if config.method != "auto":
        return config.method, f"chosen with --method {config.method}"
    if n_windows < config.min_net_windows:
        return "logmel_knn", (f"{n_windows} training windows (< {config.min_net_windows}): too few to train a "
                              f"network that generalises; a k-NN on log-mel band statistics has nothing to train")
    return "autoencoder", (f"{n_windows} training windows (>= {config.min_net_windows}): enough to train the DCASE "
                           f"autoencoder baseline, which models frame-level structure (short faults) and explains "
                           f"itself per frame and band")


def calibrate_threshold(scores: Sequence[float], rate: float, method: str = "auto") -> dict[str, Any]:
    """Threshold record for a target false-alarm ``rate`` from held-out normal ``scores``."""
    from ..eval.thresholds import false_alarm_threshold, gamma_threshold

    s = np.asarray(scores, dtype=np.float64)
    use_empirical = method == "empirical" or (method == "auto" and s.size * rate >= 10)
    if use_empirical:
        thr = false_alarm_threshold(s, rate=rate).to_dict()
        thr["note"] = f"empirical: at most {rate:g} of {s.size} held-out normal windows above it"
        return thr
    thr = gamma_threshold(s, quantile=1.0 - rate).to_dict()
    thr["expected_false_alarm_rate"] = float(rate)  # 1 - (1 - rate) carries float noise
    thr["note"] = (f"gamma fit to {s.size} held-out normal scores, quantile {1 - rate:g} (extrapolated: "
                   f"{s.size} scores cannot measure a {rate:g} rate directly; add recordings to sharpen it)")
    return thr


# ------------------------------------------------------------------------------------------------
# fitting
# ------------------------------------------------------------------------------------------------
def _decode_all(files: Sequence[Path], sr: int, skipped: list[tuple[str, str]]) -> list[tuple[Path, np.ndarray]]:
    from ..audio import AudioConfig, ResampleWarning, decode_audio

    out = []
    cfg = AudioConfig(sample_rate=sr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResampleWarning)  # one per file would flood; the report lists the rates
        for p in files:
            try:
                out.append((p, decode_audio(p, cfg)))
            except AudioError as exc:
                skipped.append((str(p), exc.reason + (f" ({exc.fix})" if exc.fix else "")))
    return out


def _source_formats(files: Sequence[Path]) -> dict[str, list[int]]:
    """The sample rates and channel counts found in the files' headers (for the fit report)."""
    import soundfile as sf

    rates, channels = set(), set()
    for p in files:
        try:
            i = sf.info(str(p))
        except Exception:  # unreadable files are reported by the decoder
            continue
        rates.add(int(i.samplerate))
        channels.add(int(i.channels))
    return {"source_sample_rates": sorted(rates), "source_channels": sorted(channels)}


def _windows(waves: Sequence[np.ndarray], n: int) -> list[np.ndarray]:
    return [w[a:b] for w in waves for a, b in cut_windows(w.shape[0], n, n)]


def _ae_recipe(config: FitConfig, n_vectors: int, features: dict[str, Any]) -> dict[str, Any]:
    from ..methods.autoencoder import TRAIN_KEYS

    batch = int(TRAIN_KEYS["batch_size"])
    steps = max(1, math.ceil(n_vectors / batch))
    epochs = config.epochs or int(min(100, max(10, math.ceil(2000 / steps))))
    return {"audio": {"sample_rate": config.sample_rate}, "features": {k: v for k, v in features.items() if k != "sample_rate"},
            "train": {"epochs": epochs, "batch_size": batch, "device": config.device},
            "score": {"kind": "mse"}, "seed": config.seed}


#: Feature defaults of fitted bundles: reflect padding, so the first and last frames of a window see
#: audio rather than zeros (zero padding makes the edge frames look anomalous in every map).
FEATURE_DEFAULTS = {"pad_mode": "reflect"}


def _build_detector(kind: str, config: FitConfig, fit_windows: Sequence[np.ndarray]):
    from .detectors import AutoencoderDetector, LogMelKNNDetector

    feats = {**FEATURE_DEFAULTS, "sample_rate": config.sample_rate, **config.features}
    if kind == "logmel_knn":
        return LogMelKNNDetector(feats, k=config.knn_k)
    from ..features import FeatureConfig

    fc = FeatureConfig.from_dict(feats)
    ctx = 5
    n_vec = sum(max(0, fc.frames(w.shape[0]) - ctx + 1) for w in fit_windows)
    return AutoencoderDetector(_ae_recipe(config, n_vec, feats), device=config.device, seed=config.seed)


def _explain_calibration(det, windows: Sequence[np.ndarray]) -> tuple[np.ndarray, float]:
    """Per-band typical level of the raw explanation map on held-out normal windows, and the 99th
    percentile of the resulting per-frame curve (the level normal frames rarely exceed)."""
    from .detectors import calibrated_map, frame_curve, interior_frames

    fc = det.feature_config
    maps = []
    for w in windows:
        t = det.explain_wave(w)
        maps.append(t.tf_map[:, interior_frames(len(t.times), w.shape[0], fc.n_fft, fc.hop_length)])
    raw = np.concatenate(maps, axis=1)
    scale = raw.mean(axis=1)
    scale = np.maximum(scale, 1e-6 * max(float(scale.max()), 1e-12))
    curve = np.concatenate([frame_curve(calibrated_map(m, scale)) for m in maps])
    return scale, float(np.quantile(curve, 0.99))


def _fit_machine(machine: str, recs: list[tuple[Path, np.ndarray]], config: FitConfig,
                 skipped: list[tuple[str, str]], log: Callable[[str], None]) -> MachineModel:
    from ..engine import holdout_split, seed_everything

    sr = config.sample_rate
    win = max(1, int(round(config.window_s * sr)))
    if len(recs) >= 2:
        idx = list(range(len(recs)))
        fit_i, cal_i = holdout_split(idx, config.calibration_fraction, seed=config.seed)
        fit_w = _windows([recs[i][1] for i in fit_i], win)
        cal_w = _windows([recs[i][1] for i in cal_i], win)
        split_desc = f"{len(fit_i)} recordings fit, {len(cal_i)} held out for calibration"
    else:
        x = recs[0][1]
        cut = int(round(x.shape[0] * (1.0 - config.calibration_fraction)))
        fit_w, cal_w = _windows([x[:cut]], win), _windows([x[cut:]], win)
        split_desc = (f"one recording: first {1 - config.calibration_fraction:.0%} fit, last "
                      f"{config.calibration_fraction:.0%} held out for calibration")
    kind, why = choose_method(len(fit_w), config)
    seed_everything(config.seed)
    det = _build_detector(kind, config, fit_w)
    short = [w for w in fit_w + cal_w if w.shape[0] < det.min_samples]
    if short:
        skipped.append((f"{machine}: {len(short)} window(s)", f"shorter than {det.min_samples} samples (too short "
                                                              f"for the model)"))
        fit_w = [w for w in fit_w if w.shape[0] >= det.min_samples]
        cal_w = [w for w in cal_w if w.shape[0] >= det.min_samples]
    from ..eval.thresholds import MIN_SCORES

    if len(fit_w) < 2 or len(cal_w) < MIN_SCORES:
        total = sum(r[1].shape[0] for r in recs) / sr
        raise DataError(f"{machine}: {total:.1f} s of audio give {len(fit_w)} training and {len(cal_w)} calibration "
                        f"windows of {config.window_s:g} s; at least 2 and {MIN_SCORES} are needed -- add recordings "
                        f"or use a shorter --window")
    log(f"{machine}: {kind} on {len(fit_w)} windows ({split_desc}); {why}")
    t0 = time.perf_counter()
    det.fit(fit_w, machine)
    fit_s = time.perf_counter() - t0
    cal = np.asarray(det.score_waves(cal_w), dtype=np.float64)
    thr = calibrate_threshold(cal, float(config.false_alarm_rate), config.threshold)
    band_scale, frame_q99 = _explain_calibration(det, cal_w[:32])
    srt = np.sort(cal)
    if srt.size > 4096:
        srt = srt[np.linspace(0, srt.size - 1, 4096).round().astype(int)]
    calibration = {"n": int(cal.size), "mean": float(cal.mean()), "std": float(cal.std(ddof=1)) if cal.size > 1 else 0.0,
                   "quantiles": {str(q): float(np.quantile(cal, q)) for q in (0.5, 0.9, 0.95, 0.99)},
                   "scores": srt, "band_scale": band_scale, "frame_q99": frame_q99}
    info = {"detector_reason": why, "split": split_desc, "n_recordings": len(recs),
            "seconds_of_audio": float(sum(r[1].shape[0] for r in recs) / sr), "fit_windows": len(fit_w),
            "calibration_windows": len(cal_w), "fit_seconds": round(fit_s, 2),
            "empirical_false_alarm_rate": float(thr["empirical_false_alarm_rate"])}
    if kind == "autoencoder":
        info["epochs"] = int(det.method.train_cfg["epochs"])
    return MachineModel(det, thr, calibration, info)


def fit_bundle(data: Union[str, Path], out: Union[str, Path, None] = None, config: Optional[FitConfig] = None,
               machine: Optional[str] = None, log: Optional[Callable[[str], None]] = None
               ) -> tuple[Bundle, FitReport]:
    """Fit one detector per machine on the normal recordings under ``data``; save to ``out``.

    Returns ``(bundle, report)``. Raises DataError when there is too little usable audio (the
    message says how much is needed) and ConfigError for bad settings.
    """
    config = config or FitConfig()
    log = log or (lambda msg: None)
    t0 = time.perf_counter()
    found, skipped = discover_recordings(data, machine)
    models: dict[str, MachineModel] = {}
    for m, files in found.items():
        recs = _decode_all(files, config.sample_rate, skipped)
        if not recs:
            raise DataError(f"{m}: none of its {len(files)} recording(s) could be decoded; first problem: "
                            f"{skipped[-1][0]}: {skipped[-1][1]}")
        models[m] = _fit_machine(m, recs, config, skipped, log)
        models[m].fit_info.update(_source_formats([p for p, _ in recs]))
    info = {"data": str(Path(data).resolve()), "config": {k: v for k, v in asdict(config).items()},
            "skipped": len(skipped)}
    bundle = Bundle(models, config.sample_rate, config.window_s, config.scoring_hop_s, info=info)
    if out is not None:
        save_bundle(out, bundle)
    report = FitReport(machines={m: {"detector": mm.detector.kind, "threshold": mm.threshold_value,
                                     "threshold_method": mm.threshold["method"],
                                     "expected_false_alarm_rate": mm.expected_false_alarm_rate, **mm.fit_info}
                                 for m, mm in models.items()},
                       skipped=skipped, seconds=round(time.perf_counter() - t0, 2),
                       out=None if out is None else str(out))
    return bundle, report
