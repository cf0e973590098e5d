import numpy as np
import pytest
import scipy.stats

from auscult.errors import ConfigError, DataError
from auscult.eval.thresholds import MIN_SCORES, false_alarm_threshold, gamma_threshold, percentile_threshold


def test_gamma_threshold_recovers_the_true_quantile():
    rng = np.random.default_rng(0)
    scores = rng.gamma(3.0, 2.0, size=4000) + 5.0
    t = gamma_threshold(scores, quantile=0.9)
    truth = scipy.stats.gamma.ppf(0.9, 3.0, loc=5.0, scale=2.0)
    assert t.value == pytest.approx(truth, rel=0.03)
    assert t.method == "gamma" and t.n_scores == 4000
    assert t.expected_false_alarm_rate == pytest.approx(0.1)
    assert t.empirical_false_alarm_rate == pytest.approx(0.1, abs=0.02)
    assert set(t.params) >= {"shape", "loc", "scale", "quantile"}
    assert t.decide([t.value - 1e-9, t.value, t.value + 1e-9]).tolist() == [0, 0, 1]
    # deterministic
    assert gamma_threshold(scores).value == t.value


def test_percentile_threshold():
    scores = np.arange(1, 101, dtype=float)
    t = percentile_threshold(scores, 90)
    assert t.value == pytest.approx(90.1)  # linear interpolation between 90 and 91
    assert t.empirical_false_alarm_rate == pytest.approx(0.10)
    assert t.expected_false_alarm_rate == t.empirical_false_alarm_rate


def test_false_alarm_threshold_hand_worked_and_minimal():
    scores = np.arange(1, 101, dtype=float)  # 100 normals
    t = false_alarm_threshold(scores, rate=0.05)
    assert t.value == 95.0 and t.expected_false_alarm_rate == pytest.approx(0.05)
    # with ties the rate can only be met from below, and the threshold is the lowest that meets it
    rng = np.random.default_rng(1)
    tied = np.round(rng.normal(size=200), 1)
    for rate in (0.01, 0.05, 0.2):
        t = false_alarm_threshold(tied, rate=rate)
        assert (tied > t.value).mean() <= rate
        lower = np.unique(tied)[np.unique(tied) < t.value]
        if lower.size:
            assert (tied > lower.max()).mean() > rate
    with pytest.raises(DataError, match="needs at least 1000"):
        false_alarm_threshold(scores, rate=0.001)


@pytest.mark.parametrize("fit", [gamma_threshold, percentile_threshold, false_alarm_threshold])
def test_degenerate_inputs_fail_clearly(fit):
    with pytest.raises(DataError, match=f"at least {MIN_SCORES}"):
        fit([1.0, 2.0, 3.0])
    with pytest.raises(DataError, match="constant"):
        fit([2.0] * 20)
    with pytest.raises(DataError, match="non-finite"):
        fit([1.0, 2.0, np.nan, 3.0, 4.0, 5.0])


def test_bad_settings_are_config_errors():
    s = np.linspace(0, 1, 50)
    with pytest.raises(ConfigError):
        gamma_threshold(s, quantile=1.5)
    with pytest.raises(ConfigError):
        percentile_threshold(s, percentile=100)
    with pytest.raises(ConfigError):
        false_alarm_threshold(s, rate=0)


def test_gamma_threshold_with_the_location_at_the_smallest_score():
    """loc='min': shape and scale are the MLE of a zero-located gamma on the excesses over the minimum."""
    rng = np.random.default_rng(3)
    scores = rng.gamma(2.0, 3.0, size=3000) + 7.0
    t = gamma_threshold(scores, quantile=0.99, loc="min")
    m = scores.min()
    shape, _, scale = scipy.stats.gamma.fit(np.maximum(scores - m, 1e-9 * (scores - m).max()), floc=0.0)
    assert t.value == pytest.approx(m + scipy.stats.gamma.ppf(0.99, shape, scale=scale))
    assert t.params["loc"] == m and t.params["loc_rule"] == "min"
    assert t.value == pytest.approx(scipy.stats.gamma.ppf(0.99, 2.0, loc=7.0, scale=3.0), rel=0.05)  # near the truth
    with pytest.raises(ConfigError):
        gamma_threshold(scores, loc="median")


def test_fit_threshold_passes_the_gamma_location_rule():
    from auscult.eval.thresholds import fit_threshold, gamma_threshold

    s = np.random.default_rng(3).gamma(2.0, 1.0, 40) + 5.0
    for method, kw in (("gamma", {"quantile": 0.95}), ("auto", {"rate": 0.05})):
        t = fit_threshold(s, method, gamma_loc="min", **kw)
        assert t.params["loc_rule"] == "min" and t.params["loc"] == pytest.approx(s.min())
        assert t.value == pytest.approx(gamma_threshold(s, 0.95, loc="min").value)
        assert fit_threshold(s, method, **kw).params["loc_rule"] == "fit"
