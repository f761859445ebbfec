"""Drift check: does a batch of supposedly good images still match the calibration set?

Input: the conformal p-values ``p = (1 + #{cal >= s}) / (n + 1)`` of a batch of ``M`` new images
(:func:`kizu.calibration.conformal_p_values`) and the calibration size ``n``. If the new images are
exchangeable with the calibration images (same process, same camera, all good), the p-values are
uniform on ``{1/(n+1), ..., 1}``.

**They are not independent**, though: all images of the batch are compared with the *same*
calibration set, so a batch inherits that set's luck (with 20 calibration images the batch's
false-alarm rate at alpha = 5 % is anywhere between 0.3 % and 14 %; see
:mod:`kizu.calibration.guarantees`). A one-sample KS or binomial test against the uniform law ignores this
and rejects far too often once ``M`` is comparable to ``n``. Both tests here use the exact null
law *including* the calibration draw:

1. **Shape test — KS.** ``#{cal >= s}`` tells where each new score falls among the sorted
   calibration scores, which is all the two-sample Kolmogorov–Smirnov statistic between the
   batch scores and the calibration scores depends on (continuous scores). Its statistic is the
   largest gap between the batch p-values' empirical CDF and the discrete uniform CDF
   (``k/(n+1)`` vs ``k/n`` scaling aside), and its null law (all ``C(n+M, M)`` interleavings equally
   likely) is exactly the exchangeability null — :func:`scipy.stats.ks_2samp` (exact for small
   sizes, asymptotic otherwise). Two-sided: scores that became *lower* (e.g. a blurrier camera
   that is easier to reconstruct) are drift too. (A randomised-p-value one-sample KS test was not
   used: it is exact only conditionally on a fixed calibration set, which is exactly what fails.)
2. **Excess-flag test — one-sided count.** ``X = #{p <= alpha}``. Conditionally on the calibration
   set ``X ~ Binomial(M, FAR)`` and ``FAR ~ Beta(m+1, n-m)`` with ``m = floor(alpha (n+1)) - 1``, so
   marginally ``X ~ BetaBinomial(M, m+1, n-m)`` with mean ``M (m+1)/(n+1)``. p-value
   ``P(X >= x_obs)``. Not applicable (p-value 1) when ``alpha < 1/(n+1)``.

Verdict: ``drifted`` when either p-value is <= ``level / 2`` (Bonferroni: the probability of a false
drift alarm on a good batch is at most ``level``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats


@dataclass
class DriftResult:
    """Outcome of :func:`drift_test` (rates are fractions, p-values in [0, 1])."""

    drifted: bool
    message: str
    n_images: int
    n_cal: int
    alpha: float
    level: float
    n_flagged: int  # images with p <= alpha
    expected_flagged: float  # M (m+1)/(n+1)
    flagged_usual_max: int  # largest count not significant on its own at level/2
    count_p_value: float  # P(X >= n_flagged) under BetaBinomial(M, m+1, n-m)
    ks_statistic: float
    ks_p_value: float
    direction: str  # "higher", "lower" or "none": where batch scores sit relative to calibration
    median_p_value: float

    def to_dict(self) -> dict:
        return asdict(self)


def _ranks_from_p(p: np.ndarray, n_cal: int) -> np.ndarray:
    """``#{cal >= s}`` recovered from ``p = (1 + #{cal >= s})/(n+1)``; validates the grid."""
    c = p * (n_cal + 1) - 1.0
    ci = np.rint(c)
    if np.any(np.abs(c - ci) > 1e-6 * (n_cal + 1)) or np.any(ci < 0) or np.any(ci > n_cal):
        raise ValueError(
            f"p-values are not on the conformal grid {{1/(n+1), ..., 1}} for n_cal={n_cal}; "
            "pass the calibration size the p-values were computed with"
        )
    return ci.astype(np.int64)


