"""Guarantees stated in plain words: what a conformal threshold promises about false alarms.

Setting and notation (shared with :mod:`kizu.calibration`):

* ``n`` held-out *good* calibration images with anomaly scores ``c_1 .. c_n`` (higher = more
  anomalous). A new image with score ``s`` gets the conformal p-value
  ``p = (1 + #{c_i >= s}) / (n + 1)`` and is flagged when ``p <= alpha``.
* ``p <= alpha``  ⟺  ``#{c_i >= s} <= m`` with ``m = floor(alpha (n + 1)) - 1``  ⟺  ``s`` is above
  the ``(m + 1)``-th largest calibration score. So the rule "flag when ``s > t``" with ``t`` the
  ``k``-th largest calibration score (``k = m + 1``) *is* the conformal rule.
* The **false-alarm rate** (FAR) of a fixed threshold ``t`` is ``P(S > t)`` for a new good image
  ``S``. It depends on which calibration images happened to be drawn, so it is a random variable
  over calibration sets.

The distribution (continuous scores, calibration and new good images i.i.d.): with ``F`` the
score CDF of good images, ``U_i = F(c_i)`` are i.i.d. uniform, and the threshold "``k``-th largest
of ``n``" has ``F(t) = U_(n-k+1)`` (the ``(n-k+1)``-th smallest uniform) ``~ Beta(n-k+1, k)``.
Hence::

    FAR = 1 - F(t)  ~  Beta(k, n - k + 1)          (k = rank from the top, 1 = largest)

and for the conformal rule (``k = m + 1``) ``FAR ~ Beta(m + 1, n - m)`` with mean
``(m + 1) / (n + 1) <= alpha``: the familiar marginal guarantee. Equivalently
``P(FAR > a) = P(Binomial(n, a) <= k - 1)``. With tied scores the guarantee still holds (``S > t``
with a strict inequality only gets rarer), the Beta law is then an upper bound in distribution.

Two rules are described here:

* ``"conformal"`` (marginal): ``k = floor(alpha (n+1))`` — false-alarm rate at most ``alpha`` *on
  average over calibration sets*; a particular calibration set can give more.
* ``"conditional"`` (calibration-conditional, a.k.a. PAC / training-conditional): the largest
  ``k`` with ``P(FAR > alpha) <= delta`` — false-alarm rate at most ``alpha`` *for this calibration
  set*, with probability at least ``1 - delta`` over the draw of the calibration set. It needs at
  least ``ceil(log(delta) / log(1 - alpha))`` calibration images (45 for alpha=5 %, delta=10 %).

Everything here is a pure function of numbers; nothing reads or writes files.
"""

from __future__ import annotations

import math

import numpy as np

CONFORMAL = "conformal"
CONDITIONAL = "conditional"
_CONDITIONAL_ALIASES = ("conditional", "pac", "training-conditional", "calibration-conditional")
_EPS = 1e-9  # same tolerance as kizu.calibration.conformal_threshold for floor(alpha (n+1))


def binom_cdf(n: int, p: float) -> np.ndarray:
    """``P(X <= j)`` for ``j = 0..n``, ``X ~ Binomial(n, p)``: the pmf by its ratio recursion in log
    space, summed (numpy alone, so a line PC without SciPy can state a threshold's guarantee)."""
    if p <= 0.0:
        return np.ones(n + 1)
    if p >= 1.0:
        return np.r_[np.zeros(n), 1.0]
    j = np.arange(n, dtype=np.float64)
    steps = np.log(n - j) - np.log(j + 1) + math.log(p) - math.log1p(-p)
    log_pmf = n * math.log1p(-p) + np.r_[0.0, np.cumsum(steps)]
    return np.minimum(np.cumsum(np.exp(log_pmf - log_pmf.max())) * math.exp(log_pmf.max()), 1.0)


def beta_ppf(q: float, a: int, b: int) -> float:
    """The ``q`` quantile of ``Beta(a, b)`` for integers ``a, b >= 1``, by bisection on
    ``P(Beta(a, b) <= x) = P(Binomial(a + b - 1, x) >= a)``."""
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if 1.0 - binom_cdf(a + b - 1, mid)[a - 1] < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


# --------------------------------------------------------------------------------------------------
# The false-alarm-rate distribution
# --------------------------------------------------------------------------------------------------


