"""Operating points: choosing a threshold when some labelled defective images exist.

Conventions used throughout:

* ``scores``: ``(N,)`` anomaly scores, higher = more anomalous (any real units).
* ``labels``: ``(N,)`` 0 = good, 1 = defective (bool or int).
* Decision rule: an image is called **defective when ``score > threshold``** (strict).

Each candidate threshold corresponds to one way of cutting the sorted distinct scores
``u_1 < ... < u_D`` into "not flagged" / "flagged". The threshold returned is placed so that
``score > threshold`` reproduces the reported confusion counts *exactly* on the given scores:

* between two consecutive distinct scores: their midpoint (``u_j + (u_{j+1} - u_j)/2``, kept
  strictly below ``u_{j+1}`` in floating point);
* flag everything: half the lowest gap below the minimum (``u_1 - (u_2 - u_1)/2``; the next
  float below ``u_1`` when all scores are equal);
* flag nothing: the maximum score ``u_D``.

The confusion counts of all ``D + 1`` candidates are computed exactly by counting (sorted
positives/negatives and ``searchsorted``); they agree with ``sklearn.metrics.roc_curve`` /
``precision_recall_curve`` (which use ``score >= u_j``, the same cut), as the tests check.
Ties between equally good candidates are broken towards the **highest** threshold (fewest flags).

Rates: ``fpr`` = false-alarm rate = FP / #good; ``recall`` = TP / #defective; miss rate =
1 - recall; ``precision`` = TP / #flagged (1.0 when nothing is flagged, as in scikit-learn's
precision-recall curve); ``f1`` = 2 TP / (2 TP + FP + FN) (0 when TP = 0).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass
class OperatingPoint:
    """A threshold and what it does on the labelled set it was chosen on."""

    threshold: float
    rule: str
    params: dict = field(default_factory=dict)
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    precision: float = math.nan
    recall: float = math.nan
    f1: float = math.nan
    fpr: float = math.nan

    @property
    def miss_rate(self) -> float:
        """FN / #defective (= 1 - recall)."""
        return 1.0 - self.recall if math.isfinite(self.recall) else math.nan

    def to_dict(self) -> dict:
        d = asdict(self)
        d["miss_rate"] = self.miss_rate
        return d


# --------------------------------------------------------------------------------------------------
# Candidate thresholds and exact confusion counts
# --------------------------------------------------------------------------------------------------


def _prepare(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if s.shape != y.shape:
        raise ValueError(f"scores and labels differ in length: {s.shape[0]} vs {y.shape[0]}")
    if len(s) == 0:
        raise ValueError("no scores")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    try:
        y_int = y.astype(np.int64)
    except (TypeError, ValueError) as e:
        raise ValueError("labels must be 0 (good) or 1 (defective)") from e
    if not np.all((y_int == 0) | (y_int == 1)) or not np.all(y_int == y):
        raise ValueError("labels must be 0 (good) or 1 (defective)")
    return s, y_int.astype(bool)


def _counts_at(s: np.ndarray, y: np.ndarray, thresholds: np.ndarray) -> dict[str, np.ndarray]:
    """Exact confusion counts of ``score > t`` for each t in ``thresholds`` (any order)."""
    pos = np.sort(s[y])
    neg = np.sort(s[~y])
    t = np.asarray(thresholds, dtype=np.float64)
    tp = len(pos) - np.searchsorted(pos, t, side="right")
    fp = len(neg) - np.searchsorted(neg, t, side="right")
    return {"tp": tp, "fp": fp, "fn": len(pos) - tp, "tn": len(neg) - fp}


def _candidate_thresholds(s: np.ndarray) -> np.ndarray:
    """``(D+1,)`` ascending thresholds, one per distinct cut of the sorted distinct scores."""
    u = np.unique(s)
    if len(u) >= 2:
        lo = u[0] - (u[1] - u[0]) / 2.0
        if not lo < u[0]:
            lo = np.nextafter(u[0], -np.inf)
        mids = u[:-1] + (u[1:] - u[:-1]) / 2.0
        mids = np.minimum(np.maximum(mids, u[:-1]), np.nextafter(u[1:], -np.inf))
    else:
        lo = np.nextafter(u[0], -np.inf)
        mids = np.empty(0)
    return np.concatenate([[lo], mids, [u[-1]]])


def _rates(tp, fp, fn, tn) -> dict[str, np.ndarray]:
    tp, fp, fn, tn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn, tn))
    with np.errstate(divide="ignore", invalid="ignore"):
        n_pos, n_neg, flagged = tp + fn, fp + tn, tp + fp
        recall = np.where(n_pos > 0, tp / np.where(n_pos > 0, n_pos, 1), np.nan)
        fpr = np.where(n_neg > 0, fp / np.where(n_neg > 0, n_neg, 1), np.nan)
        precision = np.where(flagged > 0, tp / np.where(flagged > 0, flagged, 1), 1.0)
        denom = 2 * tp + fp + fn
        f1 = np.where(tp > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0)
    return {"precision": precision, "recall": recall, "f1": f1, "fpr": fpr, "miss_rate": 1.0 - recall}


