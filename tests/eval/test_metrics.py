"""Metrics against independent references written here from the definitions."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from auscult.eval import metrics as M
from auscult.eval.protocols import summarize

P = 0.1


def mann_whitney_auc(y, s):
    """P(anomaly score > normal score) + 0.5 P(equal), by counting every pair."""
    y, s = np.asarray(y), np.asarray(s, dtype=float)
    pos, neg = s[y == 1], s[y == 0]
    wins = sum((a > b) + 0.5 * (a == b) for a in pos for b in neg)
    return wins / (len(pos) * len(neg))


def hand_roc(y, s):
    """ROC points built by sweeping a threshold down through the unique scores."""
    y, s = np.asarray(y), np.asarray(s, dtype=float)
    n_pos, n_neg = (y == 1).sum(), (y == 0).sum()
    pts = [(0.0, 0.0)]
    for t in sorted(set(s.tolist()), reverse=True):
        flagged = s >= t
        pts.append((((y == 0) & flagged).sum() / n_neg, ((y == 1) & flagged).sum() / n_pos))
    return pts


def partial_area(points, p):
    """Trapezoids under the piecewise-linear ROC, cut at FPR = p."""
    area = 0.0
    for (x0, y0), (x1, y1) in zip(points[:-1], points[1:]):
        if x0 >= p:
            break
        if x1 > p:  # cut the segment at p
            y1 = y0 + (y1 - y0) * (p - x0) / (x1 - x0)
            x1 = p
        area += (x1 - x0) * (y0 + y1) / 2
    return area


def mcclish(area, p):
    lo, hi = p * p / 2, p
    return 0.5 * (1 + (area - lo) / (hi - lo))


def _random_case(seed, n=60, ties=False):
    rng = np.random.default_rng(seed)
    y = np.r_[np.zeros(n // 2, int), np.ones(n - n // 2, int)]
    rng.shuffle(y)
    s = rng.normal(size=n) + 0.8 * y
    if ties:
        s = np.round(s * 2) / 2
    return y, s


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("ties", [False, True])
def test_auc_and_paucs_match_independent_references(seed, ties):
    y, s = _random_case(seed, ties=ties)
    assert M.auc(y, s) == pytest.approx(mann_whitney_auc(y, s), abs=1e-12)
    area = partial_area(hand_roc(y, s), P)
    assert M.pauc_raw(y, s) == pytest.approx(area / P, abs=1e-12)
    assert M.pauc_mcclish(y, s) == pytest.approx(mcclish(area, P), abs=1e-12)
    # and the official number is literally sklearn's max_fpr pAUC
    assert M.pauc_mcclish(y, s) == pytest.approx(roc_auc_score(y, s, max_fpr=P), abs=1e-12)
    # the documented conversion round-trips
    assert M.mcclish_from_raw(M.pauc_raw(y, s)) == pytest.approx(M.pauc_mcclish(y, s), abs=1e-12)
    assert M.raw_from_mcclish(M.pauc_mcclish(y, s)) == pytest.approx(M.pauc_raw(y, s), abs=1e-12)


def test_hand_worked_cases():
    # 2 normals, 2 anomalies: pairs (0.35>0.1), (0.35<0.4), (0.8>0.1), (0.8>0.4) -> 3/4
    assert M.auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    # all tied -> chance
    assert M.auc([0, 1, 0, 1], [1, 1, 1, 1]) == pytest.approx(0.5)
    # string labels work too
    assert M.auc(["normal", "anomaly"], [0.0, 1.0]) == 1.0
    # 10 normals, one anomaly above all of them and one below: ROC jumps to TPR 0.5 at FPR 0
    y = [0] * 10 + [1, 1]
    s = list(range(10)) + [100, -100]
    assert M.pauc_raw(y, s) == pytest.approx(0.5)
    assert M.pauc_mcclish(y, s) == pytest.approx(0.5 * (1 + (0.05 - 0.005) / (0.1 - 0.005)))
    # perfect and perfectly wrong detectors: 1.0 and the McClish floor ~0.474
    y = [0] * 5 + [1] * 5
    assert M.pauc_mcclish(y, range(10)) == pytest.approx(1.0)
    assert M.pauc_raw(y, range(10)) == pytest.approx(1.0)
    floor = 0.5 * (1 - (P / 2) / (1 - P / 2))
    assert M.pauc_mcclish(y, list(range(10))[::-1]) == pytest.approx(floor)
    assert floor == pytest.approx(0.4737, abs=1e-4)
    assert M.pauc_raw(y, list(range(10))[::-1]) == pytest.approx(0.0)


def test_one_class_missing_and_bad_input_are_clear_errors():
    with pytest.raises(M.MetricInputError, match="no anomalous clips"):
        M.auc([0, 0, 0], [1, 2, 3])
    with pytest.raises(M.MetricInputError, match="no normal clips"):
        M.pauc_mcclish([1, 1], [1, 2])
    with pytest.raises(M.MetricInputError, match="non-finite"):
        M.auc([0, 1], [0.0, np.nan])
    with pytest.raises(M.MetricInputError, match="3 values for 2 labels"):
        M.auc([0, 1], [1, 2, 3])
    with pytest.raises(M.MetricInputError, match="0 .normal. or 1"):
        M.auc([0, 2], [1, 2])
    with pytest.raises(M.MetricInputError, match="max_fpr"):
        M.pauc_raw([0, 1], [0, 1], max_fpr=0)


def test_domain_aucs_use_all_anomalies():
    labels = [0, 0, 0, 0, 1, 1]
    domains = ["source", "source", "target", "target", "source", "target"]
    scores = [0.1, 0.2, 0.5, 0.9, 0.6, 0.4]
    # source normals {.1,.2} vs all anomalies {.6,.4}: every pair won
    assert M.auc_source_vs_all_anomalies(labels, scores, domains) == pytest.approx(1.0)
    # target normals {.5,.9} vs {.6,.4}: only .6 > .5 wins -> 1/4
    assert M.auc_target_vs_all_anomalies(labels, scores, domains) == pytest.approx(0.25)
    # the 2021 style (target clips only: normals {.5,.9} vs anomaly {.4}) differs: 0
    assert M.auc([0, 0, 1], [0.5, 0.9, 0.4]) == 0.0
    with pytest.raises(M.MetricInputError, match="target-domain normal"):
        M.auc_target_vs_all_anomalies([0, 1], [0.1, 0.2], ["source", "target"])


def test_precision_recall_f1_hand_worked():
    y = [0, 0, 1, 1, 1]
    d = [1, 0, 1, 1, 0]  # tp=2 fp=1 fn=1
    p, r, f = M.precision_recall_f1(y, d)
    assert (p, r) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert f == pytest.approx(2 / 3)
    # nothing flagged: precision and F1 are 0 (epsilon-floored denominators), never NaN
    assert M.precision_recall_f1(y, [0] * 5) == (0.0, 0.0, 0.0)


def test_means():
    assert M.harmonic_mean_official([1.0, 0.5]) == pytest.approx(2 / 3)
    assert M.arithmetic_mean([1.0, 0.5]) == 0.75
    # a zero is floored at machine epsilon: the mean collapses to ~2 * eps instead of erroring
    assert M.harmonic_mean_official([0.0, 1.0]) == pytest.approx(2 / (1 / M.EPSILON + 1))
    assert M.min_auc([0.7, 0.6, 0.9]) == 0.6
    with pytest.raises(M.MetricInputError):
        M.harmonic_mean_official([])


# DCASE 2023 official evaluator, published baseline results: AUC(source), AUC(target), pAUC
TEST_VECTOR_2023 = {
    "bandsaw": (0.667, 0.483, 0.509),
    "grinder": (0.707, 0.552, 0.585),
    "shaker": (0.694, 0.560, 0.549),
    "ToyDrone": (0.797, 0.561, 0.537),
    "ToyNscale": (0.770, 0.472, 0.518),
    "ToyTank": (0.721, 0.647, 0.583),
    "Vacuum": (0.882, 0.453, 0.595),
}


def test_official_2023_test_vector():
    rows = [
        {"machine": m, "section": "00", "auc_source_vs_all_anomalies": a, "auc_target_vs_all_anomalies": b, "pauc_mcclish": c}
        for m, (a, b, c) in TEST_VECTOR_2023.items()
    ]
    official, definition, *_ = summarize(rows, 2023)
    values = [v for t in TEST_VECTOR_2023.values() for v in t]
    assert "21 values" in definition
    # independent reference: harmonic mean by its definition
    assert official == pytest.approx(len(values) / sum(1 / v for v in values), abs=1e-12)
    # the published 0.5925 lies within what inputs rounded to 3 decimals allow
    lo = len(values) / sum(1 / (v - 5e-4) for v in values)
    hi = len(values) / sum(1 / (v + 5e-4) for v in values)
    assert lo <= 0.5925 <= hi
    assert official == pytest.approx(0.5925, abs=5e-4)
