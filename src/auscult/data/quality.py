"""The one input-quality check: is this recording machine sound at all?

A dead or disconnected microphone, a saturated preamplifier, a biased sensor, a clip cut to a
fraction of a second or recorded at a rate that lacks the band the model listens to are *sensor
faults*, not machine anomalies. Scoring them gives numbers that mean nothing (digital silence scores
far above any threshold), so every door -- ``auscult fit``, ``score``, ``watch``, ``serve`` and the
research ``run`` -- checks its input here first and reports an :class:`InputFault` instead of a
score:

============== =========================================================================================
code           when (the limits are :data:`LIMITS`, stated in docs/monitoring.md)
============== =========================================================================================
``silent``     RMS of the signal around its mean below ``silent_dbfs`` (-70 dBFS; digital silence is
               -inf). The quietest real DCASE/MIMII clip in the test data is -45.8 dBFS.
``clipped``    at least ``clip_fraction`` (1 %) of the samples at or beyond ``clip_level`` (0.999) of
               full scale: a saturated input. Real clips: 0 samples there (peak 0.45).
``dc_offset``  ``|mean|`` at least ``dc_offset`` (0.05) of full scale: a biased sensor or a broken
               coupling capacitor. Real clips: at most 3e-5.
``too_short``  shorter than ``min_window_fraction`` (0.5) of the model's window, or than the
               method's minimum: the threshold was calibrated on full windows.
``rate_mismatch`` recorded at a lower sample rate than the model's (or than its training
               recordings'): the band above half that rate is missing, and a missing band reads as
               an anomaly. Higher rates are resampled down (nothing the model hears is lost).
============== =========================================================================================

The checks run in the order of that table's codes ``too_short``, ``rate_mismatch``, ``silent``,
``clipped``, ``dc_offset``; the first that trips is the fault. They take a few milliseconds per
minute of audio (one pass of numpy reductions).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Union

import numpy as np

from ..errors import AudioError, DataError

__all__ = ["QualityLimits", "LIMITS", "InputFault", "InputFaultError", "FAULT_CODES", "measure", "check_wave",
           "check_rate", "band_rate"]

#: every input-fault code, in the order the checks run
FAULT_CODES = ("too_short", "rate_mismatch", "silent", "clipped", "dc_offset")


@dataclass(frozen=True)
class QualityLimits:
    """Where a recording stops being machine sound (see the module docstring).

    Attributes:
        silent_dbfs: RMS (around the mean) below this many dB relative to full scale -> ``silent``.
        clip_level: a sample at or beyond this fraction of full scale is at the rail.
        clip_fraction: this share of the samples at the rail -> ``clipped``.
        dc_offset: ``|mean|`` at or above this fraction of full scale -> ``dc_offset``.
        min_window_fraction: shorter than this share of the model's window -> ``too_short``.
    """

    silent_dbfs: float = -70.0
    clip_level: float = 0.999
    clip_fraction: float = 0.01
    dc_offset: float = 0.05
    min_window_fraction: float = 0.5

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


#: the limits every door uses
LIMITS = QualityLimits()


@dataclass(frozen=True)
class InputFault:
    """A recording that is not machine sound: ``code`` (one of :data:`FAULT_CODES`), a readable
    ``reason`` with the measured value and the limit, and ``measured`` (the numbers)."""

    code: str
    reason: str
    measured: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """``{"status": "input_fault", "fault": code, "reason": ..., "measured": {...}}`` (the
        fields every JSON/HTTP result of a fault carries)."""
        return {"status": "input_fault", "fault": self.code, "reason": self.reason, "measured": dict(self.measured)}

    def label(self) -> str:
        """``INPUT FAULT (silent)``: how the console says it."""
        return f"INPUT FAULT ({self.code})"


class InputFaultError(AudioError, DataError):
    """A recording refused as an input fault (not scored). ``fault`` is the :class:`InputFault`;
    ``path`` names the file when there is one."""

    def __init__(self, path: Union[str, Path, None], fault: InputFault, what: Optional[str] = None):
        self.fault = fault
        where = f"{what}: " if what and path is None else ""
        super().__init__(path, f"{where}{fault.label()}: {fault.reason}", _FIXES.get(fault.code))


_FIXES = {
    "silent": "check that the microphone is connected, powered and its gain up",
    "clipped": "lower the input gain or move the sensor away from the source",
    "dc_offset": "check the sensor's bias and coupling, or high-pass the signal before sending it",
    "too_short": "send clips at least as long as the model's window",
    "rate_mismatch": "record at the model's sample rate, or refit the model at this rate: auscult fit --sample-rate",
}


def _as_float(x: np.ndarray) -> np.ndarray:
    a = np.asarray(x)
    if np.issubdtype(a.dtype, np.signedinteger):
        return a.astype(np.float32) / np.float32(-np.iinfo(a.dtype).min)
    if np.issubdtype(a.dtype, np.unsignedinteger):
        mid = np.float32(np.iinfo(a.dtype).max // 2 + 1)
        return (a.astype(np.float32) - mid) / mid
    return a if a.dtype in (np.float32, np.float64) else a.astype(np.float32)


def measure(x: np.ndarray) -> dict[str, float]:
    """Level statistics of a waveform (any shape; all samples together; full scale = 1.0):
    ``rms_dbfs`` (RMS around the mean, dB re full scale, ``-inf`` for a constant signal), ``peak``,
    ``clipped_fraction`` (share of samples at or beyond ``LIMITS.clip_level``), ``dc`` (the mean).

    A few vectorised passes (sum, dot, min, max; the rail count only when the peak reaches it):
    well under a millisecond for a 5 s window at 16 kHz."""
    a = np.ascontiguousarray(_as_float(x)).ravel()
    n = a.size
    if n == 0:
        return {"rms_dbfs": -math.inf, "peak": 0.0, "clipped_fraction": 0.0, "dc": 0.0}
    lo, hi = float(a.min()), float(a.max())
    mean = float(a.sum(dtype=np.float64)) / n
    if lo == hi:  # constant (digital silence or a stuck value): no signal around the mean
        var = 0.0
    else:
        c = a - np.asarray(mean, dtype=a.dtype)  # around the mean: a large DC offset does not hide silence
        var = float(np.dot(c, c)) / n
    peak = max(abs(lo), abs(hi))
    level = LIMITS.clip_level
    clipped = 0.0 if peak < level else float(np.count_nonzero(np.abs(a) >= level)) / n
    return {"rms_dbfs": 10.0 * math.log10(var) if var > 0 else -math.inf, "peak": peak,
            "clipped_fraction": clipped, "dc": mean}


def band_rate(model_rate: int, training_rates: Optional[Iterable[int]] = None) -> int:
    """The lowest native sample rate that carries the whole band the model learned: the model's
    rate, or the lowest rate of its training recordings when those were lower (up-sampled)."""
    rates = [int(r) for r in (training_rates or []) if int(r) > 0]
    return min([int(model_rate), *rates])


def check_rate(native_rate: int, model_rate: int, training_rates: Optional[Iterable[int]] = None
               ) -> Optional[InputFault]:
    """``rate_mismatch`` when a recording at ``native_rate`` lacks part of the band the model
    learned (see :func:`band_rate`); None when it is fine (higher rates are resampled down)."""
    need = band_rate(model_rate, training_rates)
    if int(native_rate) >= need:
        return None
    trained = "" if need == int(model_rate) else f", its training recordings at {need} Hz"
    return InputFault("rate_mismatch",
                      f"recorded at {int(native_rate)} Hz: nothing above {int(native_rate) / 2:g} Hz, but the model "
                      f"listens up to {need / 2:g} Hz (model at {int(model_rate)} Hz{trained}); up-sampling would "
                      f"leave that band empty, which reads as an anomaly",
                      {"sample_rate": int(native_rate), "model_sample_rate": int(model_rate), "band_rate": need})


def check_wave(x: np.ndarray, sample_rate: int, *, window_s: Optional[float] = None, min_samples: int = 0,
               model_rate: Optional[int] = None, training_rates: Optional[Iterable[int]] = None,
               limits: QualityLimits = LIMITS) -> Optional[InputFault]:
    """The input fault of one recording (None when it is machine sound, as far as levels tell).

    Args:
        x: the samples at their native rate (``[T]``, or channels on an axis; full scale 1.0 for
            floats, the dtype's range for integer PCM).
        sample_rate: their rate.
        window_s: the model's window; shorter than ``limits.min_window_fraction`` of it is
            ``too_short`` (None: no window check).
        min_samples: the fewest samples (at ``model_rate``) the method can score at all.
        model_rate, training_rates: for ``rate_mismatch`` (:func:`check_rate`); None: no rate check.
    """
    a = np.asarray(x)
    n = int(a.shape[-1]) if a.ndim else 0
    if a.ndim == 2 and a.shape[0] > a.shape[1]:  # [T, C]
        n = int(a.shape[0])
    sr = int(sample_rate)
    dur = n / sr if sr > 0 else 0.0
    need_s = 0.0
    if window_s is not None:
        need_s = float(limits.min_window_fraction) * float(window_s)
    if min_samples and model_rate:
        need_s = max(need_s, int(min_samples) / float(model_rate))
    if dur < need_s - 1e-9:
        why = (f"too short: {dur:g} s of audio; the model needs at least {need_s:g} s" +
               (f" ({limits.min_window_fraction:g} of its {float(window_s):g} s window, the length its threshold "
                f"was calibrated on)" if window_s is not None else ""))
        return InputFault("too_short", why, {"duration_s": round(dur, 6), "min_duration_s": round(need_s, 6)})
    if model_rate is not None:
        f = check_rate(sr, int(model_rate), training_rates)
        if f is not None:
            return f
    m = measure(a)
    shown = {"rms_dbfs": round(m["rms_dbfs"], 2) if math.isfinite(m["rms_dbfs"]) else None,
             "peak": round(m["peak"], 6), "clipped_fraction": round(m["clipped_fraction"], 6), "dc": round(m["dc"], 6)}
    if not m["rms_dbfs"] >= limits.silent_dbfs:
        level = "digital silence (no signal at all)" if not math.isfinite(m["rms_dbfs"]) and m["dc"] == 0 else (
            "a constant value (no signal)" if not math.isfinite(m["rms_dbfs"]) else f"{m['rms_dbfs']:.1f} dBFS")
        return InputFault("silent", f"{level}, below the {limits.silent_dbfs:g} dBFS a connected microphone on a "
                                    f"running machine exceeds", shown)
    if m["clipped_fraction"] >= limits.clip_fraction:
        return InputFault("clipped", f"{100 * m['clipped_fraction']:.2f} % of the samples at full scale (limit "
                                     f"{100 * limits.clip_fraction:g} %): the input is saturated", shown)
    if abs(m["dc"]) >= limits.dc_offset:
        return InputFault("dc_offset", f"mean {m['dc']:+.3f} of full scale (limit {limits.dc_offset:g}): the sensor "
                                       f"output is biased", shown)
    return None