def conformal_rank(n_cal: int, alpha: float) -> int:
    """Rank ``k = m + 1 = floor(alpha (n+1))`` (from the top) of the conformal threshold.

    The conformal rule flags ``s`` when it exceeds the ``k``-th largest of the ``n_cal`` calibration
    scores. ``k = 0`` means nothing can be flagged (``alpha < 1/(n+1)``); ``k`` is capped at ``n_cal``
    (as :func:`kizu.calibration.conformal_threshold` does).
    """
    _check_n(n_cal)
    _check_prob("alpha", alpha)
    return int(min(max(math.floor(alpha * (n_cal + 1) + _EPS), 0), n_cal))


def rank_far_distribution(n_cal: int, rank: int) -> dict:
    """Distribution of the false-alarm rate when flagging ``s > (rank-th largest calibration score)``.

    ``FAR ~ Beta(rank, n_cal - rank + 1)`` (continuous scores). ``rank = 0`` means the threshold is
    +inf: FAR is exactly 0.

    Returns a dict with (rates are fractions in [0, 1]):
      ``rank``, ``beta_a``, ``beta_b`` (None when rank = 0), ``expected`` = rank/(n+1), ``std``,
      ``q05``, ``q95`` (5 % / 95 % quantiles over calibration sets), ``median``.
    """
    _check_n(n_cal)
    rank = int(rank)
    if not 0 <= rank <= n_cal:
        raise ValueError(f"rank must be in [0, n_cal={n_cal}], not {rank}")
    if rank == 0:
        return {"rank": 0, "beta_a": None, "beta_b": None, "expected": 0.0, "std": 0.0,
                "q05": 0.0, "median": 0.0, "q95": 0.0}
    a, b = float(rank), float(n_cal - rank + 1)
    return {
        "rank": rank,
        "beta_a": a,
        "beta_b": b,
        "expected": a / (a + b),
        "std": float(math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))),
        "q05": beta_ppf(0.05, rank, n_cal - rank + 1),
        "median": beta_ppf(0.5, rank, n_cal - rank + 1),
        "q95": beta_ppf(0.95, rank, n_cal - rank + 1),
    }


def false_alarm_distribution(n_cal: int, alpha: float) -> dict:
    """False-alarm rate of the conformal rule, *conditional on the calibration set*, as a distribution.

    Rule: flag when ``p <= alpha`` with ``p = (1 + #{cal >= s}) / (n + 1)``, i.e. when ``s`` exceeds the
    ``(m+1)``-th largest of the ``n`` calibration scores, ``m = floor(alpha (n+1)) - 1``. Over the
    random draw of the calibration set, the false-alarm rate of that threshold is
    ``Beta(m + 1, n - m)`` (continuous scores, exchangeable good images).

    Args:
        n_cal: number of calibration (good, held-out) images, >= 1.
        alpha: nominal false-alarm rate in (0, 1).

    Returns:
        dict with keys
        ``n_cal``, ``alpha``, ``m``, ``rank`` (= m + 1, the threshold is the rank-th largest score),
        ``beta_a`` = m + 1 and ``beta_b`` = n - m (None when unreachable),
        ``expected`` = (m+1)/(n+1) (<= alpha), ``std``, ``q05``, ``median``, ``q95`` (fractions),
        ``reachable`` (False when m < 0, i.e. alpha < 1/(n+1): nothing can ever be flagged and the
        FAR is exactly 0), ``smallest_reachable_alpha`` = 1/(n+1), and ``min_n_cal`` — the fewest
        calibration images for which this alpha is reachable.
    """
    k = conformal_rank(n_cal, alpha)
    out = {"n_cal": int(n_cal), "alpha": float(alpha), "m": k - 1}
    out.update(rank_far_distribution(n_cal, k))
    out["reachable"] = k > 0
    out["smallest_reachable_alpha"] = 1.0 / (n_cal + 1)
    out["min_n_cal"] = min_calibration_size(alpha)
    return out


def min_calibration_size(alpha: float, delta: float | None = None) -> int:
    """Fewest calibration images for which a rule can flag anything at all.

    * ``delta is None`` (conformal rule): ``alpha >= 1/(n+1)``  ⟺  ``n >= 1/alpha - 1``.
    * ``delta`` given (conditional rule): the most permissive threshold (the largest score, k = 1)
      must already satisfy ``P(FAR > alpha) = (1 - alpha)^n <= delta``  ⟺
      ``n >= log(delta) / log(1 - alpha)``.
    """
    _check_prob("alpha", alpha)
    if delta is None:
        n = max(math.ceil(1.0 / alpha - 1.0 - _EPS), 1)
        while math.floor(alpha * (n + 1) + _EPS) < 1:  # guard against rounding
            n += 1
        return n
    _check_prob("delta", delta)
    n = max(math.ceil(math.log(delta) / math.log1p(-alpha) - _EPS), 1)
    while (1.0 - alpha) ** n > delta:
        n += 1
    return n


