import math

import numpy as np
import pytest
from scipy import stats

from kizu.calibration import conformal_threshold
from kizu.calibration.guarantees import (
    conditional_alpha,
    conditional_threshold,
    conditional_threshold_rank,
    conformal_rank,
    false_alarm_distribution,
    min_calibration_size,
    normalized_score,
    plain_words,
    rank_far_distribution,
)


def _simulated_far(n_cal, rule, draws, seed):
    """FAR of the threshold computed on `draws` calibration sets of uniform scores (FAR = 1 - t)."""
    rng = np.random.default_rng(seed)
    cal = rng.random((draws, n_cal))
    t = np.array([rule(c) for c in cal])
    return np.where(np.isfinite(t), 1.0 - t, 0.0)


@pytest.mark.parametrize("n_cal, alpha", [(20, 0.05), (50, 0.1), (99, 0.03)])
def test_beta_law_matches_simulated_calibration_draws(n_cal, alpha):
    d = false_alarm_distribution(n_cal, alpha)
    m = math.floor(alpha * (n_cal + 1)) - 1
    assert (d["m"], d["beta_a"], d["beta_b"]) == (m, m + 1, n_cal - m)
    assert d["expected"] == pytest.approx((m + 1) / (n_cal + 1))
    far = _simulated_far(n_cal, lambda c: conformal_threshold(c, alpha), 20_000, seed=n_cal)
    # the simulated mean has a standard error of ~std/141: 0.0015 separates Beta(m+1, n-m) from
    # its neighbours Beta(m, n-m+1) / Beta(m+1, n-m+1)
    assert far.mean() == pytest.approx(d["expected"], abs=0.0015)
    assert far.std() == pytest.approx(d["std"], rel=0.05)
    q90 = stats.beta.ppf(0.9, d["beta_a"], d["beta_b"])
    assert np.quantile(far, 0.9) == pytest.approx(q90, abs=0.004)
    assert np.quantile(far, 0.05) == pytest.approx(d["q05"], abs=0.003)
    assert np.quantile(far, 0.95) == pytest.approx(d["q95"], abs=0.006)
    assert stats.kstest(far, stats.beta(d["beta_a"], d["beta_b"]).cdf).pvalue > 1e-3


def test_worked_example_n20_alpha5():
    d = false_alarm_distribution(20, 0.05)
    assert d["reachable"] and d["rank"] == 1 and (d["beta_a"], d["beta_b"]) == (1, 20)
    assert d["expected"] == pytest.approx(1 / 21)
    assert d["q05"] == pytest.approx(1 - 0.95 ** (1 / 20))  # Beta(1, n): closed-form quantiles
    assert d["q95"] == pytest.approx(1 - 0.05 ** (1 / 20))
    assert d["std"] == pytest.approx(math.sqrt(20 / (21**2 * 22)))


def test_reachable_and_unreachable_alpha():
    ok = false_alarm_distribution(19, 0.05)  # 1/20 = 0.05: just reachable
    assert ok["reachable"] and ok["rank"] == 1
    no = false_alarm_distribution(18, 0.05)  # 1/19 > 0.05
    assert not no["reachable"] and no["m"] == -1
    assert no["expected"] == 0 and no["q95"] == 0 and no["beta_a"] is None
    assert no["smallest_reachable_alpha"] == pytest.approx(1 / 19)
    assert no["min_n_cal"] == 19 == min_calibration_size(0.05)
    assert min_calibration_size(0.01) == 99


@pytest.mark.parametrize("n_cal", [1, 5, 19, 20, 57, 200])
@pytest.mark.parametrize("alpha", [0.01, 0.05, 0.1, 0.25, 0.5, 0.99])
def test_rank_is_the_rank_used_by_calibration(n_cal, alpha):
    cal = np.arange(n_cal, dtype=float)  # k-th largest = n - k
    k = conformal_rank(n_cal, alpha)
    t = conformal_threshold(cal, alpha)
    assert (math.isinf(t) and k == 0) or t == n_cal - k


def test_conditional_rule_holds_per_calibration_set_and_conformal_only_on_average():
    n, alpha, delta = 100, 0.05, 0.1
    k = conditional_threshold_rank(n, alpha, delta)
    assert k == 2
    # definition: k is the largest rank with P(FAR > alpha) <= delta
    assert stats.beta.sf(alpha, k, n - k + 1) <= delta < stats.beta.sf(alpha, k + 1, n - k)
    far_cond = _simulated_far(n, lambda c: conditional_threshold(c, alpha, delta), 2000, seed=1)
    far_conf = _simulated_far(n, lambda c: conformal_threshold(c, alpha), 2000, seed=1)
    assert np.mean(far_cond <= alpha) >= 1 - delta
    assert abs(far_conf.mean() - alpha) <= 0.005  # marginal guarantee: on average
    assert np.mean(far_conf <= alpha) < 1 - delta  # ... but not per calibration set


@pytest.mark.parametrize("n, alpha, delta", [(60, 0.05, 0.1), (300, 0.1, 0.05), (1000, 0.01, 0.1)])
def test_conditional_rank_is_maximal_and_matches_conformal_at_adjusted_level(n, alpha, delta):
    k = conditional_threshold_rank(n, alpha, delta)
    assert k is not None
    assert stats.binom.cdf(k - 1, n, alpha) <= delta
    assert k == n or stats.binom.cdf(k, n, alpha) > delta
    cal = np.random.default_rng(0).normal(size=n)
    assert conditional_threshold(cal, alpha, delta) == np.sort(cal)[::-1][k - 1]
    assert conformal_threshold(cal, conditional_alpha(n, alpha, delta)) == conditional_threshold(cal, alpha, delta)
    assert k <= conformal_rank(n, alpha)  # never less conservative than the conformal rule


