"""Conformal p-values in words an operator reads at a glance."""

from __future__ import annotations


def p_value_words(p: float | None, n_calibration: int) -> str:
    """How often a good part scores this high: "a good part scores this high 1 time in 200".

    p = (1 + #{calibration scores >= s}) / (n + 1) is the share of good parts expected to score at
    least this high; at its floor 1/(n+1) the score is above every calibration image, so the rate
    is only known to be below 1 in n+1.
    """
    if p is None or p != p:
        return "no p-value: the model has no calibration images"
    if n_calibration > 0 and p <= 1.0 / (n_calibration + 1) + 1e-12:
        return (f"higher than all {n_calibration} good calibration parts: a good part scores this high "
                f"less than 1 time in {n_calibration + 1}")
    if p < 0.1:
        return f"a good part scores this high about 1 time in {max(2, round(1 / p))}"
    tenths = min(10, max(1, round(10 * p)))
    if tenths == 10:
        return "an ordinary score: almost every good part scores this high"
    return f"a good part scores this high about {tenths} {'time' if tenths == 1 else 'times'} in 10"
