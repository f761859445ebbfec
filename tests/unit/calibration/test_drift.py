import numpy as np
import pytest
from scipy import stats

from kizu.calibration import conformal_p_values
from kizu.calibration.drift import DriftResult, drift_test


def _batch(rng, n_cal, m, shift=0.0, scale=1.0):
    cal = rng.normal(size=n_cal)  # a fresh calibration set each time: the null includes its draw
    return conformal_p_values(shift + scale * rng.normal(size=m), cal)


@pytest.mark.parametrize("n_cal, m", [(50, 40), (20, 200)])
def test_good_batches_rarely_drift_type_one_error_near_level(n_cal, m):
    rng = np.random.default_rng(n_cal + m)
    level = 0.05
    results = [drift_test(_batch(rng, n_cal, m), n_cal, alpha=0.05, level=level) for _ in range(200)]
    rate = np.mean([r.drifted for r in results])
    assert rate <= level + 0.045  # 3 binomial standard errors above the level over 200 batches
    # the beta-binomial null's mean is right: flags average M (m+1)/(n+1)
    mean_flags = np.mean([r.n_flagged for r in results])
    assert mean_flags == pytest.approx(results[0].expected_flagged, rel=0.2)


def test_naive_uniform_tests_would_over_alarm_where_ours_does_not():
    """Why the null includes the calibration draw: with n=20 and 200 images, one-sample tests that
    treat the p-values as i.i.d. (binomial count vs Binomial(M, 1/21), KS of randomised p-values
    vs U(0, 1)) fire on most *good* batches."""
    rng = np.random.default_rng(11)
    naive, ours = [], []
    for _ in range(100):
        p = _batch(rng, 20, 200)
        r = drift_test(p, 20, alpha=0.05, level=0.05)
        ours.append(r.drifted)
        binom_p = stats.binomtest(r.n_flagged, 200, 1 / 21, alternative="greater").pvalue
        ks_p = stats.kstest(p - rng.random(200) / 21, "uniform").pvalue
        naive.append(min(binom_p, ks_p) <= 0.025)
    assert np.mean(naive) > 0.5 and np.mean(ours) < 0.12


def test_shifted_scores_drift():
    rng = np.random.default_rng(12)
    res = [drift_test(_batch(rng, 100, 50, shift=1.5), 100, alpha=0.05) for _ in range(50)]
    assert np.mean([r.drifted for r in res]) >= 0.95
    r = res[0]
    assert r.drifted and r.direction == "higher" and r.count_p_value < 0.005
    assert r.n_flagged > r.flagged_usual_max >= r.expected_flagged
    assert f"{r.n_flagged} of 50 images have p <= 0.05 where ~2.5 were expected" in r.message
    assert "recalibrate or retrain" in r.message


def test_lower_scores_drift_through_the_ks_test():
    rng = np.random.default_rng(13)
    r = drift_test(_batch(rng, 100, 80, shift=-1.5), 100, alpha=0.05)
    assert r.drifted and r.direction == "lower"
    assert r.count_p_value > 0.5 and r.ks_p_value < 1e-6
    assert "lower than those of the calibration images" in r.message


def test_hand_worked_counts():
    # n_cal = 19, alpha = 0.05: only p = 1/20 counts; expected flags M/20, null BetaBinomial(M, 1, 19)
    p = np.array([1 / 20] * 10 + [k / 20 for k in range(2, 21)] * 2)  # 10 flagged out of 48
    r = drift_test(p, 19, alpha=0.05, level=0.01)
    assert isinstance(r, DriftResult)
    assert r.n_images == 48 and r.n_flagged == 10 and r.expected_flagged == pytest.approx(48 / 20)
    assert r.count_p_value == pytest.approx(stats.betabinom(48, 1, 19).sf(9))
    assert r.flagged_usual_max == int(stats.betabinom(48, 1, 19).isf(0.005))
    # a perfectly uniform batch (each p-value once per calibration gap) is not drift
    ok = drift_test(np.arange(1, 20 + 1) / 20.0, 19)
    assert not ok.drifted and ok.direction == "none" and ok.n_flagged == 1
    assert "consistent with the calibration set" in ok.message and f"would have to be {ok.level / 2:g} or less" in ok.message
    assert ok.to_dict()["n_cal"] == 19


def test_unreachable_alpha_and_bad_inputs():
    rng = np.random.default_rng(14)
    r = drift_test(_batch(rng, 10, 30, shift=3.0), 10, alpha=0.05)  # 1/11 > 0.05
    assert r.count_p_value == 1.0 and r.expected_flagged == 0 and r.n_flagged == 0
    assert r.drifted and "flag counts are not informative" in r.message
    with pytest.raises(ValueError):
        drift_test(np.array([0.37]), 10)  # not on the 1/11 grid
    with pytest.raises(ValueError):
        drift_test(np.array([np.nan]), 10)
    with pytest.raises(ValueError):
        drift_test(np.array([0.5]), 0)
    assert drift_test(np.array([0.5, np.nan, 1.0]), 1).n_images == 2  # NaNs dropped
