"""The Mahalanobis-Taguchi detector: MD scale, textbook value, maps, persistence, SN selection."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save
from sklearn.metrics import roc_auc_score

from kizu.detectors.mt import MTDetector, fit_unit_space, unit_space_md
from kizu.detectors.registry import detector_class
from kizu.synth.shapes import make_shapes


@pytest.fixture(scope="module")
def shapes():
    return make_shapes(100, 300, 200, jitter="intended", seed=0)


@pytest.fixture(scope="module")
def fitted(shapes):
    return MTDetector().fit(shapes.train[:, None], seed=0)


def test_registered():
    assert detector_class("mt") is MTDetector
    assert MTDetector.has_own_image_score


def test_heldout_good_images_average_md_about_one(shapes, fitted):
    scores = fitted.image_scores(shapes.test[:, None])
    good = scores[shapes.test_labels == 0]
    assert abs(good.mean() - 1.0) < 0.15
    # without the cross-validated correction the held-out MD is visibly off 1 (here: too small,
    # because Ledoit-Wolf shrinks the training images' own distances)
    raw = MTDetector(calibrate=False).fit(shapes.train[:, None], seed=0).image_scores(shapes.test[:, None])
    assert abs(raw[shapes.test_labels == 0].mean() - 1.0) > 0.2
    assert fitted.history["heldout_scale"][0] != 1.0


def test_training_md_averages_one_without_shrinkage(shapes):
    # n = 100 > d = 10 (global stats of a grey image): the textbook MD/k averages (n - 1) / n
    det = MTDetector(grid=[1], shrinkage="none", calibrate=False).fit(shapes.train[:, None])
    assert det.image_scores(shapes.train[:, None]).mean() == pytest.approx(0.99, abs=1e-9)


def test_detects_rectangles(shapes, fitted):
    scores = fitted.image_scores(shapes.test[:, None])
    assert roc_auc_score(shapes.test_labels, scores) > 0.95


def test_md_matches_the_textbook_value():
    # two "pixels" per image: unit space x1 = 1..5, x2 = 2 1 4 3 5 (r = 0.8); the sample (5, 1)
    # has zᵀR⁻¹z = 16, so MD = 16 / 2 = 8 (worked in tests/test_taguchi.py)
    unit = np.array([[1, 2], [2, 1], [3, 4], [4, 3], [5, 5]], dtype=np.float32)[:, None, None, :] / 10
    det = MTDetector(features="pixels", shrinkage="none", std_floor=0.0, calibrate=False).fit(unit)
    sample = np.array([[[[5, 1]]]], dtype=np.float32) / 10
    assert det.image_scores(sample)[0] == pytest.approx(8.0, rel=1e-5)
    assert det.image_scores(unit).mean() == pytest.approx(0.8, rel=1e-6)


def test_unit_space_for_n_below_d():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 200)) @ rng.normal(size=(200, 200)) / 10
    space = fit_unit_space(X)
    assert space["basis"].shape == (200, 29)  # n - 1 directions, never a d x d matrix
    md, terms = unit_space_md(space, X[:3] + 1.0, contributions=True)
    assert np.allclose(terms.sum(axis=1), md)
    assert np.all(np.isfinite(md)) and np.all(md > 0)


@pytest.mark.parametrize("features", ["stats", "pixels"])
@pytest.mark.parametrize("shape", [(1, 16, 16), (3, 16, 16), (1, 20, 28), (3, 20, 28)])
def test_maps_at_input_size_and_mean_equals_score(features, shape):
    rng = np.random.default_rng(0)
    train = rng.random((40,) + shape, dtype=np.float32)
    test = rng.random((5,) + shape, dtype=np.float32)
    det = MTDetector(features=features).fit(train, seed=0)
    maps = det.anomaly_maps(test)
    assert maps.shape == (5,) + shape[1:] and maps.dtype == np.float32
    # each feature's contribution is spread over its pixels: the map's mean is the MD
    assert np.allclose(maps.mean(axis=(1, 2)), det.image_scores(test), rtol=1e-4)


def test_map_localises_a_defect_with_pixel_features():
    rng = np.random.default_rng(0)
    base = np.linspace(0.2, 0.6, 24, dtype=np.float32)[None, :] * np.ones((24, 1), np.float32)
    train = base + 0.03 * rng.standard_normal((60, 1, 24, 24)).astype(np.float32)
    test = base + 0.03 * rng.standard_normal((1, 1, 24, 24)).astype(np.float32)
    test[0, 0, 15:18, 5:8] = 1.0
    det = MTDetector(features="pixels").fit(train, seed=0)
    y, x = np.unravel_index(det.anomaly_maps(test)[0].argmax(), (24, 24))
    assert 15 - 1 <= y <= 17 + 1 and 5 - 1 <= x <= 7 + 1
    assert det.image_scores(test)[0] > 5 * det.image_scores(train[:20]).max()


def test_deterministic_and_state_round_trip(shapes, fitted):
    test = shapes.test[:50, None]
    again = MTDetector().fit(shapes.train[:, None], seed=0)
    assert np.array_equal(again.image_scores(test), fitted.image_scores(test))
    assert all(v.ndim >= 1 for v in fitted.state_dict().values())  # survives np.ascontiguousarray
    state = st_load(st_save({k: np.ascontiguousarray(v) for k, v in fitted.state_dict().items()}))
    clone = MTDetector(**json.loads(json.dumps(fitted.config())))
    clone.load_state_dict(state)
    assert np.array_equal(clone.image_scores(test), fitted.image_scores(test))
    assert np.array_equal(clone.anomaly_maps(test), fitted.anomaly_maps(test))
    assert all(isinstance(v, np.ndarray) for v in fitted.state_dict().values())


def test_wrong_size_or_channels_is_an_error(fitted):
    with pytest.raises(ValueError):
        fitted.image_scores(np.zeros((1, 3, 16, 16), np.float32))
    with pytest.raises(ValueError):
        fitted.image_scores(np.zeros((1, 1, 20, 16), np.float32))


def test_select_variables_records_gains_and_refits(shapes):
    bad = make_shapes(0, 0, 30, jitter="intended", seed=1).test[:, None]
    det = MTDetector().fit(shapes.train[:, None], seed=0)
    res = det.select_variables(shapes.train[:, None], bad)
    names = det.group_names
    assert len(names) == 4 and len(res.gains) == 4 and res.array.shape == (8, 4)
    assert res.selected == [g for g in range(4) if res.gains[g] > 0]
    # the global orientation histogram is what separates rectangles from ellipses
    assert names[int(np.argmax(res.gains))] == "grid1-orientation"
    assert det.config()["selected_groups"] == res.selected
    assert np.allclose(det.history["sn_gain"], res.gains)
    assert np.allclose(det.state_dict()["sn_gain"], res.gains)
    # the selection is part of the config: rebuilding and refitting gives the same detector
    test = shapes.test[:, None]
    rebuilt = MTDetector(**det.config()).fit(shapes.train[:, None], seed=0)
    assert np.array_equal(rebuilt.image_scores(test), det.image_scores(test))
    clone = MTDetector(**det.config())
    clone.load_state_dict(st_load(st_save(det.state_dict())))
    assert np.array_equal(clone.image_scores(test), det.image_scores(test))
    assert np.allclose(clone.sn_gain, res.gains)
    assert roc_auc_score(shapes.test_labels, det.image_scores(test)) > 0.95


def test_pixel_blocks_as_groups():
    ds = make_shapes(60, 0, 20, jitter="intended", seed=3)
    det = MTDetector(features="pixels").fit(ds.train[:, None], seed=0)
    res = det.select_variables(ds.train[:, None], ds.test[:, None], n_groups=4)
    assert res.array.shape == (8, 4) and len(det.group_names) == 4
    maps = det.anomaly_maps(ds.test[:, None])
    assert maps.shape == (20, 16, 16)
