"""Taguchi orthogonal arrays, the larger-is-better SN ratio, textbook MD and SN variable selection."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from kizu.detectors._components.taguchi import (
    hadamard,
    larger_is_better_sn,
    ledoit_wolf_shrinkage,
    mt_md,
    orthogonal_array,
    select_variables,
)


@pytest.mark.parametrize(
    "n_factors, runs",
    [(1, 4), (3, 4), (4, 8), (7, 8), (8, 12), (11, 12), (15, 16), (19, 20), (23, 24), (31, 32), (40, 44)],
)
def test_orthogonal_array_is_balanced_and_orthogonal(n_factors, runs):
    oa = orthogonal_array(n_factors)
    assert oa.shape == (runs, n_factors)
    assert set(np.unique(oa)) <= {1, 2}
    assert (oa[0] == 1).all()  # run 0 uses every group, as in Taguchi's tables
    for col in oa.T:  # balance
        assert (col == 1).sum() == runs // 2
    for a, b in itertools.combinations(range(n_factors), 2):  # every level pair equally often
        for la, lb in itertools.product((1, 2), repeat=2):
            assert ((oa[:, a] == la) & (oa[:, b] == lb)).sum() == runs // 4


def test_hadamard_orders():
    for n in (2, 4, 8, 12, 20, 24, 32, 44):
        H = hadamard(n)
        assert H is not None and (H @ H.T == n * np.eye(n)).all()
    assert hadamard(28) is None  # neither Sylvester nor Paley: orthogonal_array skips to 32


def test_larger_is_better_sn_on_hand_numbers():
    # mean(1/MD) = (1 + 1/4) / 2 = 0.625  ->  -10 log10 0.625 = 2.0412 dB
    assert larger_is_better_sn([1.0, 4.0]) == pytest.approx(2.041199826559248)
    assert larger_is_better_sn([10.0, 10.0]) == pytest.approx(10.0)
    assert larger_is_better_sn([1.0]) == pytest.approx(0.0)
    with pytest.raises(ValueError):
        larger_is_better_sn([1.0, 0.0])


# unit space x1 = 1..5, x2 = 2 1 4 3 5: means 3, std (ddof 1) sqrt(2.5), r = 8/10 = 0.8.
# Sample (5, 1): z = (2, -2)/sqrt(2.5) -> z1² = z2² = 1.6, z1 z2 = -1.6
# zᵀR⁻¹z = (z1² - 2 r z1 z2 + z2²) / (1 - r²) = (1.6 + 2.56 + 1.6) / 0.36 = 16;  MD = 16 / k = 8.
TEXTBOOK_UNIT = np.array([[1, 2], [2, 1], [3, 4], [4, 3], [5, 5]], dtype=float)


def test_mt_md_matches_the_textbook_value():
    assert mt_md(TEXTBOOK_UNIT, [[5.0, 1.0]], shrinkage="none")[0] == pytest.approx(8.0)
    assert mt_md(TEXTBOOK_UNIT, [[3.0, 3.0]], shrinkage="none")[0] == pytest.approx(0.0)
    # the unit space itself averages (n - 1) / n
    assert mt_md(TEXTBOOK_UNIT, TEXTBOOK_UNIT, shrinkage="none").mean() == pytest.approx(4 / 5)


def test_ledoit_wolf_matches_scikit_learn():
    from sklearn.covariance import ledoit_wolf_shrinkage as sk_shrinkage

    rng = np.random.default_rng(0)
    for n, p in [(50, 5), (30, 80)]:
        x = rng.normal(size=(n, p)) @ rng.normal(size=(p, p))
        x -= x.mean(axis=0)
        assert ledoit_wolf_shrinkage(x) == pytest.approx(sk_shrinkage(x), rel=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sn_selection_picks_the_informative_group(seed):
    rng = np.random.default_rng(seed)
    unit = rng.normal(size=(200, 20))
    abnormal = rng.normal(size=(40, 20))
    abnormal[:, 5:10] += 3.0  # only group 1 (columns 5-9) tells defective from good
    groups = [list(range(5 * g, 5 * g + 5)) for g in range(4)]
    res = select_variables(unit, abnormal, groups, min_gain=1.0)
    assert res.array.shape == (8, 4)  # L8
    assert res.selected == [1]
    assert res.gains[1] > 5.0  # dB
    assert np.abs(np.delete(res.gains, 1)).max() < 1.0  # noise groups: about 0 dB
    # the same with one group label per column
    labels = np.repeat(np.arange(4), 5)
    assert select_variables(unit, abnormal, labels, min_gain=1.0).selected == [1]
    # Taguchi's plain rule (gain > 0) keeps the informative group too
    assert 1 in select_variables(unit, abnormal, groups).selected


def test_sn_gain_is_mean_sn_difference_between_levels():
    rng = np.random.default_rng(2)
    unit, abnormal = rng.normal(size=(60, 3)), rng.normal(size=(10, 3)) + 1.0
    res = select_variables(unit, abnormal, [[0], [1], [2]])
    for g in range(3):
        used = res.array[:, g] == 1
        assert res.gains[g] == pytest.approx(res.sn[used].mean() - res.sn[~used].mean())