def _table(s, y):
    th = _candidate_thresholds(s)
    c = _counts_at(s, y, th)
    r = _rates(c["tp"], c["fp"], c["fn"], c["tn"])
    return th, c, r


def _point(th, c, r, i: int, rule: str, params: dict) -> OperatingPoint:
    return OperatingPoint(
        threshold=float(th[i]), rule=rule, params=params,
        tp=int(c["tp"][i]), fp=int(c["fp"][i]), fn=int(c["fn"][i]), tn=int(c["tn"][i]),
        precision=float(r["precision"][i]), recall=float(r["recall"][i]),
        f1=float(r["f1"][i]), fpr=float(r["fpr"][i]),
    )


def _argbest_highest(values: np.ndarray, maximise: bool = True) -> int:
    """Index of the best value; ties → the largest index (= highest threshold, candidates ascend)."""
    v = np.asarray(values, dtype=np.float64)
    best = np.nanmax(v) if maximise else np.nanmin(v)
    tol = 1e-12 * max(1.0, abs(best))
    hits = np.nonzero(np.abs(v - best) <= tol)[0]
    return int(hits[-1])


def _need(y: np.ndarray, positives: bool = True, negatives: bool = False) -> None:
    if positives and not y.any():
        raise ValueError("this rule needs at least one defective image (label 1)")
    if negatives and y.all():
        raise ValueError("this rule needs at least one good image (label 0)")


# --------------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------------


def f1_optimal(scores: np.ndarray, labels: np.ndarray) -> OperatingPoint:
    """Threshold maximising F1 = 2 TP / (2 TP + FP + FN) on the given set.

    Args: ``scores`` ``(N,)``, ``labels`` ``(N,)`` (needs >= 1 defective). Ties → highest threshold.
    """
    s, y = _prepare(scores, labels)
    _need(y)
    th, c, r = _table(s, y)
    return _point(th, c, r, _argbest_highest(r["f1"]), "f1-optimal", {})


def youden(scores: np.ndarray, labels: np.ndarray) -> OperatingPoint:
    """Threshold maximising Youden's J = recall - fpr (= TPR - FPR, the ROC point farthest above chance).

    Prevalence-free: weights a missed defect and a false alarm by 1/#defective and 1/#good.
    Needs both classes. Ties → highest threshold.
    """
    s, y = _prepare(scores, labels)
    _need(y, positives=True, negatives=True)
    th, c, r = _table(s, y)
    j = r["recall"] - r["fpr"]
    op = _point(th, c, r, _argbest_highest(j), "youden", {})
    op.params["j"] = op.recall - op.fpr
    return op


def cost_based(
    scores: np.ndarray,
    labels: np.ndarray,
    cost_miss: float,
    cost_false_alarm: float,
    prevalence: float | None = None,
) -> OperatingPoint:
    """Threshold minimising the expected cost per inspected image.

    Expected cost per image = ``cost_miss · π · miss_rate + cost_false_alarm · (1 - π) · fpr`` where
    π is the defect prevalence. **By default π is the prevalence of the given labelled set**
    (#defective / N), so the cost is just ``(cost_miss · FN + cost_false_alarm · FP) / N``; labelled
    sets are usually enriched with defects, so pass the production ``prevalence`` when it is known.

    Args:
        scores, labels: ``(N,)`` each.
        cost_miss: cost of passing one defective part (>= 0, any currency).
        cost_false_alarm: cost of rejecting one good part (>= 0, same currency).
        prevalence: optional production defect rate in [0, 1]; needs both classes when given.

    Returns the point of minimal cost (``params["expected_cost"]`` per image); ties → highest
    threshold. Raising ``cost_miss`` relative to ``cost_false_alarm`` can only lower the threshold.
    """
    if cost_miss < 0 or cost_false_alarm < 0 or not (cost_miss > 0 or cost_false_alarm > 0):
        raise ValueError("costs must be >= 0 and not both 0")
    s, y = _prepare(scores, labels)
    th, c, r = _table(s, y)
    if prevalence is None:
        pi = float(y.mean())
        cost = (cost_miss * c["fn"] + cost_false_alarm * c["fp"]) / len(s)
    else:
        if not 0 <= prevalence <= 1:
            raise ValueError(f"prevalence must be in [0, 1], not {prevalence}")
        _need(y, positives=True, negatives=True)
        pi = float(prevalence)
        cost = cost_miss * pi * r["miss_rate"] + cost_false_alarm * (1 - pi) * r["fpr"]
    i = _argbest_highest(cost, maximise=False)
    params = {"cost_miss": float(cost_miss), "cost_false_alarm": float(cost_false_alarm),
              "prevalence": pi, "prevalence_source": "labelled set" if prevalence is None else "given",
              "expected_cost": float(cost[i])}
    return _point(th, c, r, i, "cost", params)


