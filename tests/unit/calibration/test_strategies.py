"""Calibration schemes as objects: which images fit the detector, which are scored as unseen."""

import numpy as np
import pytest

from kizu.calibration.strategies import (
    CROSS_UP_TO,
    CrossConformal,
    HoldOut,
    LeaveOwnOut,
    choose_strategy,
    cross_folds,
)
from kizu.errors import KizuError


def test_holdout_holds_a_seeded_fraction_out_of_fitting():
    plan = HoldOut(0.2).plan(50, seed=3)
    assert len(plan.final_held) == 10 and len(plan.final_fit) == 40 and not plan.side_fits
    assert not set(plan.final_held) & set(plan.final_fit)
    assert list(plan.held_out) == sorted(plan.final_held)
    assert np.array_equal(HoldOut(0.2).plan(50, seed=3).final_held, plan.final_held)
    assert not np.array_equal(HoldOut(0.2).plan(50, seed=4).final_held, plan.final_held)


def test_cross_conformal_scores_every_image_once_with_a_model_that_did_not_fit_it():
    plan = CrossConformal(5).plan(23, seed=0)
    assert len(plan.side_fits) == 5 and len(plan.final_fit) == 23 and len(plan.final_held) == 0
    held = np.concatenate([s.held for s in plan.side_fits])
    assert sorted(held) == list(range(23)) and list(plan.held_out) == list(range(23))
    for split in plan.side_fits:
        assert not set(split.fit) & set(split.held) and len(split.fit) + len(split.held) == 23


def test_the_folds_are_those_the_template_uses():
    folds = cross_folds(20, 4, seed=1)
    plan = CrossConformal(4).plan(20, seed=1)
    assert all(np.array_equal(a.held, b.held) for a, b in zip(folds, plan.side_fits))


def test_auto_chooses_cross_for_small_sets_and_holdout_for_large_ones():
    assert isinstance(choose_strategy("auto", 100), CrossConformal)
    assert isinstance(choose_strategy("auto", CROSS_UP_TO + 1), HoldOut)
    assert choose_strategy("auto", 6).folds == 3  # a handful of images: fewer folds
    assert isinstance(choose_strategy("auto", 100, threshold_rule="train-quantile"), HoldOut)


def test_auto_leaves_each_image_own_out_where_the_detector_can():
    assert isinstance(choose_strategy("auto", 100, own_out=True), LeaveOwnOut)
    assert isinstance(choose_strategy("auto", 5000, own_out=True), LeaveOwnOut)
    assert isinstance(choose_strategy("auto", 100, own_out=True, threshold_rule="train-quantile"), HoldOut)
    with pytest.raises(KizuError, match="patch-knn"):
        choose_strategy("loo", 100, own_out=False)


def test_leave_own_out_fits_every_image_once_and_scores_every_image():
    plan = LeaveOwnOut(5).plan(23, seed=0)
    assert plan.own_out and not plan.side_fits
    assert list(plan.final_fit) == list(range(23)) and list(plan.held_out) == list(range(23))
    assert [len(s.held) for s in plan.template_splits] == [len(s.held) for s in cross_folds(23, 5, seed=0)]


@pytest.mark.parametrize("make", [lambda: HoldOut(0.95).plan(10, 0), lambda: CrossConformal(8).plan(10, 0),
                                  lambda: HoldOut(1.0), lambda: choose_strategy("both", 10),
                                  lambda: LeaveOwnOut().plan(3, 0)])
def test_impossible_schemes_are_one_clear_error(make):
    with pytest.raises(KizuError):
        make()