# --------------------------------------------------------------------------------------------------
# The calibration-conditional rule
# --------------------------------------------------------------------------------------------------


def conditional_threshold_rank(n_cal: int, alpha: float, delta: float) -> int | None:
    """Rank ``k`` (from the top) of the calibration-conditional ("PAC") threshold, or None.

    Definition: flag a new image when its score is *strictly above the k-th largest* calibration
    score (k = 1: above the maximum). ``k`` is the **largest** rank (i.e. the lowest, least
    conservative threshold) such that

        P(FAR > alpha) = betainc-sf(alpha; k, n - k + 1) = P(Binomial(n, alpha) <= k - 1) <= delta,

    so that, with probability at least ``1 - delta`` over the calibration draw, the false-alarm rate
    of *this* calibration set's threshold is at most ``alpha``. Equivalently it is the conformal
    p-value test ``p <= k / (n+1)`` (see :func:`conditional_alpha`). Counting ranks from the bottom,
    it is the smallest order statistic ``r = n - k + 1`` (r-th smallest) with that property.

    Returns None when even ``k = 1`` fails, i.e. ``(1 - alpha)^n > delta``
    (``n < log(delta)/log(1-alpha)``; see :func:`min_calibration_size`).
    """
    _check_n(n_cal)
    _check_prob("alpha", alpha)
    _check_prob("delta", delta)
    ks = np.arange(1, n_cal + 1)
    p_exceed = binom_cdf(n_cal, alpha)[ks - 1]  # P(FAR > alpha) for each k, increasing in k
    ok = np.nonzero(p_exceed <= delta)[0]
    if len(ok) == 0:
        return None
    return int(ks[ok[-1]])


def conditional_alpha(n_cal: int, alpha: float, delta: float) -> float | None:
    """The p-value level ``k / (n+1)`` equivalent to the conditional rule (None when impossible).

    ``kizu.calibration.conformal_threshold(cal, conditional_alpha(n, alpha, delta))`` returns the
    same threshold as :func:`conditional_threshold`.
    """
    k = conditional_threshold_rank(n_cal, alpha, delta)
    return None if k is None else k / (n_cal + 1.0)


def conditional_threshold(calibration_scores: np.ndarray, alpha: float, delta: float) -> float:
    """Score threshold of the calibration-conditional rule: flag when ``score > threshold``.

    Args:
        calibration_scores: ``(n,)`` anomaly scores of held-out good images.
        alpha: maximal false-alarm rate in (0, 1).
        delta: allowed probability (over calibration draws) that the rate exceeds alpha, in (0, 1).

    Returns:
        the ``k``-th largest calibration score with ``k = conditional_threshold_rank(n, alpha,
        delta)``; ``+inf`` when no such ``k`` exists (nothing will be flagged).
    """
    cal = np.sort(np.asarray(calibration_scores, dtype=np.float64).ravel())[::-1]
    if len(cal) == 0:
        return math.inf
    k = conditional_threshold_rank(len(cal), alpha, delta)
    return math.inf if k is None else float(cal[k - 1])


# --------------------------------------------------------------------------------------------------
# Plain words
# --------------------------------------------------------------------------------------------------


def _pct(x: float) -> str:
    """0.0476 → '4.8 %', 0.05 → '5 %'; small rates keep two significant digits ('0.026 %')."""
    v = 100.0 * x
    if v == 0:
        return "0 %"
    if v >= 0.1:
        txt = f"{v:.1f}"
        return (txt[:-2] if txt.endswith(".0") else txt) + " %"
    return f"{v:.2g} %"


def _ordinal(k: int) -> str:
    if k == 1:
        return "highest"
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}-highest"


