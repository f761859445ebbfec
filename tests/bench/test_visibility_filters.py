"""The yardsticks of bench/stain_visibility.py: on plain noise, a painted stain or spot must stand out
(else the "invisible on the sand" numbers it reports would mean nothing)."""

import importlib.util
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

_PATH = Path(__file__).resolve().parents[2] / "bench" / "stain_visibility.py"
_spec = importlib.util.spec_from_file_location("stain_visibility", _PATH)
visibility = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(visibility)


def _noise(rng, n, size=40, sd=0.02):
    return 0.5 + sd * rng.standard_normal((n, size, size))


def test_whitened_filter_finds_a_stain_anywhere_on_noise():
    rng = np.random.default_rng(0)
    train, good, stained = _noise(rng, 30), _noise(rng, 20), _noise(rng, 20)
    yy, xx = np.mgrid[0:40, 0:40]
    for im in stained:
        cy, cx = rng.integers(14, 26, size=2)
        im *= 1 - 0.10 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 3.0 ** 2))
    scores = visibility.whitened_scores(train, np.concatenate([good, stained]))
    assert roc_auc_score(np.r_[np.zeros(20), np.ones(20)], scores) > 0.99
    # the good images score like the training images: standardised, a max over positions of ~N(0, 1)
    assert 1.0 < np.median(scores[:20]) < 5.0


def test_whitened_filter_is_blind_to_a_brightening():
    """It looks for darkening only: a brighter blob must not outscore plain images."""
    rng = np.random.default_rng(1)
    train, good, bright = _noise(rng, 30), _noise(rng, 20), _noise(rng, 20)
    yy, xx = np.mgrid[0:40, 0:40]
    bright *= 1 + 0.10 * np.exp(-((yy - 20) ** 2 + (xx - 20) ** 2) / (2 * 3.0 ** 2))
    scores = visibility.whitened_scores(train, np.concatenate([good, bright]))
    assert roc_auc_score(np.r_[np.zeros(20), np.ones(20)], scores) < 0.6


def test_darkest_pixel_filter_finds_a_one_pixel_spot():
    rng = np.random.default_rng(2)
    train, good, spotted = _noise(rng, 30), _noise(rng, 20), _noise(rng, 20)
    for im in spotted:
        y, x = rng.integers(5, 35, size=2)
        im[y, x] -= 0.25
    scores = visibility.darkest_pixel_scores(train, np.concatenate([good, spotted]))
    assert roc_auc_score(np.r_[np.zeros(20), np.ones(20)], scores) == 1.0
