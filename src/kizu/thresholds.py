"""Change a model's operating point by a stated rule, without retraining.

Rules without labels use the stored calibration scores: ``conformal`` (new alpha), ``conditional``
(false-alarm rate <= alpha with probability >= 1 - delta), ``train-quantile`` (the seed's).
Rules with labels inspect a labelled test set: ``f1``, ``youden``, ``cost``, ``recall``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .calibration import Calibration
from .errors import KizuError
from .guarantees import min_calibration_size
from .images import test_set
from .operating_points import cost_based, f1_optimal, recall_at_least, youden

RULES = ("conformal", "conditional", "train-quantile", "f1", "youden", "cost", "recall")
LABELLED_RULES = ("f1", "youden", "cost", "recall")


def apply_rule(model, rule: str, *, data: Path | None = None, alpha: float | None = None, delta: float = 0.1,
               cost_miss: float | None = None, cost_false_alarm: float | None = None,
               recall: float | None = None) -> str:
    """Set ``model.calibration``'s threshold by ``rule``; returns a one-line description."""
    cal = model.calibration
    alpha = cal.alpha if alpha is None else alpha
    if rule not in RULES:
        raise KizuError(f"unknown threshold rule {rule!r}; choose one of {', '.join(RULES)}")
    if rule in ("conformal", "train-quantile"):
        new = Calibration.fit(cal.scores, alpha, rule, cal.train_scores)
        params = {}
    elif rule == "conditional":
        if not cal.scores:
            raise KizuError("the conditional rule needs held-out calibration scores")
        new = Calibration.fit(cal.scores, alpha, "conditional", cal.train_scores, delta=delta)
        if not math.isfinite(new.threshold):
            raise KizuError(f"the conditional rule with alpha={alpha:g}, delta={delta:g} needs at least "
                            f"{min_calibration_size(alpha, delta)} calibration images; this model has {len(cal.scores)}")
        params = {"delta": delta}
    else:
        if data is None:
            raise KizuError(f"rule {rule!r} needs a labelled data folder (MVTec-AD test/ with defects)")
        ts = test_set(data)
        if ts.labels.min() == ts.labels.max():
            raise KizuError(f"{data}: rule {rule!r} needs both good and defective test images")
        scores = model.score_files(ts.paths)
        if rule == "f1":
            op, params = f1_optimal(scores, ts.labels), {}
        elif rule == "youden":
            op, params = youden(scores, ts.labels), {}
        elif rule == "cost":
            if cost_miss is None or cost_false_alarm is None:
                raise KizuError("rule 'cost' needs --cost-miss and --cost-false-alarm")
            op = cost_based(scores, ts.labels, cost_miss, cost_false_alarm)
            params = {"cost_miss": cost_miss, "cost_false_alarm": cost_false_alarm}
        else:
            if recall is None:
                raise KizuError("rule 'recall' needs --recall (e.g. 0.99)")
            op, params = recall_at_least(scores, ts.labels, recall), {"recall_target": recall}
        params.update({"data": str(data), "tp": op.tp, "fp": op.fp, "fn": op.fn, "tn": op.tn})
        new = Calibration(cal.scores, alpha, rule, float(op.threshold), cal.train_scores,
                          [f"threshold chosen by rule {rule!r} on labelled data {data}: the false-alarm guarantee of "
                           "the conformal rule no longer applies; p-values are still valid"])
    new.notes = new.notes or []
    new.pixel_threshold = new.threshold if model.score_rule.reducer == "max" and math.isfinite(new.threshold) \
        else cal.pixel_threshold
    new.params = params
    model.calibration = new
    return f"rule {rule}, alpha={alpha:g}" + "".join(f", {k}={v}" for k, v in params.items() if k != "data")
