"""Fit a model bundle on a folder of normal recordings (``auscult fit DIR --out model.auscult``).

Any registered method fits this way (``--method autoencoder | logmel_knn | clsia | osscl | protoasd |
ssl4asd``, or ``auto``). What it does:

1. **Finds the recordings** (:func:`discover_recordings`, with the one audio-file finder
   :func:`auscult.data.naming.find_audio_files`). ``DIR/*.wav|flac`` are one machine (named after
   ``DIR``, or ``--machine``); ``DIR/<name>/**`` are machine ``<name>``; a CSV manifest (see
   :mod:`auscult.data.manifest`) names machines per row. Files whose DCASE-style names say ``test``
   or ``anomaly`` are skipped and reported (fitting uses normal recordings only); undecodable files
   and audio in formats auscult does not read are skipped and reported too. A machine whose DCASE
   file names span several sections becomes one unit per section (``<machine>.section_<SS>``).
2. **Cuts them into windows** of ``window_s`` seconds (non-overlapping; the last window aligned to
   the end of the recording; a recording shorter than a window is one window). Any sample rate is
   resampled; a multi-channel recording is read with ``channel`` (default the mean of its channels;
   ``near`` / ``far`` take channel 0 / 1 of a DCASE 2026 two-microphone recording, an integer that
   channel), and the bundle reads multi-channel input the same way afterwards.
3. **Holds out normals for calibration**, by whole recording (windows of one recording are
   correlated, so they never straddle the split): ``calibration_fraction`` of the recordings; with
   a single recording, its last ``calibration_fraction`` of time.
4. **Fits the method.** ``auto`` picks per unit by data size (:func:`choose_method`). The
   autoencoder and ``logmel_knn`` fit one model per unit. Classification methods (CLSIA, OS-SCL,
   ProtoASD, SSL4ASD, ``encoder_ft``) fit one model on every unit of the folder together, the units
   being their classes; with a single class, OS-SCL, ProtoASD and ``encoder_ft`` refuse (a :class:`~auscult.errors.DataError`
   naming the methods that work on one machine) and CLSIA / SSL4ASD say in the report what they do
   instead (:attr:`auscult.methods.Method.one_class`). A method starts from its ``fit_preset`` (settings
   sized for a CPU and a folder of recordings), then ``--feature`` / ``--epochs`` / ``--set`` apply.
5. **Sets the threshold** for the target false-alarm rate (default 1 %) on the held-out scores
   (:func:`auscult.eval.thresholds.fit_threshold`, ``auto``): the empirical rule when the held-out
   set expects at least 10 false alarms at that rate (``n * rate >= 10``), else the quantile
   ``1 - rate`` of a gamma distribution fitted to them (an extrapolation, recorded as such).
"""

from __future__ import annotations

import copy
import re
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

from ..errors import AudioError, ConfigError, DataError
from .bundle import Bundle, MachineModel, calibration_stats, cut_windows, explain_calibration, save_bundle, unit_id

__all__ = ["FitConfig", "FitReport", "fit_bundle", "discover_recordings", "choose_method", "calibrate_threshold",
           "method_choices", "fit_recipe", "THRESHOLD_CHOICES"]

THRESHOLD_CHOICES = ("auto", "empirical", "gamma")
_MACHINE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SPLIT_FOLDERS = ("train", "test", "source_test", "target_test", "supplemental")
_ANOMALY_NAME = re.compile(r"(^|[_-])(anomaly|abnormal)([_-]|$)")
_DCASE_TEST_NAME = re.compile(r"^section_\d+_((source|target)_)?test_")

#: Feature defaults of fitted bundles: reflect padding, so the first and last frames of a window see
#: audio rather than zeros (zero padding makes the edge frames look anomalous in every map).
FEATURE_DEFAULTS = {"pad_mode": "reflect"}


def method_choices() -> tuple[str, ...]:
    """``auto`` and every registered method."""
    from ..methods import METHODS

    return ("auto", *METHODS.names())


