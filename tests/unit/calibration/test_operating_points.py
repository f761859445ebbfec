import math

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_recall_curve, roc_curve

from kizu.calibration.operating_points import (
    OperatingPoint,
    cost_based,
    f1_optimal,
    far_miss_curve,
    recall_at_least,
    threshold_table,
    youden,
)

# Hand-worked example. Flagging the top j scores (threshold between the j-th and (j+1)-th from the top):
#   flagged          tp fp fn tn   F1      J=TPR-FPR   cost(1,1)  cost(10,1)
#   none  (t=0.6)    0  0  3  3    0        0           3          30
#   0.6   (t=0.55)   1  0  2  3    0.5      1/3         2          20
#   ≥0.5  (t=0.45)   2  0  1  3    0.8      2/3         1          10
#   ≥0.4  (t=0.35)   2  1  1  2    0.667    1/3         2          11
#   ≥0.3  (t=0.25)   3  1  0  2    0.857    2/3         1           1
#   ≥0.2  (t=0.15)   3  2  0  1    0.75     1/3         2           2
#   all   (t=0.05)   3  3  0  0    0.667    0           3           3
SCORES = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
LABELS = np.array([0, 0, 1, 0, 1, 1])


def _check_reproduces(op: OperatingPoint, scores, labels):
    pred = np.asarray(scores) > op.threshold
    y = np.asarray(labels).astype(bool)
    assert (op.tp, op.fp, op.fn, op.tn) == (
        int(np.sum(pred & y)), int(np.sum(pred & ~y)), int(np.sum(~pred & y)), int(np.sum(~pred & ~y)))


def test_f1_optimal_hand_worked():
    op = f1_optimal(SCORES, LABELS)
    assert op.threshold == pytest.approx(0.25)
    assert (op.tp, op.fp, op.fn, op.tn) == (3, 1, 0, 2)
    assert op.f1 == pytest.approx(6 / 7) and op.precision == pytest.approx(0.75)
    assert op.recall == 1 and op.fpr == pytest.approx(1 / 3) and op.miss_rate == 0
    assert op.rule == "f1-optimal"
    _check_reproduces(op, SCORES, LABELS)
    assert op.f1 == pytest.approx(f1_score(LABELS, SCORES > op.threshold))


def test_youden_hand_worked_tie_goes_to_higher_threshold():
    op = youden(SCORES, LABELS)  # J = 2/3 at t = 0.45 and at t = 0.25
    assert op.threshold == pytest.approx(0.45)
    assert (op.tp, op.fp, op.fn, op.tn) == (2, 0, 1, 3)
    assert op.params["j"] == pytest.approx(2 / 3)
    _check_reproduces(op, SCORES, LABELS)


def test_cost_based_hand_worked_and_moves_down_when_misses_are_expensive():
    even = cost_based(SCORES, LABELS, cost_miss=1, cost_false_alarm=1)
    assert even.threshold == pytest.approx(0.45)  # tie (cost 1) with 0.25 → higher threshold
    assert even.params["expected_cost"] == pytest.approx(1 / 6)
    assert even.params["prevalence"] == pytest.approx(0.5)
    assert even.params["prevalence_source"] == "labelled set"
    costly_miss = cost_based(SCORES, LABELS, cost_miss=10, cost_false_alarm=1)
    assert costly_miss.threshold == pytest.approx(0.25) and costly_miss.fn == 0
    assert costly_miss.threshold < even.threshold
    cheap_miss = cost_based(SCORES, LABELS, cost_miss=1, cost_false_alarm=10)
    assert cheap_miss.threshold == pytest.approx(0.45) and cheap_miss.fp == 0
    never_flag = cost_based(SCORES, LABELS, cost_miss=0, cost_false_alarm=1)
    assert never_flag.threshold == pytest.approx(0.6) and never_flag.tp + never_flag.fp == 0
    for op in (even, costly_miss, cheap_miss, never_flag):
        _check_reproduces(op, SCORES, LABELS)


def test_cost_threshold_is_monotone_in_the_miss_cost():
    rng = np.random.default_rng(5)
    y = rng.random(300) < 0.2
    s = rng.normal(size=300) + 1.5 * y
    ts = [cost_based(s, y, cost_miss=c, cost_false_alarm=1.0).threshold for c in [0.5, 1, 2, 4, 8, 16, 64]]
    assert all(a >= b for a, b in zip(ts, ts[1:]))
    assert ts[0] > ts[-1]


def test_cost_with_given_prevalence():
    rng = np.random.default_rng(6)
    y = rng.random(200) < 0.3
    s = rng.normal(size=200) + 2 * y
    same = cost_based(s, y, 5, 1, prevalence=float(y.mean()))
    default = cost_based(s, y, 5, 1)
    assert same.threshold == default.threshold
    # production has far fewer defects than the labelled set: fewer flags are worth it
    rare = cost_based(s, y, 5, 1, prevalence=0.01)
    assert rare.threshold > default.threshold and rare.params["prevalence_source"] == "given"


@pytest.mark.parametrize("target, threshold, recall", [
    (1.0, 0.25, 1.0), (2 / 3, 0.45, 2 / 3), (0.5, 0.45, 2 / 3), (0.34, 0.45, 2 / 3), (0.3, 0.55, 1 / 3),
    (0.0, 0.6, 0.0),
])
def test_recall_at_least_hand_worked(target, threshold, recall):
    op = recall_at_least(SCORES, LABELS, target)
    assert op.threshold == pytest.approx(threshold) and op.recall == pytest.approx(recall)
    assert op.params["target"] == target
    _check_reproduces(op, SCORES, LABELS)


