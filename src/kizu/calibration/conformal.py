"""Where thresholds are decided: conformal p-values on held-out good images.

Each image gets ``p = (1 + #{calibration scores >= s}) / (n_cal + 1)`` and is defective when
``p <= alpha``. If the calibration images and new good images are exchangeable, a good image is then
flagged with probability <= alpha (marginally over the calibration draw).

The seed's rule, ``train-quantile`` (the 95th percentile of the *training* errors), is kept for
comparison. It under-states the false-alarm rate on new images: a model fits its own training images
better than unseen ones, so unseen good images exceed that percentile more often than 5 %.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .guarantees import conditional_threshold, min_calibration_size, normalized_score, plain_words

THRESHOLD_RULES = ("conformal", "conditional", "train-quantile")


def conformal_p_values(scores: np.ndarray, calibration_scores: np.ndarray) -> np.ndarray:
    """``(M,)`` scores → ``(M,)`` p-values ``(1 + #{cal >= s}) / (n + 1)`` in (0, 1]."""
    cal = np.sort(np.asarray(calibration_scores, dtype=np.float64))
    s = np.asarray(scores, dtype=np.float64)
    n_ge = len(cal) - np.searchsorted(cal, s, side="left")
    return (1.0 + n_ge) / (len(cal) + 1.0)


def conformal_threshold(calibration_scores: np.ndarray, alpha: float) -> float:
    """The score threshold t with ``score > t  <=>  p-value <= alpha``.

    ``p <= alpha`` ⟺ ``#{cal >= s} <= m`` with ``m = floor(alpha (n+1)) - 1`` ⟺ s exceeds the
    (m+1)-th largest calibration score. When m < 0 nothing can be flagged: returns +inf.
    """
    cal = np.sort(np.asarray(calibration_scores, dtype=np.float64))[::-1]
    m = math.floor(alpha * (len(cal) + 1) + 1e-9) - 1
    if m < 0 or len(cal) == 0:
        return math.inf
    return float(cal[min(m, len(cal) - 1)])


def smallest_reachable_alpha(n_cal: int) -> float:
    """With n calibration images no p-value is below 1/(n+1)."""
    return 1.0 / (n_cal + 1)


@dataclass
class Calibration:
    """Calibration scores and the operating point derived from them (stored in model.json)."""

    scores: list[float]
    alpha: float = 0.05
    rule: str = "conformal"
    threshold: float = math.inf
    train_scores: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: threshold on the smoothed map for regions and overlays (good images' map peaks, same alpha)
    pixel_threshold: float = math.inf
    #: parameters of the rule that set the threshold (e.g. delta, costs), recorded in model.json
    params: dict = field(default_factory=dict)

    @classmethod
    def fit(cls, calibration_scores, alpha: float = 0.05, rule: str = "conformal", train_scores=None,
            delta: float = 0.1) -> "Calibration":
        """Threshold by ``rule``: ``conformal`` (FAR <= alpha on average over calibration sets),
        ``conditional`` (FAR <= alpha with probability >= 1 - delta; needs more calibration images),
        ``train-quantile`` (the seed's 1 - alpha percentile of training scores)."""
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), not {alpha}")
        if rule not in THRESHOLD_RULES:
            raise ValueError(f"unknown threshold rule {rule!r}; choose one of {THRESHOLD_RULES}")
        cal = [float(x) for x in np.asarray(calibration_scores, dtype=np.float64)]
        train = [float(x) for x in np.asarray(train_scores if train_scores is not None else [], dtype=np.float64)]
        notes, params = [], {}
        if rule == "conditional":
            threshold = conditional_threshold(np.asarray(cal), alpha, delta) if cal else math.inf
            params = {"delta": delta}
            if not math.isfinite(threshold):
                notes.append(f"the conditional rule (alpha={alpha:g}, delta={delta:g}) needs at least "
                             f"{min_calibration_size(alpha, delta)} calibration images, there are {len(cal)}: "
                             "no image can be flagged. Use --calibration cross or more good images.")
        elif rule == "conformal":
            if not cal:
                raise ValueError("the conformal rule needs held-out calibration images (calibration fraction > 0)")
            threshold = conformal_threshold(cal, alpha)
            if alpha < smallest_reachable_alpha(len(cal)):
                notes.append(
                    f"alpha={alpha:g} is below 1/(n_cal+1)={smallest_reachable_alpha(len(cal)):.4f} with "
                    f"{len(cal)} calibration images: no image can be flagged. Use more good images or a larger alpha."
                )
        else:
            if not train:
                raise ValueError("the train-quantile rule needs training scores")
            threshold = float(np.percentile(train, 100 * (1 - alpha)))
            notes.append(
                "train-quantile threshold (the seed's rule): the false-alarm rate on new good images is usually "
                f"above alpha={alpha:g}, because training images are fitted better than unseen ones."
            )
        return cls(cal, alpha, rule, threshold, train, notes, params=params)

    def statement(self) -> str:
        """What the threshold means, in plain words (stored in model.json and shown in the report)."""
        n = len(self.scores)
        if self.rule == "conformal" and n:
            return plain_words(n, self.alpha, "conformal")
        if self.rule == "conditional" and n:
            return plain_words(n, self.alpha, "conditional", delta=self.params.get("delta", 0.1))
        if self.rule == "train-quantile":
            return plain_words(max(n, 1), self.alpha, "train-quantile")
        return (f"The threshold was chosen by rule '{self.rule}' on labelled images; it carries no stated "
                "false-alarm guarantee. The p-values still compare each image with the good calibration images.")

    def p_values(self, scores: np.ndarray) -> np.ndarray:
        """``(M,)`` p-values against the calibration scores (NaN when there are none)."""
        if not self.scores:
            return np.full(np.shape(scores), np.nan)
        return conformal_p_values(scores, np.asarray(self.scores))

    def is_defective(self, scores: np.ndarray) -> np.ndarray:
        """``(M,)`` bool: score above the threshold (⟺ p <= alpha under the conformal rule)."""
        return np.asarray(scores, dtype=np.float64) > self.threshold

    def normalized(self, scores: np.ndarray) -> np.ndarray:
        """``(M,)`` 0–1 scores for people, exactly 0.5 at the threshold (``guarantees.normalized_score``)."""
        cal = np.asarray(self.scores or self.train_scores, dtype=np.float64)
        return np.asarray(normalized_score(np.asarray(scores, dtype=np.float64), self.threshold, cal))

    def to_json(self) -> dict:
        return {
            "rule": self.rule,
            "alpha": self.alpha,
            "threshold": self.threshold if math.isfinite(self.threshold) else None,
            "scores": self.scores,
            "train_scores": self.train_scores,
            "notes": self.notes,
            "pixel_threshold": self.pixel_threshold if math.isfinite(self.pixel_threshold) else None,
            "params": self.params,
            "statement": self.statement(),
        }

    @classmethod
    def from_json(cls, d: dict) -> "Calibration":
        t = d.get("threshold")
        return cls(
            scores=[float(x) for x in d["scores"]],
            alpha=float(d["alpha"]),
            rule=str(d["rule"]),
            threshold=math.inf if t is None else float(t),
            train_scores=[float(x) for x in d.get("train_scores", [])],
            notes=list(d.get("notes", [])),
            pixel_threshold=math.inf if d.get("pixel_threshold") is None else float(d["pixel_threshold"]),
            params=dict(d.get("params", {})),
        )
