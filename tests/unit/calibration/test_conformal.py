import math

import numpy as np
import pytest

from kizu.calibration import Calibration, conformal_p_values, conformal_threshold


def test_p_value_hand_worked_example():
    cal = [0.1, 0.2, 0.3, 0.4]  # n = 4, so p = (1 + #{cal >= s}) / 5
    p = conformal_p_values(np.array([0.05, 0.2, 0.35, 0.5]), np.array(cal))
    # 0.05: all 4 >= → 5/5; 0.2: 0.2, 0.3, 0.4 → 4/5; 0.35: 0.4 → 2/5; 0.5: none → 1/5
    np.testing.assert_allclose(p, [1.0, 0.8, 0.4, 0.2])


def test_threshold_is_equivalent_to_p_below_alpha():
    rng = np.random.default_rng(0)
    for n in (9, 19, 20, 99, 100):
        cal = rng.normal(size=n)
        for alpha in (0.05, 0.1, 0.2):
            t = conformal_threshold(cal, alpha)
            s = np.concatenate([rng.normal(size=500) * 2, cal])
            p = conformal_p_values(s, cal)
            np.testing.assert_array_equal(s > t, p <= alpha + 1e-12)


def test_unreachable_alpha_flags_nothing_and_says_so():
    c = Calibration.fit(np.arange(10.0), alpha=0.05)  # 1/(10+1) = 0.09 > 0.05
    assert c.threshold == math.inf
    assert not c.is_defective(np.array([1e9])).any()
    assert any("below 1/(n_cal+1)" in n for n in c.notes)


def test_train_quantile_rule_is_the_seeds_95th_percentile():
    train = np.arange(100.0)
    c = Calibration.fit([1.0, 2.0], alpha=0.05, rule="train-quantile", train_scores=train)
    assert c.threshold == pytest.approx(np.percentile(train, 95))
    assert c.rule == "train-quantile" and c.notes


def test_json_round_trip():
    c = Calibration.fit(np.linspace(0, 1, 30), alpha=0.1)
    c.pixel_threshold = 0.7
    d = Calibration.from_json(c.to_json())
    assert d == c


def test_conditional_rule_and_statements():
    from kizu.calibration.guarantees import conditional_threshold

    cal = np.random.default_rng(0).normal(size=100)
    c = Calibration.fit(cal, alpha=0.05, rule="conditional", delta=0.1)
    assert c.threshold == conditional_threshold(cal, 0.05, 0.1)
    assert c.threshold > conformal_threshold(cal, 0.05)  # stricter than the marginal rule
    assert "90" in c.statement() and c.params == {"delta": 0.1}
    small = Calibration.fit(cal[:20], alpha=0.05, rule="conditional", delta=0.1)
    assert small.threshold == math.inf and "at least 45" in small.notes[0]
    assert "5" in Calibration.fit(cal, alpha=0.05).statement()
    assert Calibration.from_json(c.to_json()).threshold == c.threshold