@dataclass
class FitConfig:
    """Settings of :func:`fit_bundle` (CLI options of ``auscult fit``).

    Attributes:
        method: ``auto`` (by data size, see :func:`choose_method`) or any registered method.
        sample_rate: the rate everything is resampled to.
        window_s: clip length for fitting and scoring long recordings, seconds.
        hop_s: hop between scoring windows of long inputs and of ``watch`` (default ``window_s / 2``).
        false_alarm_rate: target fraction of normal windows flagged.
        calibration_fraction: share of recordings (or of a single recording's time) held out.
        min_net_windows: ``None`` (default): ``auto`` always picks ``bandstats``, measured ahead of the
            autoencoder at every size measured (see :func:`choose_method`); a number: from this many
            training windows on, ``auto`` trains the autoencoder instead (an opt-in, not measured).
        threshold: ``auto``, ``empirical`` or ``gamma`` (see the module docstring).
        epochs: training epochs of a neural method (``None``: its preset; the autoencoder's scales
            with the data).
        knn_k: neighbours of ``logmel_knn``.
        features: :class:`~auscult.features.FeatureConfig` overrides (``n_mels``, ``hop_length``...).
        overrides: ``key.path=value`` recipe overrides for the method (``--set``), applied last.
        seed, device: reproducibility and where networks train.
        channel: how a multi-channel recording is read (:func:`~auscult.monitor.bundle.input_channel`):
            ``mean`` (default), ``near`` / ``far`` (channel 0 / 1 of a two-microphone recording) or a
            channel index; mono recordings are used as they are. Recorded in the bundle, which reads
            multi-channel input the same way (``watch``, ``score``, the service).
    """

    method: str = "auto"
    sample_rate: int = 16000
    window_s: float = 5.0
    hop_s: Optional[float] = None
    false_alarm_rate: float = 0.01
    calibration_fraction: float = 0.25
    min_net_windows: Optional[int] = None
    threshold: str = "auto"
    epochs: Optional[int] = None
    knn_k: int = 2
    features: dict[str, Any] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    seed: int = 0
    device: str = "cpu"
    channel: Union[str, int] = "mean"

    def __post_init__(self) -> None:
        from .bundle import input_channel

        self.channel = input_channel(self.channel, "fit: --channel")  # auto -> mean; ConfigError for both / unknown
        choices = method_choices()
        if self.method not in choices:
            raise ConfigError(f"fit: method must be one of {choices}, got {self.method!r}")
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
        if self.min_net_windows is not None and (isinstance(self.min_net_windows, bool)
                                                 or not isinstance(self.min_net_windows, int) or self.min_net_windows < 1):
            raise ConfigError(f"fit: min_net_windows must be a positive integer or None, got {self.min_net_windows!r}")
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
    #: recordings left out as input faults (:mod:`auscult.data.quality`): ``{"path", "fault", "reason"}`` each
    input_faults: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------------------------------------