def drift_test(
    p_values: np.ndarray,
    n_cal: int,
    alpha: float = 0.05,
    level: float = 0.01,
) -> DriftResult:
    """Test whether a batch of supposedly good images still matches the calibration set.

    Args:
        p_values: ``(M,)`` conformal p-values of the batch against ``n_cal`` calibration scores
            (NaNs are dropped).
        n_cal: number of calibration scores the p-values were computed with.
        alpha: the flagging level whose excess is tested (usually the deployed alpha).
        level: significance level of the combined verdict (false drift alarm rate on good
            batches, at most ``level``).

    Returns:
        :class:`DriftResult` with ``drifted``, both p-values, counts and a plain-words ``message``.
    """
    if int(n_cal) != n_cal or n_cal < 1:
        raise ValueError(f"n_cal must be a positive integer, not {n_cal}")
    if not 0 < alpha < 1 or not 0 < level < 1:
        raise ValueError("alpha and level must be in (0, 1)")
    n_cal = int(n_cal)
    p = np.asarray(p_values, dtype=np.float64).ravel()
    p = p[~np.isnan(p)]
    m_img = len(p)
    if m_img == 0:
        raise ValueError("no p-values to test")
    n_ge = _ranks_from_p(p, n_cal)

    # 1. two-sample KS on pseudo-scores: calibration at 1..n (ascending), a new score with
    #    #{cal >= s} = c sits just below the c largest calibration scores, i.e. at n - c + 0.5.
    cal_pos = np.arange(1, n_cal + 1, dtype=np.float64)
    new_pos = n_cal - n_ge + 0.5
    ks = stats.ks_2samp(new_pos, cal_pos, alternative="two-sided", method="auto")
    ks_stat, ks_p = float(ks.statistic), float(ks.pvalue)

    # 2. excess of p <= alpha against the beta-binomial null
    k = min(max(math.floor(alpha * (n_cal + 1) + 1e-9), 0), n_cal)  # = m + 1
    x = int(np.sum(n_ge <= k - 1))  # p <= alpha  <=>  #{cal >= s} <= m
    if k == 0:
        expected, count_p, usual_max = 0.0, 1.0, 0
    else:
        null = stats.betabinom(m_img, k, n_cal - k + 1)
        expected = m_img * k / (n_cal + 1.0)
        count_p = float(null.sf(x - 1)) if x > 0 else 1.0
        usual_max = int(null.isf(level / 2))  # smallest c with P(X > c) <= level/2
    drifted = bool(count_p <= level / 2 or ks_p <= level / 2)

    med = float(np.median(p))
    if not drifted:
        direction = "none"
    else:  # mean rank of the batch among the calibration scores vs its null mean (n+1)/2
        direction = "higher" if float(np.mean(new_pos)) > (n_cal + 1) / 2.0 else "lower"

    msg = _message(drifted, m_img, n_cal, alpha, x, expected, usual_max, count_p, ks_p, direction, k, level)
    return DriftResult(
        drifted=drifted, message=msg, n_images=m_img, n_cal=n_cal, alpha=float(alpha), level=float(level),
        n_flagged=x, expected_flagged=float(expected), flagged_usual_max=usual_max, count_p_value=count_p,
        ks_statistic=ks_stat, ks_p_value=ks_p, direction=direction, median_p_value=med,
    )


def _fmt_p(p: float) -> str:
    """'KS p = 0.43' / 'KS p < 0.0001'."""
    return f"= {p:.2g}" if p >= 1e-4 else "< 0.0001"


def _fmt_count(x: float) -> str:
    return f"{x:.0f}" if x >= 10 else f"{x:.1f}".removesuffix(".0")


def _message(drifted, m_img, n_cal, alpha, x, expected, usual_max, count_p, ks_p, direction, k, level) -> str:
    a = f"{alpha:g}"
    if k == 0:
        counts = (f"With {n_cal} calibration images no p-value can be <= {a}, so flag counts are not "
                  "informative; only the score distribution was compared.")
    else:
        counts = (f"{x} of {m_img} images have p <= {a} where ~{_fmt_count(expected)} were expected "
                  f"(up to {usual_max} is usual with {n_cal} calibration images)")
    if not drifted:
        # the level the KS p is judged at, so a p below 0.05 is not read as drift
        ks = (f"their scores are spread like the calibration images' too: KS test p {_fmt_p(ks_p)}, "
              f"which would have to be {level / 2:g} or less to call it drift")
        if k == 0:
            return f"{counts} The batch is consistent with the calibration set ({ks})."
        return f"{counts}: the batch is consistent with the calibration set ({ks})."
    if k > 0 and count_p <= level / 2:
        return (f"{counts}: the process or the camera has changed (or the batch contains defects); "
                "recalibrate or retrain once the cause is understood.")
    shift = {"higher": "higher", "lower": "lower"}.get(direction, "different")
    lead = counts + ". " if k > 0 else counts + " "
    return (f"{lead}However the scores of this batch are {shift} than those of the calibration images "
            f"(KS p {_fmt_p(ks_p)}): the images have changed (lighting, camera, product variant?); "
            "check the setup and recalibrate.")
