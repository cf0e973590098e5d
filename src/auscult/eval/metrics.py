"""Detection metrics, one implementation each, named for exactly what they compute.

Conventions: ``y_true`` is 1 for anomalous and 0 for normal clips (booleans and the strings
``"anomaly"``/``"normal"`` are accepted too); higher scores mean "more anomalous".

Partial AUC, and why there are two
----------------------------------
The DCASE evaluators report ``pAUC`` as scikit-learn's ``roc_auc_score(y, s, max_fpr=0.1)``.
That is **not** the raw partial area: scikit-learn applies the McClish standardisation, which
maps the raw partial area ``A`` (area under the ROC curve for FPR in [0, p]) to::

    pauc_mcclish = 0.5 * (1 + (A - p**2 / 2) / (p - p**2 / 2))

so that a chance-level detector (``A = p**2/2``) scores 0.5 and a perfect one (``A = p``) 1.0.
A detector worse than chance gets below 0.5 (scikit-learn does not clip; the lowest value is
``0.5 * (1 - (p/2) / (1 - p/2))`` ~ 0.474 for p = 0.1 since ``A >= 0``).

* :func:`pauc_mcclish` -- the official number (``sklearn.roc_auc_score(max_fpr=p)``).
* :func:`pauc_raw` -- ``A / p``: the mean TPR over FPR in [0, p] (chance p/2, perfect 1.0).
* :func:`mcclish_from_raw` / :func:`raw_from_mcclish` convert between them.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np

from ..errors import DataError

__all__ = [
    "MetricInputError",
    "MAX_FPR",
    "EPSILON",
    "auc",
    "pauc_mcclish",
    "pauc_raw",
    "mcclish_from_raw",
    "raw_from_mcclish",
    "auc_source_vs_all_anomalies",
    "auc_target_vs_all_anomalies",
    "auc_domain_vs_all_anomalies",
    "precision_recall_f1",
    "arithmetic_mean",
    "harmonic_mean_official",
    "min_auc",
]

MAX_FPR: float = 0.1
"""The FPR bound p of the official pAUC."""

EPSILON: float = sys.float_info.epsilon
"""Machine epsilon; the official evaluators floor values at it before a harmonic mean."""


class MetricInputError(DataError, ValueError):
    """Labels/scores that a metric cannot be computed on (one class missing, NaN, mismatched lengths)."""


def _as_labels(y_true, what: str = "y_true") -> np.ndarray:
    arr = np.asarray(y_true)
    if arr.dtype.kind in "UO":
        mapping = {"normal": 0, "anomaly": 1, "0": 0, "1": 1}
        try:
            arr = np.array([mapping[str(v)] for v in arr.ravel()], dtype=np.int64)
        except KeyError as exc:
            raise MetricInputError(f"{what}: unknown label {exc.args[0]!r} (use 0/1 or 'normal'/'anomaly')") from None
    arr = np.asarray(arr).ravel()
    if arr.dtype == bool:
        arr = arr.astype(np.int64)
    if arr.size and not np.isin(arr, (0, 1)).all():
        bad = arr[~np.isin(arr, (0, 1))][0]
        raise MetricInputError(f"{what} must hold 0 (normal) or 1 (anomaly), found {bad!r}")
    return arr.astype(np.int64)


def _as_scores(y_score, n: int, what: str = "scores") -> np.ndarray:
    s = np.asarray(y_score, dtype=np.float64).ravel()
    if s.size != n:
        raise MetricInputError(f"{what}: {s.size} values for {n} labels")
    if not np.isfinite(s).all():
        k = int((~np.isfinite(s)).sum())
        raise MetricInputError(f"{what}: {k} non-finite value(s) (NaN/Inf); fix the scorer before evaluating")
    return s


def _checked(y_true, y_score) -> tuple[np.ndarray, np.ndarray]:
    y = _as_labels(y_true)
    s = _as_scores(y_score, y.size)
    n_pos, n_neg = int(y.sum()), int(y.size - y.sum())
    if n_pos == 0 or n_neg == 0:
        missing = "anomalous" if n_pos == 0 else "normal"
        raise MetricInputError(
            f"AUC needs both normal and anomalous clips; got {n_neg} normal and {n_pos} anomalous "
            f"(no {missing} clips in this group)"
        )
    return y, s


def _check_p(max_fpr: float) -> float:
    p = float(max_fpr)
    if not 0.0 < p <= 1.0:
        raise MetricInputError(f"max_fpr must be in (0, 1], got {max_fpr}")
    return p


def auc(y_true, y_score) -> float:
    """Area under the ROC curve (ties count one half): P(score_anomaly > score_normal) + 0.5 P(=)."""
    from sklearn.metrics import roc_auc_score

    y, s = _checked(y_true, y_score)
    return float(roc_auc_score(y, s))


def pauc_mcclish(y_true, y_score, max_fpr: float = MAX_FPR) -> float:
    """The official DCASE pAUC: McClish-standardised partial AUC over FPR in [0, max_fpr].

    Identical to ``sklearn.metrics.roc_auc_score(y_true, y_score, max_fpr=max_fpr)``.
    Chance = 0.5, perfect = 1.0; see the module docstring for the conversion.
    """
    from sklearn.metrics import roc_auc_score

    y, s = _checked(y_true, y_score)
    p = _check_p(max_fpr)
    if p == 1.0:
        return float(roc_auc_score(y, s))
    return float(roc_auc_score(y, s, max_fpr=p))


def _partial_area(y: np.ndarray, s: np.ndarray, p: float) -> float:
    """Area under the ROC curve for FPR in [0, p] (ties give diagonal segments)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y, s)
    stop = int(np.searchsorted(fpr, p, side="right"))
    if stop >= fpr.size:  # p == 1
        x, t = fpr, tpr
    else:
        t_at_p = float(np.interp(p, fpr[stop - 1 : stop + 1], tpr[stop - 1 : stop + 1]))
        x = np.append(fpr[:stop], p)
        t = np.append(tpr[:stop], t_at_p)
    return float(np.sum(np.diff(x) * (t[1:] + t[:-1]) / 2.0))