# finding the recordings
# ------------------------------------------------------------------------------------------------
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
    from ..data.naming import find_audio_files, is_audio_path

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
        if not is_audio_path(data):
            raise DataError(f"{data}: not a .wav/.flac file or a manifest CSV")
        found[data.parent.name or "machine"] = [data]
    else:
        direct, other = find_audio_files(data, recursive=False)
        skipped.extend((str(p), why) for p, why in other)
        if direct:  # a DCASE split folder (fan/train) is named after its machine folder
            here = data.resolve()
            found[here.parent.name if here.name in _SPLIT_FOLDERS else here.name] = direct
        for sub in sorted(p for p in data.iterdir() if p.is_dir() and not p.name.startswith(".")):
            files, other = find_audio_files(sub)
            skipped.extend((str(p), why) for p, why in other)
            if files:
                found.setdefault(sub.name, []).extend(files)
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
    """``(method, why)`` for a unit with ``n_windows`` training windows: the ``auto`` rule.

    The rule, in one place, and the figures behind it (docs/benchmarks.md, small data; one unit, a
    model per unit -- several units in one folder are each fitted alone, by the same rule):

    * ``bandstats`` (band mean and band flux statistics, a Mahalanobis member each, z-fused;
      threshold from leave-one-recording-out scores), at every size. Measured on the real gearbox
      folder (DCASE 2021 gearbox section 00) at N = 25 / 50 / 95 ten-second clips, it scored
      73.8 / 72.5 / 73.0 AUC and 56.6 / 66.8 / 67.3 pAUC; the autoencoder 62.7 / 58.1 / 56.4 AUC,
      ``logmel_knn`` 60.6 / 58.0 / 56.0 AUC. On 9 simulated units (gearbox, fan, bearing x 3 units,
      the reworked simulator; 3 seeds each) at N = 95 and N = 300 ten-second clips (3000 s of audio,
      600 windows of the default 5 s), it was ahead of the autoencoder at both sizes: AUC
      63.5 / 64.5 against 57.1 / 56.7 (``logmel_knn`` 59.7 / 60.0; mean over the units), ahead on 8
      of the 9 units at each size; the autoencoder did not gain from 95 to 300 clips. The folder of real clips holds 195 normals, so sizes above
      95 were measured on simulated units only.
    * several units in one folder change nothing: each unit is fitted alone by this rule. Fine-tuning
      the shipped encoder on the units as classes (``encoder_ft``) was measured against it on 3
      simulated units x 50 clips of gearbox and fan (3 seeds, benchmarks/bench_finetune.py): 54.7-56.7
      AUC against 54.9 for the frozen encoder v1 (v2: 58.1-58.8 against 60.1) and 61.7 for
      ``bandstats`` -- not picked.
    * ``config.min_net_windows`` (``--min-net-windows N``, default unset) opts in to the
      ``autoencoder`` from N windows on: a network that models frame-level structure. Until
      2026-12-07 this was the default from 200 windows on, without a measurement at that size; the
      measurement above did not support it.

    An explicit ``--method`` is used as given.
    """
    if config.method != "auto":
        return config.method, f"chosen with --method {config.method}"
    if config.min_net_windows is not None and n_windows >= config.min_net_windows:
        return "autoencoder", (f"{n_windows} training windows (>= --min-net-windows {config.min_net_windows}): the "
                               f"DCASE autoencoder baseline, which models frame-level structure, as asked")
    return "bandstats", (f"{n_windows} training windows: band statistics with Mahalanobis back-ends, measured best "
                         f"on one unit at every size measured (real gearbox N=95: 73.0 AUC vs 56.4 for the "
                         f"autoencoder; simulated units up to 300 ten-second clips)")


def calibrate_threshold(scores: Sequence[float], rate: float, method: str = "auto", gamma_loc: str = "fit"
                        ) -> dict[str, Any]:
    """Threshold record for a target false-alarm ``rate`` from held-out normal ``scores``: the one
    threshold function (:func:`auscult.eval.thresholds.fit_threshold`) with ``auto``, ``empirical``
    (= ``false_alarm_rate``) or ``gamma`` (the quantile ``1 - rate`` of a gamma fit)."""
    from ..eval.thresholds import fit_threshold

    kind = {"empirical": "false_alarm_rate"}.get(method, method)
    return fit_threshold(np.asarray(scores, dtype=np.float64), kind, quantile=1.0 - float(rate),
                         rate=float(rate), gamma_loc=gamma_loc).to_dict()