def plain_words(n_cal: int, alpha: float, rule: str = CONFORMAL, delta: float | None = None) -> str:
    """One to three sentences a quality engineer can read, with the numbers computed.

    Args:
        n_cal: number of calibration images.
        alpha: target false-alarm rate.
        rule: ``"conformal"`` (marginal guarantee), ``"conditional"`` (aliases ``"pac"``,
            ``"training-conditional"``; needs ``delta``) or ``"train-quantile"`` (no guarantee).
        delta: for the conditional rule, the allowed failure probability (e.g. 0.1 → "with
            probability at least 90 %").

    The "between a and b for 90 % of calibration sets" range is the 5 %–95 % interval of the Beta law
    of the false-alarm rate (see module docstring).
    """
    rule_l = rule.lower()
    if rule_l == "train-quantile":
        return (
            f"No guarantee: the threshold is the {_pct(1 - alpha)} quantile of the training images' scores, "
            f"and unseen good parts usually exceed it more often than {_pct(alpha)} because the model fits "
            "its own training images better. Use the conformal rule with held-out calibration images "
            "for a stated false-alarm rate."
        )
    if rule_l == CONFORMAL:
        d = false_alarm_distribution(n_cal, alpha)
        if not d["reachable"]:
            return (
                f"With {n_cal} calibration images no p-value can be below 1/{n_cal + 1} = "
                f"{_pct(d['smallest_reachable_alpha'])}, so a false-alarm rate of {_pct(alpha)} cannot be "
                f"targeted and nothing will be flagged. Use at least {d['min_n_cal']} good calibration "
                f"images or alpha >= {_pct(d['smallest_reachable_alpha'])}."
            )
        return (
            f"A good part is flagged with probability at most {_pct(alpha)} (on average over calibration "
            f"sets). With these {n_cal} calibration images the actual rate is {_pct(d['expected'])} on "
            f"average and lies between {_pct(d['q05'])} and {_pct(d['q95'])} for 90 % of calibration sets."
        )
    if rule_l in _CONDITIONAL_ALIASES:
        if delta is None:
            raise ValueError("the conditional rule needs delta (e.g. 0.1)")
        k = conditional_threshold_rank(n_cal, alpha, delta)
        head = (
            f"A good part is flagged with probability at most {_pct(alpha)}, with probability at least "
            f"{_pct(1 - delta)} over the choice of calibration images."
        )
        if k is None:
            return (
                f"With {n_cal} calibration images no threshold can guarantee a false-alarm rate of at most "
                f"{_pct(alpha)} with probability at least {_pct(1 - delta)}, so nothing will be flagged. "
                f"That needs at least {min_calibration_size(alpha, delta)} good calibration images "
                "(or a larger alpha or delta)."
            )
        d = rank_far_distribution(n_cal, k)
        return (
            f"{head} With these {n_cal} calibration images the threshold is the {_ordinal(k)} calibration "
            f"score; the actual rate is {_pct(d['expected'])} on average and lies between {_pct(d['q05'])} "
            f"and {_pct(d['q95'])} for 90 % of calibration sets."
        )
    raise ValueError(f"unknown rule {rule!r}; choose 'conformal', 'conditional' or 'train-quantile'")


# --------------------------------------------------------------------------------------------------
# A score an operator can read
# --------------------------------------------------------------------------------------------------


def robust_scale(calibration_scores: np.ndarray) -> float:
    """A robust spread of the calibration scores (score units), always > 0.

    IQR / 1.349 (≈ std for a normal law); falls back to 1.4826·MAD, then the std, then
    ``0.1 · max(|median|, 1)`` when all scores are equal (or 1.0 when there are none).
    """
    c = np.asarray(calibration_scores, dtype=np.float64).ravel()
    c = c[np.isfinite(c)]
    if len(c) == 0:
        return 1.0
    q25, q50, q75 = np.percentile(c, [25, 50, 75])
    for s in ((q75 - q25) / 1.349, 1.4826 * float(np.median(np.abs(c - q50))), float(np.std(c))):
        if s > 0 and math.isfinite(s):
            return float(s)
    return 0.1 * max(abs(float(q50)), 1.0)


