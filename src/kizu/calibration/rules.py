"""Changing a model's operating point by a stated rule, without retraining.

Rules without labels use the stored calibration scores: ``conformal`` (new alpha), ``conditional``
(false-alarm rate <= alpha with probability >= 1 - delta), ``train-quantile`` (the seed's).
Rules with labels take the scores and labels of a labelled test set: ``f1``, ``youden``, ``cost``,
``recall``; their threshold carries no false-alarm guarantee.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ..errors import KizuError
from .conformal import Calibration
from .guarantees import min_calibration_size
from .operating_points import OperatingPoint, cost_based, f1_optimal, recall_at_least, youden

RULES = ("conformal", "conditional", "train-quantile", "f1", "youden", "cost", "recall")
LABELLED_RULES = ("f1", "youden", "cost", "recall")


@dataclass(frozen=True)
class RuleRequest:
    """What ``kizu threshold`` asks for. ``alpha`` None keeps the model's alpha."""

    rule: str
    alpha: float | None = None
    delta: float = 0.1
    cost_miss: float | None = None
    cost_false_alarm: float | None = None
    recall: float | None = None

    def __post_init__(self):
        if self.rule not in RULES:
            raise KizuError(f"unknown threshold rule {self.rule!r}; choose one of {', '.join(RULES)}")
        if self.rule == "cost" and (self.cost_miss is None or self.cost_false_alarm is None):
            raise KizuError("rule 'cost' needs --cost-miss and --cost-false-alarm")
        if self.rule == "recall" and self.recall is None:
            raise KizuError("rule 'recall' needs --recall (e.g. 0.99)")

    @property
    def needs_labels(self) -> bool:
        return self.rule in LABELLED_RULES


def recalibrate(cal: Calibration, request: RuleRequest, *, scores: np.ndarray | None = None,
                labels: np.ndarray | None = None, source: str = "", pixel_follows_score: bool = False
                ) -> Calibration:
    """A new ``Calibration`` with the threshold ``request`` asks for.

    ``scores``/``labels`` (``(M,)``, 1 = defective): a labelled test set, needed by the labelled
    rules (``source`` names it in the notes). ``pixel_follows_score``: the image score is the map's
    maximum, so the region threshold moves with the image threshold.
    """
    alpha = cal.alpha if request.alpha is None else request.alpha
    if request.needs_labels:
        new = _labelled(cal, request, alpha, scores, labels, source)
    else:
        new = _unlabelled(cal, request, alpha)
    pixel = new.threshold if pixel_follows_score and math.isfinite(new.threshold) else cal.pixel_threshold
    return replace(new, pixel_threshold=pixel)


def _unlabelled(cal: Calibration, request: RuleRequest, alpha: float) -> Calibration:
    if request.rule == "conditional":
        if not cal.scores:
            raise KizuError("the conditional rule needs held-out calibration scores")
        new = Calibration.fit(cal.scores, alpha, "conditional", cal.train_scores, delta=request.delta)
        if not math.isfinite(new.threshold):
            raise KizuError(f"the conditional rule with alpha={alpha:g}, delta={request.delta:g} needs at least "
                            f"{min_calibration_size(alpha, request.delta)} calibration images; this model has "
                            f"{len(cal.scores)}")
        return new
    new = Calibration.fit(cal.scores, alpha, request.rule, cal.train_scores)
    return replace(new, params={})


def _labelled(cal: Calibration, request: RuleRequest, alpha: float, scores, labels, source: str) -> Calibration:
    if labels is None:
        raise KizuError(f"rule {request.rule!r} needs a labelled data folder (MVTec-AD test/ with defects)")
    labels = np.asarray(labels)
    if labels.min() == labels.max() or scores is None:
        raise KizuError(f"{source}: rule {request.rule!r} needs both good and defective test images")
    op, params = _operating_point(request, np.asarray(scores, dtype=np.float64), labels)
    params.update({"data": source, "tp": op.tp, "fp": op.fp, "fn": op.fn, "tn": op.tn})
    note = (f"threshold chosen by rule {request.rule!r} on labelled data {source}: the false-alarm guarantee of "
            "the conformal rule no longer applies; p-values are still valid")
    return Calibration(cal.scores, alpha, request.rule, float(op.threshold), cal.train_scores, [note], params=params)


def _operating_point(request: RuleRequest, scores: np.ndarray, labels: np.ndarray) -> tuple[OperatingPoint, dict]:
    if request.rule == "f1":
        return f1_optimal(scores, labels), {}
    if request.rule == "youden":
        return youden(scores, labels), {}
    if request.rule == "cost":
        return (cost_based(scores, labels, request.cost_miss, request.cost_false_alarm),
                {"cost_miss": request.cost_miss, "cost_false_alarm": request.cost_false_alarm})
    return recall_at_least(scores, labels, request.recall), {"recall_target": request.recall}


def describe(request: RuleRequest, cal: Calibration) -> str:
    """One line: the rule, the alpha it used and its parameters."""
    return f"rule {request.rule}, alpha={cal.alpha:g}" + "".join(
        f", {k}={v}" for k, v in cal.params.items() if k != "data")