# ------------------------------------------------------------------------------------------------
# the recipe a method is fitted with
# ------------------------------------------------------------------------------------------------
def fit_recipe(name: str, config: FitConfig, n_windows: int) -> dict[str, Any]:
    """The resolved recipe ``auscult fit`` builds method ``name`` with: the method's ``fit_preset``
    (:meth:`auscult.methods.Method.fit_preset`, scaled to ``n_windows`` training windows), the
    audio settings of the bundle (the sample rate; fixed-length methods tile/crop to the window),
    feature defaults and ``--feature`` values, ``--epochs``, then the ``--set`` overrides."""
    from ..methods import METHODS
    from ..pipeline.recipe import apply_overrides, validate_recipe

    cls = METHODS.get(name).factory
    feats0 = {**FEATURE_DEFAULTS, **dict(cls.fit_defaults.get("features") or {}), **dict(config.features),
              "sample_rate": int(config.sample_rate)}
    preset = copy.deepcopy(cls.fit_preset(n_windows=n_windows, window_samples=int(round(config.window_s * config.sample_rate)),
                                          knn_k=config.knn_k, features=feats0))
    audio = {"sample_rate": int(config.sample_rate)}
    if cls.fixed_length:
        audio.update(length="tile", duration=float(config.window_s))
    feats = {**FEATURE_DEFAULTS, **dict(preset.pop("features", {}) or {}), **dict(config.features),
             "sample_rate": int(config.sample_rate)}
    recipe = {"method": name, "seed": int(config.seed), "model_per": "all", **preset, "audio": audio, "features": feats,
              "data": {"holdout": 0.0}, "threshold": {"method": "auto", "rate": float(config.false_alarm_rate)}}
    if config.epochs is not None and "train" in METHODS.sections(name):  # methods that train (not logmel_knn)
        recipe.setdefault("train", {})
        recipe["train"] = {**dict(recipe["train"] or {}), "epochs": int(config.epochs)}
    if "train" in recipe and name == "autoencoder":
        recipe["train"] = {**recipe["train"], "device": config.device}
    recipe = apply_overrides(recipe, config.overrides)
    return validate_recipe(recipe, source=f"auscult fit --method {name}", build=False)


# ------------------------------------------------------------------------------------------------
# fitting
# ------------------------------------------------------------------------------------------------
def _decode_all(files: Sequence[Path], sr: int, skipped: list[tuple[str, str]],
                faults: Optional[list[dict[str, Any]]] = None, window_s: Optional[float] = None,
                channel: Union[str, int] = "mean") -> list[tuple[Path, np.ndarray]]:
    """Decode ``files`` at ``sr`` (a multi-channel file with the ``channel`` policy, a mono one as it
    is); undecodable ones (and a file without the policy's channel) go to ``skipped``, input faults (silent,
    clipped, DC offset, shorter than half a window, a rate below ``sr``: the shared check of
    :mod:`auscult.data.quality`, at each file's own rate) to ``faults``: a sensor fault is not
    normal machine sound, and training on it would teach the model that silence is normal."""
    from ..audio import AudioConfig, ResampleWarning, SilentAudioWarning, audio_info, decode_audio, resample
    from ..data.quality import check_wave

    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResampleWarning)  # one per file would flood; the report lists the rates
        warnings.simplefilter("ignore", SilentAudioWarning)  # the input-fault list says it, once per file
        for p in files:
            try:
                info = audio_info(p)
                native = int(info["sample_rate"])
                x = decode_audio(p, AudioConfig(sample_rate=native,
                                                channel=channel if int(info["channels"]) > 1 else "mean"))
            except AudioError as exc:
                skipped.append((str(p), exc.reason + (f" ({exc.fix})" if exc.fix else "")))
                continue
            fault = check_wave(x, native, window_s=window_s, model_rate=sr)
            if fault is not None and faults is not None:
                faults.append({"path": str(p), "fault": fault.code, "reason": fault.reason})
                continue
            out.append((p, resample(x, native, sr) if native != sr else x))
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


def _section_of(p: Path) -> tuple[str, Optional[str]]:
    """``(section, domain)`` from a DCASE-style file name (``("00", None)`` for other names)."""
    from ..data.naming import parse_path

    try:
        c = parse_path(p)
    except Exception:  # not a DCASE name: one unit per machine
        return "00", None
    if not str(c.layout).startswith("dcase"):
        return "00", None
    return str(c.section), c.domain