def normalized_score(
    scores: np.ndarray,
    threshold: float,
    calibration_scores: np.ndarray,
    scale: float | None = None,
) -> np.ndarray:
    """Map raw anomaly scores to [0, 1] with exactly 0.5 at the threshold (monotone increasing).

    ``normalised > 0.5``  ⟺  ``score > threshold``  ⟺  flagged. Construction (``t`` = threshold,
    ``scale`` = :func:`robust_scale` of the calibration scores unless given):

    * **below t** (``s < t``): ``0.5 · G(s)`` where ``G`` is the empirical CDF of the calibration
      scores below ``t``, made continuous and strictly increasing: piecewise-linear through the
      knots ``(v_j, N(v_j) / (N_below + 1))`` (``v_j`` the distinct calibration scores < t,
      ``N(v)`` = #{cal <= v}, ``N_below`` = #{cal < t}) and ``(t, 1)``; left of the lowest knot
      ``(x_0, y_0)`` an exponential tail ``y_0 · exp((s - x_0) / scale)``. So a typical good image
      reads ≈ 0.25, the best calibration image ≈ 0, images just under the threshold → 0.5.
    * **above t**: ``0.5 + 0.5 · (1 - exp(-(s - t) / scale))`` — one robust spread above the
      threshold reads 0.82, three read 0.98.
    * ``t = +inf`` (nothing can be flagged): ``G`` uses all calibration scores, and right of the
      largest one ``y_K + (1 - y_K)(1 - exp(-(s - v_K)/scale))`` → everything finite stays < 0.5
      (up to float rounding far above the calibration scores).
    * ``t = -inf`` (everything flagged): the mirror image, ``0.5 + 0.5 · G(s)`` on all calibration
      scores with an exponential left tail, so every finite score is > 0.5.
    * ``s = ±inf`` map to 1 / 0 (``+inf`` at ``t = +inf`` is "at the threshold": 0.5); NaN stays NaN.

    Args:
        scores: ``(...,)`` raw anomaly scores (any shape).
        threshold: the decision threshold in score units (flag when score > threshold).
        calibration_scores: ``(n,)`` scores of held-out good images (may be empty when t is finite).
        scale: spread in score units for the exponential parts; default :func:`robust_scale`.

    Returns:
        array of the same shape as ``scores`` with values in [0, 1].
    """
    s = np.asarray(scores, dtype=np.float64)
    t = float(threshold)
    if math.isnan(t):
        raise ValueError("threshold is NaN")
    cal = np.asarray(calibration_scores, dtype=np.float64).ravel()
    cal = np.sort(cal[np.isfinite(cal)])
    sc = float(scale) if scale is not None else robust_scale(cal)
    if not sc > 0 or not math.isfinite(sc):
        raise ValueError(f"scale must be a positive finite number, not {scale}")
    if not math.isfinite(t) and len(cal) == 0:
        raise ValueError("an infinite threshold needs calibration scores to normalise against")

    out = np.full(s.shape, np.nan)
    with np.errstate(over="ignore", invalid="ignore"):
        if t == math.inf:
            g = _ecdf_map(s, cal, upper=None, scale=sc)
            out = np.where(np.isnan(s), np.nan, 0.5 * g)
            out = np.where(s == math.inf, 0.5, out)
        elif t == -math.inf:
            g = _ecdf_map(s, cal, upper=None, scale=sc)
            out = np.where(np.isnan(s), np.nan, 0.5 + 0.5 * g)
            out = np.where(s == -math.inf, 0.5, out)
        else:
            below = s < t
            g = _ecdf_map(np.where(below, s, t), cal[cal < t], upper=t, scale=sc)
            hi = 0.5 + 0.5 * (-np.expm1(-(s - t) / sc))
            out = np.where(below, 0.5 * g, hi)
            out = np.where(s == t, 0.5, out)
            out = np.where(np.isnan(s), np.nan, out)
    return np.clip(out, 0.0, 1.0)


def _ecdf_map(s: np.ndarray, cal_sorted: np.ndarray, upper: float | None, scale: float) -> np.ndarray:
    """Continuous, strictly increasing ECDF-like map to [0, 1]; ``G(upper) = 1`` when upper is given.

    Knots: distinct calibration values ``v_j`` with ``y_j = #{cal <= v_j} / (N + 1)`` (N = len(cal)),
    plus ``(upper, 1)`` when ``upper`` is finite. Exponential tails outside the knots.
    """
    n = len(cal_sorted)
    if n:
        xs, counts = np.unique(cal_sorted, return_counts=True)
        ys = np.cumsum(counts) / (n + 1.0)
    else:
        xs, ys = np.empty(0), np.empty(0)
    if upper is not None:
        xs = np.append(xs, upper)
        ys = np.append(ys, 1.0)
    g = np.interp(s, xs, ys)
    left = s < xs[0]
    g = np.where(left, ys[0] * np.exp((s - xs[0]) / scale), g)
    if upper is None:
        right = s > xs[-1]
        g = np.where(right, ys[-1] + (1 - ys[-1]) * (-np.expm1(-(s - xs[-1]) / scale)), g)
    return g


# --------------------------------------------------------------------------------------------------


def _check_n(n_cal: int) -> None:
    if int(n_cal) != n_cal or n_cal < 1:
        raise ValueError(f"n_cal must be a positive integer, not {n_cal}")


def _check_prob(name: str, x: float) -> None:
    if not 0 < x < 1:
        raise ValueError(f"{name} must be in (0, 1), not {x}")