def test_recall_at_least_achieves_target_with_the_highest_threshold():
    rng = np.random.default_rng(7)
    y = rng.random(400) < 0.25
    s = np.round(rng.normal(size=400) + 1.2 * y, 1)  # many ties
    thr, _, _ = far_miss_curve(s, y, n_points=10**6)
    for target in [0.5, 0.8, 0.9, 0.95, 0.99, 1.0]:
        op = recall_at_least(s, y, target)
        _check_reproduces(op, s, y)
        assert op.recall >= target
        higher = thr[thr > op.threshold]
        if len(higher):  # the next cut up loses the target
            assert threshold_table(s, y, [higher.min()])[0]["recall"] < target


def test_counts_agree_with_sklearn_curves_on_tied_scores():
    rng = np.random.default_rng(8)
    y = (rng.random(250) < 0.3).astype(int)
    s = rng.integers(0, 40, size=250) / 4.0 + y  # heavy ties
    thr, far, miss = far_miss_curve(s, y, n_points=10**6)
    fpr, tpr, sk_thr = roc_curve(y, s, drop_intermediate=False)
    # sklearn: "score >= u" for distinct scores u descending, after a flag-nothing point
    assert len(thr) == len(sk_thr)
    assert np.allclose(far[::-1], fpr) and np.allclose(1 - miss[::-1], tpr)
    for t_ours, t_sk in zip(thr[::-1][1:], sk_thr[1:]):
        assert np.array_equal(s > t_ours, s >= t_sk)
    prec, rec, _ = precision_recall_curve(y, s)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1_sk = np.nanmax(2 * prec * rec / (prec + rec))
    op = f1_optimal(s, y)
    assert op.f1 == pytest.approx(f1_sk)
    assert op.f1 == pytest.approx(f1_score(y, s > op.threshold))
    assert youden(s, y).params["j"] == pytest.approx(np.max(tpr - fpr))
    for rule in (f1_optimal(s, y), youden(s, y), cost_based(s, y, 3, 1), recall_at_least(s, y, 0.9)):
        _check_reproduces(rule, s, y)


def test_thresholds_between_adjacent_floats_still_reproduce_counts():
    a = 1.0
    b = np.nextafter(a, 2.0)
    s = np.array([a, b, b, a])
    y = np.array([0, 1, 1, 0])
    op = f1_optimal(s, y)
    assert (op.tp, op.fp) == (2, 0) and op.f1 == 1.0
    _check_reproduces(op, s, y)
    # all scores equal: only "flag all" or "flag none"
    op = f1_optimal(np.ones(4), np.array([1, 0, 1, 0]))
    _check_reproduces(op, np.ones(4), np.array([1, 0, 1, 0]))
    assert op.tp == 2 and op.fp == 2


def test_threshold_table_hand_worked():
    rows = threshold_table(SCORES, LABELS, [-math.inf, 0.25, 0.45, 0.6, math.inf])
    got = [(r["tp"], r["fp"], r["fn"], r["tn"], r["n_flagged"]) for r in rows]
    assert got == [(3, 3, 0, 0, 6), (3, 1, 0, 2, 4), (2, 0, 1, 3, 2), (0, 0, 3, 3, 0), (0, 0, 3, 3, 0)]
    assert rows[1]["fpr"] == pytest.approx(1 / 3) and rows[2]["miss_rate"] == pytest.approx(1 / 3)
    assert rows[3]["precision"] == 1.0 and rows[3]["f1"] == 0.0  # nothing flagged
    # one class only: undefined rates are NaN, not an error
    r = threshold_table([0.1, 0.2], [0, 0], [0.15])[0]
    assert r["fpr"] == 0.5 and math.isnan(r["miss_rate"])


def test_far_miss_curve_shape_and_monotonicity():
    rng = np.random.default_rng(9)
    y = rng.random(1000) < 0.1
    s = rng.normal(size=1000) + 2 * y
    thr, far, miss = far_miss_curve(s, y, n_points=200)
    assert len(thr) == len(far) == len(miss) <= 200
    assert np.all(np.diff(thr) > 0)
    assert np.all(np.diff(far) <= 0) and np.all(np.diff(miss) >= 0)
    assert (far[0], miss[0]) == (1.0, 0.0) and (far[-1], miss[-1]) == (0.0, 1.0)
    rows = threshold_table(s, y, thr[::37])
    assert np.allclose([r["fpr"] for r in rows], far[::37])


def test_input_errors():
    with pytest.raises(ValueError):
        f1_optimal([0.1, 0.2], [0, 0])  # no defective image
    with pytest.raises(ValueError):
        youden([0.1, 0.2], [1, 1])  # no good image
    with pytest.raises(ValueError):
        f1_optimal([0.1, 0.2], [0, 2])
    with pytest.raises(ValueError):
        f1_optimal([0.1, 0.2, 0.3], [0, 1])
    with pytest.raises(ValueError):
        recall_at_least(SCORES, LABELS, 1.5)
    with pytest.raises(ValueError):
        cost_based(SCORES, LABELS, -1, 1)
    with pytest.raises(ValueError):
        f1_optimal([0.1, np.nan], [0, 1])
    d = f1_optimal(SCORES, LABELS).to_dict()
    assert d["miss_rate"] == 0 and d["rule"] == "f1-optimal"