@dataclass
class _Unit:
    """One machine (or one section of a machine) of the folder: its recordings and windows."""

    uid: str
    machine: str
    section: str
    recs: list[tuple[Path, np.ndarray]]
    fit_w: list[np.ndarray] = field(default_factory=list)
    cal_w: list[np.ndarray] = field(default_factory=list)
    split_desc: str = ""
    fit_rec: list[int] = field(default_factory=list)  # per fit window: its recording (hold_out=False)
    cal_rec: list[int] = field(default_factory=list)  # per calibration window: its recording (several held out)

    def cut(self, config: FitConfig, hold_out: bool = True) -> None:
        """Cut the recordings into windows: a share held out for calibration, or (``hold_out=False``,
        for methods that calibrate on their own leave-one-recording-out scores) every window fitted,
        each tagged with its recording (a single recording: ten consecutive blocks of it)."""
        from ..engine import holdout_split

        win = max(1, int(round(config.window_s * config.sample_rate)))
        if not hold_out:
            per = [_windows([x], win) for _, x in self.recs]
            self.fit_w = [w for ws in per for w in ws]
            self.cal_w = []
            if len(self.recs) >= 2:
                self.fit_rec = [i for i, ws in enumerate(per) for _ in ws]
                self.split_desc = (f"all {len(self.recs)} recordings fit; threshold from leave-one-recording-out "
                                   f"scores")
            else:
                n = len(self.fit_w)
                self.fit_rec = [j * min(10, n) // max(n, 1) for j in range(n)]
                self.split_desc = ("one recording, all fit; threshold from scores of each tenth of it left out in "
                                   "turn")
            return
        if len(self.recs) >= 2:
            fit_i, cal_i = holdout_split(list(range(len(self.recs))), config.calibration_fraction, seed=config.seed)
            self.fit_w = _windows([self.recs[i][1] for i in fit_i], win)
            self.cal_w = _windows([self.recs[i][1] for i in cal_i], win)
            self.cal_rec = [i for i in cal_i for _ in cut_windows(self.recs[i][1].shape[0], win, win)]
            self.split_desc = f"{len(fit_i)} recordings fit, {len(cal_i)} held out for calibration"
        else:
            x = self.recs[0][1]
            cut = int(round(x.shape[0] * (1.0 - config.calibration_fraction)))
            self.fit_w, self.cal_w = _windows([x[:cut]], win), _windows([x[cut:]], win)
            self.split_desc = (f"one recording: first {1 - config.calibration_fraction:.0%} fit, last "
                               f"{config.calibration_fraction:.0%} held out for calibration")

    @property
    def seconds(self) -> float:
        return float(sum(r[1].shape[0] for r in self.recs))


def _units(found: dict[str, list[tuple[Path, np.ndarray]]]) -> list[_Unit]:
    units = []
    for machine, recs in found.items():
        by_section: dict[str, list[tuple[Path, np.ndarray]]] = {}
        for p, x in recs:
            by_section.setdefault(_section_of(p)[0], []).append((p, x))
        if len(by_section) == 1:
            (section, rs), = by_section.items()
            units.append(_Unit(machine, machine, section, rs))
        else:
            units.extend(_Unit(unit_id(machine, s), machine, s, rs) for s, rs in sorted(by_section.items()))
    return units


def _one_class(name: str, cls: Any, units: Sequence[_Unit]) -> Optional[str]:
    """Refuse, or the note saying what a classification method does with a single class."""
    if cls.classes is None or len(units) >= 2:
        return None
    if cls.one_class == "refuse":
        from ..methods import METHODS

        alone = [n for n in METHODS.names() if METHODS.get(n).factory.classes is None
                 or METHODS.get(n).factory.one_class != "refuse"]
        raise DataError(f"{name} learns to tell machines (units) apart and this folder holds a single one "
                        f"({units[0].uid}): with one class its loss carries no training signal. Add recordings of "
                        f"other machines or units as sub-folders (DIR/<machine>/...), or fit a method that works on "
                        f"one machine: --method {' | '.join(['auto', *alone])}")
    return f"one class ({units[0].uid}): {name} {cls.one_class}"


def _fit_group(name: str, units: list[_Unit], config: FitConfig, skipped: list[tuple[str, str]],
               log: Callable[[str], None], why: dict[str, str]) -> dict[str, MachineModel]:
    """Fit method ``name`` on the fit windows of ``units`` (one model) and calibrate each unit."""
    from ..data.source import WaveformSource
    from ..engine import seed_everything
    from ..eval.thresholds import MIN_SCORES
    from ..methods import METHODS, FitContext

    cls = METHODS.get(name).factory
    self_cal = bool(getattr(cls, "calibrates_itself", False))  # thresholds on its leave-one-recording-out scores
    note = _one_class(name, cls, units)
    recipe = fit_recipe(name, config, sum(len(u.fit_w) for u in units))
    seed_everything(config.seed)
    context = FitContext(device=config.device, seed=config.seed, quiet=True, group="monitor")
    method = METHODS.build(name, config=recipe, context=context)
    for u in units:
        short = [w for w in u.fit_w + u.cal_w if w.shape[0] < method.min_samples]
        if short:
            skipped.append((f"{u.uid}: {len(short)} window(s)", f"shorter than {method.min_samples} samples (too "
                                                                f"short for the model)"))
            if u.fit_rec:
                u.fit_rec = [r for w, r in zip(u.fit_w, u.fit_rec) if w.shape[0] >= method.min_samples]
            u.fit_w = [w for w in u.fit_w if w.shape[0] >= method.min_samples]
            if u.cal_rec:
                u.cal_rec = [r for w, r in zip(u.cal_w, u.cal_rec) if w.shape[0] >= method.min_samples]
            u.cal_w = [w for w in u.cal_w if w.shape[0] >= method.min_samples]
        if self_cal and (len(u.fit_w) < MIN_SCORES or len(set(u.fit_rec)) < 2):
            raise DataError(f"{u.uid}: {u.seconds / config.sample_rate:.1f} s of audio give {len(u.fit_w)} windows of "
                            f"{config.window_s:g} s; {name} needs at least {MIN_SCORES} (and 2 recordings or blocks) "
                            f"-- add recordings or use a shorter --window")
        if not self_cal and (len(u.fit_w) < 2 or len(u.cal_w) < MIN_SCORES):
            raise DataError(f"{u.uid}: {u.seconds / config.sample_rate:.1f} s of audio give {len(u.fit_w)} training and "
                            f"{len(u.cal_w)} calibration windows of {config.window_s:g} s; at least 2 and {MIN_SCORES} "
                            f"are needed -- add recordings or use a shorter --window")
    src = WaveformSource(method.audio_config)
    clips = [src.add(w, u.machine, section=u.section, split="train", label="normal") for u in units for w in u.fit_w]
    if self_cal:  # windows of one recording are left out together
        recs = [f"{u.uid}/{r}" for u in units for r in u.fit_rec]
        context.extra["recording_of"] = {str(c.path): r for c, r in zip(clips, recs)}
    for u in units:
        log(f"{u.uid}: {name} on {len(u.fit_w)} windows ({u.split_desc}); {why[u.uid]}"
            + (f" [{note}]" if note else ""))
    t0 = time.perf_counter()
    method.fit(clips, [], src)
    fit_s = time.perf_counter() - t0
    out: dict[str, MachineModel] = {}
    for u in units:
        mm = MachineModel(method, {}, {}, unit={"machine": u.machine, "section": u.section})
        if self_cal:
            assert len(units) == 1, "a self-calibrating method is fitted per unit"
            cal = method.reference_scores()
        else:
            cal = mm.score_waves(u.cal_w)
        if not np.isfinite(cal).all():
            raise DataError(f"{u.uid}: {name} gave non-finite scores on the calibration windows")
        # leave-one-out scores of a back-end (Mahalanobis, k-NN) are heavy-tailed: the free-location
        # gamma fit put 2 of 12 such thresholds far too low on the real gearbox (41-98 % false alarms,
        # see eval.thresholds.gamma_threshold); the location fixed at the smallest score did not
        mm.threshold = calibrate_threshold(cal, float(config.false_alarm_rate), config.threshold,
                                           gamma_loc="min" if self_cal else "fit")
        mm.calibration = calibration_stats(cal)
        if method.supports("explain"):
            mm.calibration.update(explain_calibration(mm, (u.cal_w or u.fit_w)[:32],
                                                      groups=((u.cal_rec if u.cal_w else u.fit_rec)[:32] or None)))
        mm.fit_info = {"method": name, "detector_reason": why[u.uid], "split": u.split_desc,
                       "n_recordings": len(u.recs), "seconds_of_audio": u.seconds / config.sample_rate,
                       "fit_windows": len(u.fit_w), "calibration_windows": len(cal) if self_cal else len(u.cal_w),
                       "calibration": "leave-one-recording-out" if self_cal else "held-out recordings",
                       "fit_seconds": round(fit_s, 2),
                       "empirical_false_alarm_rate": float(mm.threshold["empirical_false_alarm_rate"]),
                       "units_in_model": [v.uid for v in units]}
        if note:
            mm.fit_info["one_class"] = note
        if "train" in recipe and isinstance(recipe["train"], dict) and "epochs" in recipe["train"]:
            mm.fit_info["epochs"] = int(recipe["train"]["epochs"])
        mm.fit_info.update(_source_formats([p for p, _ in u.recs]))
        mm.fit_info["channel"] = config.channel  # the bundle reads multi-channel input as the fit did
        out[u.uid] = mm
    return out


def fit_bundle(data: Union[str, Path], out: Union[str, Path, None] = None, config: Optional[FitConfig] = None,
               machine: Optional[str] = None, log: Optional[Callable[[str], None]] = None
               ) -> tuple[Bundle, FitReport]:
    """Fit a bundle on the normal recordings under ``data``; save it to ``out`` (when given).

    Returns ``(bundle, report)``. Raises DataError when there is too little usable audio (the
    message says how much is needed) or a classification method gets a single class, and
    ConfigError for bad settings.
    """
    from ..methods import METHODS

    config = config or FitConfig()
    log = log or (lambda msg: None)
    t0 = time.perf_counter()
    found, skipped = discover_recordings(data, machine)
    decoded: dict[str, list[tuple[Path, np.ndarray]]] = {}
    faults: list[dict[str, Any]] = []
    for m, files in found.items():
        n_faults = len(faults)
        recs = _decode_all(files, config.sample_rate, skipped, faults, config.window_s, config.channel)
        if recs:
            decoded[m] = recs
            continue
        mine = faults[n_faults:]
        if mine:  # e.g. an all-silent folder: an error that says so, not a model of silence
            kinds = {}
            for f in mine:
                kinds[f["fault"]] = kinds.get(f["fault"], 0) + 1
            raise DataError(f"{m}: every usable recording is an input fault, not machine sound ("
                            f"{', '.join(f'{n} {k}' for k, n in sorted(kinds.items(), key=lambda kv: -kv[1]))} of "
                            f"{len(files)}); e.g. {mine[0]['path']}: INPUT FAULT ({mine[0]['fault']}): "
                            f"{mine[0]['reason']}. Check the microphone and its gain, and record again")
        raise DataError(f"{m}: none of its {len(files)} recording(s) could be decoded; first problem: "
                        f"{skipped[-1][0]}: {skipped[-1][1]}")
    units = _units(decoded)
    for u in units:
        u.cut(config)
    groups: dict[str, list[_Unit]] = {}
    why: dict[str, str] = {}
    for u in units:
        name, reason = choose_method(len(u.fit_w), config)
        why[u.uid] = reason
        if getattr(METHODS.get(name).factory, "calibrates_itself", False):
            u.cut(config, hold_out=False)
        if METHODS.get(name).factory.classes is None:  # one model per unit
            groups[f"{name}:{u.uid}"] = [u]
        else:  # one model over every unit: the units are its classes
            groups.setdefault(name, []).append(u)
    models: dict[str, MachineModel] = {}
    for key, members in groups.items():
        models.update(_fit_group(key.split(":", 1)[0], members, config, skipped, log, why))
    info = {"data": str(Path(data).resolve()), "config": {k: v for k, v in asdict(config).items()},
            "skipped": len(skipped), "input_faults": len(faults), "source": "fit"}
    bundle = Bundle(models, config.sample_rate, config.window_s, config.scoring_hop_s, info=info)
    if out is not None:
        save_bundle(out, bundle)
    report = FitReport(machines={m: {"detector": mm.kind, "method": mm.kind, "threshold": mm.threshold_value,
                                     "threshold_method": mm.threshold["method"],
                                     "expected_false_alarm_rate": mm.expected_false_alarm_rate, **mm.fit_info}
                                 for m, mm in models.items()},
                       skipped=skipped, seconds=round(time.perf_counter() - t0, 2),
                       out=None if out is None else str(out), input_faults=faults)
    return bundle, report