def recall_at_least(scores: np.ndarray, labels: np.ndarray, target: float) -> OperatingPoint:
    """The highest threshold whose recall (TP / #defective) is >= ``target`` on the given set.

    The highest such threshold has the fewest false alarms among those reaching the target.
    ``target`` in [0, 1]; needs >= 1 defective image. ``target = 1`` flags down to the
    lowest-scoring defect.
    """
    if not 0 <= target <= 1:
        raise ValueError(f"target must be in [0, 1], not {target}")
    s, y = _prepare(scores, labels)
    _need(y)
    th, c, r = _table(s, y)
    n_pos = int(y.sum())
    need_tp = math.ceil(target * n_pos - 1e-9)  # recall >= target, robust to target*n_pos rounding
    ok = np.nonzero(c["tp"] >= need_tp)[0]
    return _point(th, c, r, int(ok[-1]), "recall-at-least", {"target": float(target)})


# --------------------------------------------------------------------------------------------------
# Explorer tables and curves
# --------------------------------------------------------------------------------------------------


def threshold_table(scores: np.ndarray, labels: np.ndarray, thresholds) -> list[dict]:
    """Confusion counts and rates at given thresholds (the report's "threshold explorer").

    Args:
        scores, labels: ``(N,)`` each (labels may be all 0 or all 1; undefined rates are NaN).
        thresholds: iterable of floats (±inf allowed), kept in the given order.

    Returns one dict per threshold: ``threshold, n_flagged, tp, fp, fn, tn, fpr`` (false-alarm
    rate), ``miss_rate, recall, precision, f1``.
    """
    s, y = _prepare(scores, labels)
    th = np.asarray(list(thresholds), dtype=np.float64).ravel()
    if np.any(np.isnan(th)):
        raise ValueError("thresholds must not be NaN")
    c = _counts_at(s, y, th)
    r = _rates(c["tp"], c["fp"], c["fn"], c["tn"])
    rows = []
    for i, t in enumerate(th):
        rows.append({
            "threshold": float(t),
            "n_flagged": int(c["tp"][i] + c["fp"][i]),
            "tp": int(c["tp"][i]), "fp": int(c["fp"][i]), "fn": int(c["fn"][i]), "tn": int(c["tn"][i]),
            "fpr": float(r["fpr"][i]), "miss_rate": float(r["miss_rate"][i]), "recall": float(r["recall"][i]),
            "precision": float(r["precision"][i]), "f1": float(r["f1"][i]),
        })
    return rows


def far_miss_curve(
    scores: np.ndarray, labels: np.ndarray, n_points: int = 200
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False-alarm rate and miss rate as functions of the threshold.

    Thresholds are the exact cut points of :func:`_candidate_thresholds` (every change of the
    counts), sub-sampled evenly by index to at most ``n_points`` (both ends always kept), so the
    curve is exact at every returned threshold and dense where the data are.

    Returns ``(thresholds, far, miss)``, each ``(K,)`` with ``K <= n_points``; thresholds ascending,
    ``far`` (FP / #good, NaN without good images) non-increasing, ``miss`` (FN / #defective, NaN
    without defective images) non-decreasing.
    """
    if n_points < 2:
        raise ValueError("n_points must be >= 2")
    s, y = _prepare(scores, labels)
    th = _candidate_thresholds(s)
    if len(th) > n_points:
        idx = np.unique(np.round(np.linspace(0, len(th) - 1, n_points)).astype(int))
        th = th[idx]
    c = _counts_at(s, y, th)
    r = _rates(c["tp"], c["fp"], c["fn"], c["tn"])
    return th, r["fpr"], r["miss_rate"]
