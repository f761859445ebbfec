"""The Taguchi part of the Mahalanobis-Taguchi (MT) system, as pure functions.

Quality engineers select MT variables like this: put each variable group on a column of a
two-level orthogonal array (level 1 = use the group, level 2 = leave it out), build the unit space
from the good samples with the groups of each run, compute the Mahalanobis distance (MD) of the
known-defective samples, and turn those into a larger-is-better signal-to-noise ratio per run:

    SN = -10 log10( mean(1 / MD_i) )          [dB; MD scaled so good samples average about 1]

The gain of a group is the mean SN of the runs that use it minus the mean SN of the runs that do
not. A positive gain means the group helps tell defective samples from good ones; the selected
groups are those with gain > 0.

``orthogonal_array(n)`` builds the smallest two-level array (L4, L8, L12, L16, L20, L24, L32, ...)
from a Hadamard matrix (Sylvester doubling and the Paley / Plackett-Burman construction). Run 0 uses
every group (all level 1), as in Taguchi's printed tables; every column is balanced and every pair
of columns is orthogonal (each level pair appears equally often).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

#: md_fn(unit, abnormal) -> MD of each abnormal row, scaled so unit rows average about 1
MDFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


# -- orthogonal arrays -------------------------------------------------------------------------
def _is_prime(q: int) -> bool:
    if q < 2:
        return False
    return all(q % p for p in range(2, int(q**0.5) + 1))


def _paley(q: int) -> np.ndarray:
    """Hadamard matrix of order q + 1 for a prime q = 3 (mod 4) (Paley construction I)."""
    residues = {(i * i) % q for i in range(1, q)}
    chi = np.array([0] + [1 if j in residues else -1 for j in range(1, q)])
    # Jacobsthal matrix Q[i, j] = chi(j - i), skew-symmetric for q = 3 mod 4
    idx = (np.arange(q)[None, :] - np.arange(q)[:, None]) % q
    Q = chi[idx]
    n = q + 1
    S = np.zeros((n, n), dtype=np.int64)
    S[0, 1:] = 1
    S[1:, 0] = -1
    S[1:, 1:] = Q
    return S + np.eye(n, dtype=np.int64)


def hadamard(n: int) -> np.ndarray | None:
    """A Hadamard matrix of order ``n`` (entries ±1, ``H Hᵀ = n I``), or None if not built here."""
    if n == 1:
        return np.ones((1, 1), dtype=np.int64)
    if n == 2:
        return np.array([[1, 1], [1, -1]], dtype=np.int64)
    if n % 4:
        return None
    if _is_prime(n - 1) and (n - 1) % 4 == 3:
        return _paley(n - 1)
    half = hadamard(n // 2) if n % 8 == 0 else None
    if half is None:
        return None
    return np.block([[half, half], [half, -half]])


def orthogonal_array(n_factors: int) -> np.ndarray:
    """The smallest two-level orthogonal array for ``n_factors`` factors.

    Returns an int array ``(runs, n_factors)`` with entries 1 (use) and 2 (don't use); ``runs`` is
    the smallest multiple of 4 above ``n_factors`` that a Sylvester or Paley Hadamard matrix exists
    for (4, 8, 12, 16, 20, 24, 32, 44, 48, ...). Row 0 is all 1s. Each column has ``runs / 2`` of
    each level; each pair of columns has each of (1,1), (1,2), (2,1), (2,2) ``runs / 4`` times.
    """
    if n_factors < 1:
        raise ValueError(f"need at least one factor, not {n_factors}")
    runs = 4
    while True:
        if runs - 1 >= n_factors:
            H = hadamard(runs)
            if H is not None:
                break
        runs += 4
    H = H * H[:, :1]  # normalise: first column all +1
    H = H * H[:1, :]  # first row all +1
    cols = H[:, 1 : n_factors + 1]
    return np.where(cols > 0, 1, 2).astype(np.int64)


# -- SN ratio and the unit-space MD ------------------------------------------------------------
def larger_is_better_sn(md_values: np.ndarray) -> float:
    """Taguchi's larger-is-better SN ratio in dB: ``-10 log10(mean(1 / MD))``."""
    md = np.asarray(md_values, dtype=np.float64).ravel()
    if md.size == 0:
        raise ValueError("need at least one MD value")
    if np.any(md <= 0):
        raise ValueError("MD values must be positive for the larger-is-better SN ratio")
    return float(-10.0 * np.log10(np.mean(1.0 / md)))


def robust_std(x: np.ndarray, std_floor: float = 0.1, ddof: int = 1) -> np.ndarray:
    """Per-column std of ``x`` (ddof=1) floored at ``std_floor`` × the median of the non-zero stds.

    Constant columns (a pixel that is black in every good image) get the floor instead of 0 or a
    tiny epsilon, so one changed pixel there cannot produce an astronomically large MD.
    """
    x = np.asarray(x, dtype=np.float64)
    sd = x.std(axis=0, ddof=ddof) if len(x) > ddof else np.zeros(x.shape[1])
    positive = sd[sd > 1e-12]
    ref = float(np.median(positive)) if positive.size else 1.0
    return np.maximum(sd, max(std_floor * ref, 1e-12 * ref))


def ledoit_wolf_shrinkage(z: np.ndarray) -> float:
    """Ledoit-Wolf (2004) shrinkage intensity towards ``mu I`` for centred rows ``z`` (n, p)."""
    z = np.asarray(z, dtype=np.float64)
    n, p = z.shape
    S = z.T @ z / n if p <= n else None
    if S is not None:
        fro2 = float(np.sum(S * S))
    else:
        G = z @ z.T / n  # same non-zero spectrum, so the same Frobenius norm
        fro2 = float(np.sum(G * G))
    sq = np.einsum("ij,ij->i", z, z)
    mu = float(sq.sum() / n / p)
    delta = fro2 / p - mu * mu
    beta = (float(np.sum(sq * sq)) / n - fro2) / (n * p)
    if delta <= 0:
        return 1.0 if beta > 0 else 0.0
    return float(min(max(beta, 0.0), delta) / delta)


def mt_md(
    unit: np.ndarray,
    samples: np.ndarray,
    *,
    shrinkage: str | float = "ledoit-wolf",
    std_floor: float = 0.0,
) -> np.ndarray:
    """Classic MT: MD = zᵀ R⁻¹ z / k of ``samples`` against the unit space ``unit`` (n, k).

    z is standardised with the unit space's mean and std (ddof=1; ``std_floor`` > 0 floors it as
    in :func:`robust_std`; 0 keeps the textbook std and only guards exact zeros),
    R is the unit space's correlation matrix, shrunk towards I by Ledoit-Wolf (``"ledoit-wolf"``),
    a fixed intensity in [0, 1], or not at all (``"none"``, the textbook MD; needs n > k).
    Unit-space rows average (n-1)/n ≈ 1.
    """
    unit = np.asarray(unit, dtype=np.float64)
    samples = np.atleast_2d(np.asarray(samples, dtype=np.float64))
    n, k = unit.shape
    mean = unit.mean(axis=0)
    sd = robust_std(unit, std_floor)
    zu = (unit - mean) / sd
    z = (samples - mean) / sd
    R = zu.T @ zu / (n - 1)
    if shrinkage == "none":
        s = 0.0
    elif shrinkage == "ledoit-wolf":
        s = ledoit_wolf_shrinkage(zu)
    else:
        s = float(shrinkage)
        if not 0.0 <= s <= 1.0:
            raise ValueError(f"shrinkage must be 'ledoit-wolf', 'none' or in [0, 1], not {shrinkage!r}")
    mu = float(np.trace(R)) / k
    R = (1 - s) * R + s * mu * np.eye(k)
    sol = np.linalg.lstsq(R, z.T, rcond=None)[0] if s == 0 else np.linalg.solve(R, z.T)
    return np.einsum("ij,ji->i", z, sol) / k


# -- variable selection ------------------------------------------------------------------------
@dataclass
class SelectionResult:
    """Outcome of :func:`select_variables`.

    ``gains[g]``: mean SN (dB) of the runs using group g minus that of the runs without it.
    ``selected``: indices of the groups with gain > ``min_gain`` (all groups if none has).
    ``sn``: SN ratio of each run; ``array``: the orthogonal array (runs, n_groups), 1 = used.
    """

    gains: np.ndarray
    selected: list[int]
    sn: np.ndarray
    array: np.ndarray
    level_means: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))