def test_conditional_rule_impossible_for_small_n():
    assert min_calibration_size(0.05, 0.1) == 45  # (0.95)^45 = 0.0994 <= 0.1 < 0.95^44
    assert conditional_threshold_rank(44, 0.05, 0.1) is None
    assert conditional_threshold_rank(45, 0.05, 0.1) == 1
    assert conditional_threshold(np.arange(44.0), 0.05, 0.1) == math.inf
    assert conditional_alpha(44, 0.05, 0.1) is None


def test_plain_words_numbers():
    s = plain_words(20, 0.05, "conformal")
    assert "at most 5 %" in s and "on average over calibration sets" in s
    assert "20 calibration images" in s and "4.8 %" in s and "0.3 %" in s and "13.9 %" in s
    assert "cannot be targeted" in plain_words(10, 0.05, "conformal") and "19" in plain_words(10, 0.05)
    c = plain_words(100, 0.05, "conditional", delta=0.1)
    assert "at most 5 %, with probability at least 90 %" in c and "2nd-highest" in c
    d = rank_far_distribution(100, 2)  # Beta(2, 99): mean 2/101 = 1.98 %, 95 % quantile 4.66 %
    assert (d["beta_a"], d["beta_b"]) == (2, 99) and round(100 * d["q95"], 1) == 4.7
    assert "the actual rate is 2 % on average" in c and "and 4.7 %" in c
    assert "at least 45 good calibration images" in plain_words(20, 0.05, "pac", delta=0.1)
    assert "No guarantee" in plain_words(20, 0.05, "train-quantile")
    with pytest.raises(ValueError):
        plain_words(20, 0.05, "conditional")
    with pytest.raises(ValueError):
        plain_words(20, 0.05, "magic")


@pytest.mark.parametrize("where", ["middle", "below_all", "above_all"])
def test_normalized_score_half_at_threshold_monotone_bounded(where):
    cal = np.random.default_rng(3).gamma(2.0, 1.0, size=40)
    t = {"middle": conformal_threshold(cal, 0.1), "below_all": cal.min() - 1, "above_all": cal.max() + 2}[where]
    grid = np.concatenate([np.linspace(-20, 40, 4001), cal, [t]])
    grid = np.unique(grid)
    z = normalized_score(grid, t, cal)
    assert z.shape == grid.shape
    assert np.all((z >= 0) & (z <= 1))
    assert np.all(np.diff(z) >= 0)
    # strictly increasing where it is not saturated in float precision
    inner = (z > 1e-12) & (z < 1 - 1e-12)
    assert np.all(np.diff(z[inner]) > 0)
    assert normalized_score(np.array([t]), t, cal)[0] == 0.5
    assert np.array_equal(z > 0.5, grid > t)
    assert np.array_equal(z < 0.5, grid < t)


def test_normalized_score_special_values():
    cal = np.linspace(0.0, 1.0, 11)
    z = normalized_score(np.array([-np.inf, np.nan, np.inf, 0.5]), 0.8, cal)
    assert z[0] == 0 and np.isnan(z[1]) and z[2] == 1 and 0 < z[3] < 0.5
    # median of good images reads about 0.25 when the threshold is the top of the calibration set
    assert normalized_score(np.array([0.5]), 1.0, cal)[0] == pytest.approx(0.5 * 6 / 11, abs=1e-12)
    # t = +inf: nothing is flagged, everything finite stays below 0.5 but keeps its order
    zi = normalized_score(np.array([-5.0, 0.0, 0.5, 1.0, 2.0, 1e6]), math.inf, cal)
    assert np.all(zi[:5] < 0.5) and zi[5] <= 0.5 and np.all(np.diff(zi) >= 0) and np.all(np.diff(zi[:5]) > 0)
    zm = normalized_score(np.array([-5.0, 0.5, 10.0]), -math.inf, cal)
    assert np.all(zm > 0.5) and np.all(np.diff(zm) > 0)
    # no calibration scores but a finite threshold: pure exponential parts
    ze = normalized_score(np.array([-1.0, 0.0, 1.0]), 0.0, [], scale=1.0)
    assert ze == pytest.approx([0.5 * math.exp(-1), 0.5, 1 - 0.5 * math.exp(-1)])
    with pytest.raises(ValueError):
        normalized_score(np.array([1.0]), math.inf, [])
    # shape preserved
    assert normalized_score(np.zeros((2, 3)), 0.8, cal).shape == (2, 3)


def test_input_validation():
    with pytest.raises(ValueError):
        false_alarm_distribution(0, 0.05)
    with pytest.raises(ValueError):
        false_alarm_distribution(10, 1.5)
    with pytest.raises(ValueError):
        conditional_threshold_rank(10, 0.05, 0.0)


@pytest.mark.parametrize("n", [1, 19, 100, 999, 5000])
def test_numpy_binomial_and_beta_match_scipy(n):
    """The guarantees are computed without SciPy (a line PC may not have it); SciPy checks them."""
    from kizu.calibration.guarantees import beta_ppf, binom_cdf

    for p in (0.001, 0.05, 0.5, 0.9):
        np.testing.assert_allclose(binom_cdf(n, p), stats.binom.cdf(np.arange(n + 1), n, p), atol=1e-10)
    for rank in {1, max(1, n // 20), n}:
        for q in (0.05, 0.5, 0.95):
            assert beta_ppf(q, rank, n - rank + 1) == pytest.approx(stats.beta(rank, n - rank + 1).ppf(q), abs=1e-9)