def pauc_raw(y_true, y_score, max_fpr: float = MAX_FPR) -> float:
    """Raw partial area under the ROC curve over FPR in [0, max_fpr], divided by max_fpr.

    This is the mean TPR over that FPR range (chance = max_fpr / 2, perfect = 1.0). It is *not*
    the DCASE pAUC; :func:`mcclish_from_raw` converts it to :func:`pauc_mcclish`.
    """
    y, s = _checked(y_true, y_score)
    p = _check_p(max_fpr)
    return _partial_area(y, s, p) / p


def mcclish_from_raw(raw_over_p: float, max_fpr: float = MAX_FPR) -> float:
    """Convert :func:`pauc_raw` (A / p) to :func:`pauc_mcclish`: 0.5 * (1 + (A - p²/2) / (p - p²/2))."""
    p = _check_p(max_fpr)
    a = float(raw_over_p) * p
    lo, hi = p * p / 2.0, p
    return 0.5 * (1.0 + (a - lo) / (hi - lo))


def raw_from_mcclish(mcclish: float, max_fpr: float = MAX_FPR) -> float:
    """Inverse of :func:`mcclish_from_raw`: the raw partial area divided by p."""
    p = _check_p(max_fpr)
    lo, hi = p * p / 2.0, p
    a = lo + (2.0 * float(mcclish) - 1.0) * (hi - lo)
    return a / p


def _domain_mask(domains: Sequence, n: int) -> np.ndarray:
    d = np.asarray([str(x) if x is not None else "" for x in np.asarray(domains, dtype=object).ravel()])
    if d.size != n:
        raise MetricInputError(f"domains: {d.size} values for {n} labels")
    bad = sorted(set(d) - {"source", "target"})
    if bad:
        raise MetricInputError(f"domains must be 'source' or 'target', found {bad[:3]}")
    return d


def auc_domain_vs_all_anomalies(y_true, y_score, domains, domain: str) -> float:
    """AUC of one domain's normal clips against **all** anomalous clips of the group (both domains).

    This is the DCASE 2022-2026 per-domain AUC.
    """
    y = _as_labels(y_true)
    s = _as_scores(y_score, y.size)
    d = _domain_mask(domains, y.size)
    keep = (y == 1) | (d == domain)
    if not ((y == 0) & (d == domain)).any():
        raise MetricInputError(f"AUC ({domain}) needs {domain}-domain normal clips; this group has none")
    return auc(y[keep], s[keep])


def auc_source_vs_all_anomalies(y_true, y_score, domains) -> float:
    """AUC(source) as in DCASE 2022-2026: source-domain normals vs all anomalies of the section."""
    return auc_domain_vs_all_anomalies(y_true, y_score, domains, "source")


def auc_target_vs_all_anomalies(y_true, y_score, domains) -> float:
    """AUC(target) as in DCASE 2022-2026: target-domain normals vs all anomalies of the section."""
    return auc_domain_vs_all_anomalies(y_true, y_score, domains, "target")


def precision_recall_f1(y_true, decisions) -> tuple[float, float, float]:
    """Precision, recall and F1 of binary decisions (1 = anomaly), as the official evaluators compute
    them: each denominator is floored at machine epsilon, so an empty denominator gives 0, not NaN."""
    y = _as_labels(y_true)
    dec = _as_labels(decisions, "decisions")
    if dec.size != y.size:
        raise MetricInputError(f"decisions: {dec.size} values for {y.size} labels")
    tp = float(((y == 1) & (dec == 1)).sum())
    fp = float(((y == 0) & (dec == 1)).sum())
    fn = float(((y == 1) & (dec == 0)).sum())
    prec = tp / max(tp + fp, EPSILON)
    rec = tp / max(tp + fn, EPSILON)
    f1 = 2.0 * prec * rec / max(prec + rec, EPSILON)
    return prec, rec, f1


def _values(values, what: str) -> np.ndarray:
    v = np.asarray(list(values), dtype=np.float64).ravel()
    if v.size == 0:
        raise MetricInputError(f"{what} of no values")
    if not np.isfinite(v).all():
        raise MetricInputError(f"{what}: non-finite value among {v.tolist()}")
    return v


def arithmetic_mean(values) -> float:
    """Plain arithmetic mean."""
    return float(_values(values, "arithmetic mean").mean())


def harmonic_mean_official(values) -> float:
    """Harmonic mean with every value floored at machine epsilon first (the official evaluators'
    ``scipy.stats.hmean(numpy.maximum(values, sys.float_info.epsilon))``): one zero does not
    make the mean undefined, it drags it to about n * epsilon."""
    v = np.maximum(_values(values, "harmonic mean"), EPSILON)
    return float(v.size / np.sum(1.0 / v))


def min_auc(values) -> float:
    """mAUC: the minimum AUC over the sections (or IDs) of one machine type."""
    return float(_values(values, "mAUC").min())