def _normalise_groups(groups, n_features: int) -> list[np.ndarray]:
    if isinstance(groups, np.ndarray) and groups.ndim == 1 and groups.dtype.kind in "iu" and len(groups) == n_features:
        labels = np.unique(groups)
        return [np.flatnonzero(groups == g) for g in labels]
    out = [np.asarray(g, dtype=np.int64).ravel() for g in groups]
    for g in out:
        if g.size == 0 or g.min() < 0 or g.max() >= n_features:
            raise ValueError("each group must be a non-empty list of feature (column) indices")
    return out


def select_variables(
    unit_features: np.ndarray,
    abnormal_features: np.ndarray,
    groups: Sequence[Sequence[int]] | np.ndarray,
    *,
    md_fn: MDFn | None = None,
    array: np.ndarray | None = None,
    min_gain: float = 0.0,
) -> SelectionResult:
    """SN-ratio variable selection with a two-level orthogonal array.

    ``unit_features`` (n, d): good samples; ``abnormal_features`` (m, d): known-defective samples;
    ``groups``: a list of column-index lists, or one int label per column. Each run of the array
    builds the unit space from the columns of its level-1 groups and scores the abnormal samples
    with ``md_fn(unit[:, cols], abnormal[:, cols])`` (default :func:`mt_md`, Ledoit-Wolf). A run
    using no group has no information: its MD is 1 everywhere, SN = 0 dB. Groups with a gain above
    ``min_gain`` dB are selected (Taguchi's rule is 0; a small margin such as 1 dB ignores the
    ±0.5 dB that a group of pure noise scores by chance).

    The larger-is-better SN is dominated by the smallest MDs, so groups of only one or two
    variables (whose MD/k is often near 0 by chance) score badly on their own; groups of several
    variables behave better.
    """
    unit = np.asarray(unit_features, dtype=np.float64)
    abnormal = np.atleast_2d(np.asarray(abnormal_features, dtype=np.float64))
    if unit.ndim != 2 or abnormal.shape[1] != unit.shape[1]:
        raise ValueError(f"feature matrices do not match: {unit.shape} vs {abnormal.shape}")
    groups_ = _normalise_groups(groups, unit.shape[1])
    md_fn = md_fn or mt_md
    oa = orthogonal_array(len(groups_)) if array is None else np.asarray(array)
    if oa.shape[1] != len(groups_):
        raise ValueError(f"array has {oa.shape[1]} columns for {len(groups_)} groups")
    sn = np.zeros(len(oa))
    for r, row in enumerate(oa):
        used = [groups_[g] for g in range(len(groups_)) if row[g] == 1]
        if not used:
            sn[r] = 0.0
            continue
        cols = np.unique(np.concatenate(used))
        md = np.asarray(md_fn(unit[:, cols], abnormal[:, cols]), dtype=np.float64)
        sn[r] = larger_is_better_sn(np.maximum(md, 1e-12))
    means = np.array([[sn[oa[:, g] == 1].mean(), sn[oa[:, g] == 2].mean()] for g in range(len(groups_))])
    gains = means[:, 0] - means[:, 1]
    selected = [int(g) for g in np.flatnonzero(gains > min_gain)]
    if not selected:
        selected = list(range(len(groups_)))
    return SelectionResult(gains=gains, selected=selected, sn=sn, array=oa, level_means=means)
