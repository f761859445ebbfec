"""Calibration schemes: which good images fit the detector and which are scored as unseen.

A scheme turns ``n`` good images into a :class:`CalibrationPlan`: the fits made only to score
held-out images (the folds of cross-conformal calibration), the images the final model is fitted
on, and the images the final model scores as unseen (hold-out calibration). Every held-out score
comes from a model that did not fit that image, so conformal p-values keep their meaning.

``HoldOut(fraction)``: a seeded random ``fraction`` of the images is never fitted; the final model
scores them. ``CrossConformal(folds)``: ``folds`` extra models each score the fold they did not see,
and the final model is fitted on every image (no image wasted, ``folds + 1`` fits).
``LeaveOwnOut(folds)``: one model fitted on every image scores each image without what it learnt
from that image (``patch-knn``: its memory rows; ``Detector.training_maps``): no fold models, whose
sparser memories score good images higher than the final model does. Statistics fitted on all
images (the coreset's choice, the score scales) still saw each image, which can only make its score
higher than a new image's: the threshold errs on the cautious side (``bench/calibration_splits.py``
measures how far). ``folds`` here only split the golden template's fits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..errors import KizuError

#: ``calibration="auto"`` uses cross-conformal calibration up to this many good images
CROSS_UP_TO = 300


class Split(NamedTuple):
    """One model fitted on images ``fit`` that scores images ``held`` (index arrays)."""

    fit: np.ndarray
    held: np.ndarray


@dataclass(frozen=True)
class CalibrationPlan:
    """``side_fits``: models fitted only to score held-out images; ``final_fit``: the images the final
    model is fitted on; ``final_held``: the images the final model scores as unseen (``own_out``:
    each without what the model learnt from it). ``held_out``: every calibration image, in the
    order calibration scores are kept (ascending index). ``template_splits``: the golden
    template's held-out fits (``None``: fitted on ``final_fit``, scoring ``final_held``)."""

    side_fits: tuple[Split, ...]
    final_fit: np.ndarray
    final_held: np.ndarray
    own_out: bool = False
    template_splits: tuple[Split, ...] | None = None

    @property
    def held_out(self) -> np.ndarray:
        held = [s.held for s in self.side_fits] + [self.final_held]
        return np.sort(np.concatenate(held)) if held else np.zeros(0, np.int64)


def cross_folds(n: int, folds: int, seed: int) -> list[Split]:
    """Cross-conformal folds of ``n`` images: a seeded shuffle split into ``folds`` near-equal held-out
    parts, each fitted on the rest. Everything cross-fitted for one model (detector, golden
    template) uses these, so each image is held out of the same fold everywhere."""
    perm = np.random.default_rng(seed).permutation(n)
    return [Split(np.setdiff1d(perm, held), held) for held in np.array_split(perm, folds)]


@dataclass(frozen=True)
class HoldOut:
    """A seeded random ``fraction`` of the good images is held out of fitting to calibrate."""

    fraction: float = 0.2
    name = "holdout"

    def __post_init__(self):
        if not 0 <= self.fraction < 1:
            raise KizuError(f"calibration fraction must be in [0, 1), not {self.fraction}")

    def plan(self, n: int, seed: int) -> CalibrationPlan:
        n_cal = max(1, int(round(n * self.fraction))) if self.fraction > 0 else 0
        if n - n_cal < 2:
            raise KizuError(f"only {n} good images: too few to train and calibrate (need at least {n_cal + 2})")
        perm = np.random.default_rng(seed).permutation(n)
        return CalibrationPlan((), np.sort(perm[n_cal:]), np.sort(perm[:n_cal]))


@dataclass(frozen=True)
class CrossConformal:
    """``folds`` models each score the fold they did not see; the final model fits every image."""

    folds: int = 5
    name = "cross"

    def plan(self, n: int, seed: int) -> CalibrationPlan:
        if not 2 <= self.folds <= n // 2:
            raise KizuError(f"cross-conformal calibration needs 2 <= folds <= n/2 (n = {n}), not {self.folds}")
        folds = tuple(cross_folds(n, self.folds, seed))
        return CalibrationPlan(folds, np.arange(n), np.zeros(0, np.int64), template_splits=folds)


@dataclass(frozen=True)
class LeaveOwnOut:
    """One model fits every image and scores each without what it learnt from that image."""

    folds: int = 5
    name = "loo"

    def plan(self, n: int, seed: int) -> CalibrationPlan:
        if n < 4:
            raise KizuError(f"only {n} good images: too few to train and calibrate (need at least 4)")
        folds = tuple(cross_folds(n, min(self.folds, n // 2), seed))
        return CalibrationPlan((), np.arange(n), np.arange(n), own_out=True, template_splits=folds)


def choose_strategy(name: str, n: int, *, fraction: float = 0.2, folds: int = 5, threshold_rule: str = "conformal",
                    own_out: bool = False) -> HoldOut | CrossConformal | LeaveOwnOut:
    """The scheme for ``n`` good images: ``holdout``, ``cross``, ``loo`` or ``auto`` — leave-own-out
    where the detector can score a fitted image without it (``own_out``), else cross-conformal for 4
    to ``CROSS_UP_TO`` images (hold-out wastes images, and 20 calibration scores give a noisy
    threshold; a handful of images gets fewer folds rather than an error), else hold-out."""
    if name == "auto":
        usable = n >= 4 and fraction > 0 and threshold_rule != "train-quantile"
        if usable and own_out:
            return LeaveOwnOut(folds)
        return CrossConformal(min(folds, n // 2)) if usable and n <= CROSS_UP_TO else HoldOut(fraction)
    if name == "loo":
        if not own_out:
            raise KizuError("--calibration loo needs a detector that can leave an image out of what it learnt "
                            "(patch-knn, untiled)")
        return LeaveOwnOut(folds)
    if name == "cross":
        return CrossConformal(folds)
    if name == "holdout":
        return HoldOut(fraction)
    raise KizuError(f"calibration must be 'auto', 'holdout', 'cross' or 'loo', not {name!r}")
