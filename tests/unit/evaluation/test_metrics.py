import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from kizu.evaluation import metrics
from kizu.evaluation.metrics import aupro, pixel_auroc


def _maps_and_masks(n=6, size=48, seed=0):
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, size, size), bool)
    maps = rng.random((n, size, size)).astype(np.float32)
    for i in range(0, n, 2):  # a square defect on every other image, scoring higher on average
        masks[i, 10:20, 12:22] = True
        maps[i, 10:20, 12:22] += rng.random((10, 10)).astype(np.float32) * 1.5
    maps[1, :5] = 0.0  # exact ties
    return masks, maps


def test_pixel_auroc_is_sklearns_on_all_pixels():
    masks, maps = _maps_and_masks()
    assert pixel_auroc(masks, maps) == pytest.approx(roc_auc_score(masks.ravel(), maps.ravel()))
    assert np.isnan(pixel_auroc(np.zeros_like(masks), maps))


def test_perfect_and_inverted_maps():
    masks, _ = _maps_and_masks()
    assert pixel_auroc(masks, masks.astype(np.float32)) == 1.0
    assert pixel_auroc(masks, (~masks).astype(np.float32)) == 0.0
    assert aupro(masks, masks.astype(np.float32)) == pytest.approx(1.0)


def test_binned_metrics_match_the_exact_ones(monkeypatch):
    masks, maps = _maps_and_masks(n=8, size=64, seed=1)
    exact_auroc, exact_pro = pixel_auroc(masks, maps), aupro(masks, maps)
    monkeypatch.setattr(metrics, "EXACT_PIXELS", 1000)  # force the large-set path
    monkeypatch.setattr(metrics, "PIXEL_BINS", 4096)
    assert pixel_auroc(masks, maps) == pytest.approx(exact_auroc, abs=1e-3)
    assert aupro(masks, maps) == pytest.approx(exact_pro, abs=2e-3)
    # maps with large flat regions (many equal scores) stay right too
    flat = np.where(maps < 0.5, 0.0, maps).astype(np.float32)
    monkeypatch.setattr(metrics, "EXACT_PIXELS", 10**9)
    exact_auroc, exact_pro = pixel_auroc(masks, flat), aupro(masks, flat)
    monkeypatch.setattr(metrics, "EXACT_PIXELS", 1000)
    assert pixel_auroc(masks, flat) == pytest.approx(exact_auroc, abs=1e-3)
    assert aupro(masks, flat) == pytest.approx(exact_pro, abs=2e-3)
