"""Decision thresholds from normal data only.

Three ways to turn anomaly scores into decisions (score > threshold -> anomaly), each fitted on
*normal* scores only (training normals or held-out normals; never test clips):

* :func:`gamma_threshold` -- fit a gamma distribution to training-normal scores and take its
  ``quantile`` (0.9 by default), as the official DCASE baselines do
  (``scipy.stats.gamma.fit`` then ``gamma.ppf``).
* :func:`percentile_threshold` -- the empirical percentile of held-out normal scores.
* :func:`false_alarm_threshold` -- the lowest threshold whose false-alarm rate on held-out
  normals does not exceed a target (the setting an engineer thinks in: "at most 1 in 100").

:func:`fit_threshold` is the one entry point both doors use (``auscult run``'s ``threshold:`` recipe
section and ``auscult fit``'s ``--threshold``): ``gamma``, ``percentile``, ``false_alarm_rate`` or
``auto`` -- the empirical false-alarm rule when the normal scores expect at least
:data:`AUTO_MIN_FALSE_ALARMS` false alarms at the target rate (``n * rate >= 10``), else the
quantile ``1 - rate`` of a gamma fit (an extrapolation, and the record says so).

Each returns a :class:`Threshold` record that says what it expects. Too few scores (fewer than
:data:`MIN_SCORES`), non-finite or constant scores raise :class:`~auscult.errors.DataError`; an
out-of-range setting raises :class:`~auscult.errors.ConfigError`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError

__all__ = ["Threshold", "MIN_SCORES", "THRESHOLD_METHODS", "AUTO_MIN_FALSE_ALARMS", "fit_threshold", "gamma_threshold",
           "percentile_threshold", "false_alarm_threshold"]

#: the methods :func:`fit_threshold` knows
THRESHOLD_METHODS: tuple[str, ...] = ("gamma", "percentile", "false_alarm_rate", "auto")
#: ``auto`` uses the empirical rule from this many expected false alarms on (``n * rate``)
AUTO_MIN_FALSE_ALARMS: int = 10

MIN_SCORES: int = 5
"""The fewest normal scores any threshold is fitted on."""


@dataclass(frozen=True)
class Threshold:
    """A decision threshold and what it promises.

    Attributes:
        value: decide "anomaly" when ``score > value``.
        method: ``"gamma"``, ``"percentile"`` or ``"false_alarm_rate"``.
        expected_false_alarm_rate: the fraction of normal clips expected above ``value``
            (under the fitted model for ``gamma``, empirical otherwise).
        n_scores: how many normal scores it was fitted on.
        empirical_false_alarm_rate: fraction of the fitting scores above ``value``.
        params: method-specific details (gamma shape/loc/scale, the quantile, ...).
        note: one line on how it was chosen (``auto``: why this rule; an extrapolation says so).
    """

    value: float
    method: str
    expected_false_alarm_rate: float
    n_scores: int
    empirical_false_alarm_rate: float
    params: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    def decide(self, scores) -> np.ndarray:
        """0/1 decisions (1 = anomaly) for ``scores``."""
        return (np.asarray(scores, dtype=np.float64) > self.value).astype(np.int64)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _normal_scores(scores, what: str) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64).ravel()
    if s.size < MIN_SCORES:
        raise DataError(f"{what}: {s.size} normal score(s); at least {MIN_SCORES} are needed to fit a threshold")
    if not np.isfinite(s).all():
        raise DataError(f"{what}: {int((~np.isfinite(s)).sum())} non-finite normal score(s); fix the scorer first")
    if np.ptp(s) == 0.0:
        raise DataError(f"{what}: all {s.size} normal scores equal {s[0]!r}; a threshold cannot be fitted to a constant")
    return s


def _fa(s: np.ndarray, value: float) -> float:
    return float((s > value).mean())


def _check_fraction(x: float, name: str) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number in (0, 1), got {x!r}") from None
    if not 0.0 < v < 1.0:
        raise ConfigError(f"{name} must be in (0, 1), got {x}")
    return v


def gamma_threshold(train_normal_scores, quantile: float = 0.9) -> Threshold:
    """Fit a gamma distribution (shape, loc, scale) to training-normal scores and return its
    ``quantile`` -- the official DCASE baselines' decision threshold.

    ``expected_false_alarm_rate`` is ``1 - quantile`` (what the fitted model promises);
    ``empirical_false_alarm_rate`` shows how well it held on the fitting scores.
    """
    import scipy.stats

    q = _check_fraction(quantile, "quantile")
    s = _normal_scores(train_normal_scores, "gamma threshold")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            shape, loc, scale = scipy.stats.gamma.fit(s)
            value = float(scipy.stats.gamma.ppf(q, shape, loc=loc, scale=scale))
        except (ValueError, RuntimeError, FloatingPointError) as exc:
            raise DataError(f"gamma threshold: the gamma fit failed on {s.size} scores ({exc})") from None
    if not math.isfinite(value):
        raise DataError(
            f"gamma threshold: the gamma fit on {s.size} scores gave a non-finite quantile "
            f"(shape={shape:.3g}, loc={loc:.3g}, scale={scale:.3g}); use percentile_threshold instead"
        )
    return Threshold(
        value=value,
        method="gamma",
        expected_false_alarm_rate=round(1.0 - q, 12),  # 1 - 0.99 is 0.010000000000000009
        n_scores=int(s.size),
        empirical_false_alarm_rate=_fa(s, value),
        params={"quantile": q, "shape": float(shape), "loc": float(loc), "scale": float(scale)},
    )


def percentile_threshold(heldout_normal_scores, percentile: float = 90.0) -> Threshold:
    """The ``percentile`` (0-100, linear interpolation) of held-out normal scores."""
    try:
        pct = float(percentile)
    except (TypeError, ValueError):
        raise ConfigError(f"percentile must be a number in (0, 100), got {percentile!r}") from None
    if not 0.0 < pct < 100.0:
        raise ConfigError(f"percentile must be in (0, 100), got {percentile}")
    s = _normal_scores(heldout_normal_scores, "percentile threshold")
    value = float(np.percentile(s, pct))
    fa = _fa(s, value)
    return Threshold(
        value=value,
        method="percentile",
        expected_false_alarm_rate=fa,
        n_scores=int(s.size),
        empirical_false_alarm_rate=fa,
        params={"percentile": pct},
    )


def false_alarm_threshold(heldout_normal_scores, rate: float = 0.01) -> Threshold:
    """The lowest threshold (a held-out normal score) whose false-alarm rate on the held-out
    normals is at most ``rate``.

    The resolution is ``1 / n``: a target below it cannot be estimated, so ``rate < 1/n`` raises
    :class:`DataError` asking for more held-out normals (``ceil(1/rate)`` are needed).
    """
    r = _check_fraction(rate, "false-alarm rate")
    s = _normal_scores(heldout_normal_scores, "false-alarm threshold")
    n = s.size
    if r * n < 1.0:
        raise DataError(
            f"false-alarm threshold: a rate of {r:g} needs at least {math.ceil(1.0 / r)} held-out normal "
            f"scores to be estimated, got {n}"
        )
    ordered = np.sort(s)
    allowed = int(math.floor(r * n + 1e-9))  # normal clips allowed above the threshold
    # the (n - allowed)-th smallest score: at most `allowed` scores lie strictly above it, and any
    # lower value has at least allowed + 1 above it, so it is the lowest valid threshold
    value = ordered[n - allowed - 1]
    value = float(value)
    fa = _fa(s, value)
    return Threshold(
        value=value,
        method="false_alarm_rate",
        expected_false_alarm_rate=fa,
        n_scores=int(n),
        empirical_false_alarm_rate=fa,
        params={"target_rate": r, "allowed_false_alarms": allowed},
    )


def fit_threshold(normal_scores, method: str = "gamma", *, quantile: float = 0.9, percentile: float = 90.0,
                  rate: float = 0.01) -> Threshold:
    """The decision threshold of ``normal_scores`` by ``method`` (see the module docstring).

    Args:
        method: ``gamma`` (``quantile``), ``percentile`` (``percentile``), ``false_alarm_rate``
            (``rate``) or ``auto`` (``rate``: empirical when ``n * rate >= 10``, else a gamma fit
            at the quantile ``1 - rate``).
    """
    if method == "gamma":
        return gamma_threshold(normal_scores, quantile=quantile)
    if method == "percentile":
        return percentile_threshold(normal_scores, percentile=percentile)
    if method == "false_alarm_rate":
        return false_alarm_threshold(normal_scores, rate=rate)
    if method != "auto":
        raise ConfigError(f"threshold method must be one of {THRESHOLD_METHODS}, got {method!r}")
    r = _check_fraction(rate, "false-alarm rate")
    n = int(np.asarray(normal_scores).size)
    if n * r >= AUTO_MIN_FALSE_ALARMS:
        t = false_alarm_threshold(normal_scores, rate=r)
        return replace(t, note=f"empirical: at most {r:g} of {t.n_scores} held-out normal scores above it")
    t = gamma_threshold(normal_scores, quantile=1.0 - r)
    return replace(t, expected_false_alarm_rate=r,
                   note=(f"gamma fit to {t.n_scores} held-out normal scores, quantile {1 - r:g} (extrapolated: "
                         f"{t.n_scores} scores cannot measure a {r:g} rate directly; add recordings to sharpen it)"))
