"""patch-gaussian, patch-knn, their local features and the k-center coreset."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save
from sklearn.metrics import roc_auc_score

from kizu.coreset import covering_radius, kcenter_greedy, nn_distances
from kizu.detectors.patch_gaussian import PatchGaussianDetector
from kizu.detectors.patch_knn import PatchKNNDetector
from kizu.detectors.registry import detector_class
from kizu.features import LocalFeatures
from kizu.scoring import reduce_maps
from kizu.synth.shapes import make_shapes

DETECTORS = [PatchGaussianDetector, PatchKNNDetector]


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _lite_available() -> bool:
    try:
        import kizu.backbones.efficientnet_lite  # noqa: F401
    except ImportError:
        return False
    return True


def _have_weights() -> bool:
    if not _lite_available():
        return False
    from kizu.backbones.efficientnet_lite import weights_path

    return weights_path() is not None


needs_lite = pytest.mark.skipif(not _lite_available(), reason="kizu.backbones.efficientnet_lite not importable")


def _roundtrip(det):
    """config → new instance; state → safetensors bytes (as kizu.model saves it) → load."""
    state = det.state_dict()
    assert all(isinstance(v, np.ndarray) and v.ndim >= 1 for v in state.values())
    clone = type(det)(**json.loads(json.dumps(det.config())))
    clone.load_state_dict(st_load(st_save({k: np.ascontiguousarray(v) for k, v in state.items()})))
    return clone


# -- generic detector behaviour -----------------------------------------------------------------
def test_registered():
    assert detector_class("patch-gaussian") is PatchGaussianDetector
    assert detector_class("patch-knn") is PatchKNNDetector


@pytest.mark.parametrize("cls", DETECTORS)
@pytest.mark.parametrize("shape", [(1, 16, 16), (3, 16, 16), (1, 20, 28), (3, 20, 28), (1, 33, 17)])
def test_map_shapes(cls, shape):
    rng = np.random.default_rng(0)
    train = rng.random((12,) + shape, dtype=np.float32)
    test = rng.random((3,) + shape, dtype=np.float32)
    det = cls().fit(train, seed=0)
    maps = det.anomaly_maps(test)
    assert maps.shape == (3,) + shape[1:] and maps.dtype == np.float32
    assert np.all(np.isfinite(maps)) and np.all(maps >= 0)
    assert det.image_scores(test) is None  # image score comes from kizu.scoring


@pytest.mark.parametrize("cls", DETECTORS)
def test_deterministic_and_state_round_trip(cls):
    ds = make_shapes(30, 5, 5, jitter="intended", seed=1)
    x = np.repeat(ds.train[:, None], 3, axis=1) * np.array([1.0, 0.8, 0.6], np.float32)[:, None, None]
    test = np.repeat(ds.test[:, None], 3, axis=1)
    det = cls(sigma=1.0).fit(x, seed=3)
    maps = det.anomaly_maps(test)
    assert np.array_equal(cls(sigma=1.0).fit(x, seed=3).anomaly_maps(test), maps)
    state = det.state_dict()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    assert np.array_equal(_roundtrip(det).anomaly_maps(test), maps)


def test_patch_gaussian_config_rebuilds():
    det = PatchGaussianDetector(pool=2, shrinkage=0.3, feature_dim=8, stages=[0, 1], patch=5)
    assert PatchGaussianDetector(**det.config()).config() == det.config()
    with pytest.raises(ValueError):
        PatchGaussianDetector(backbone="resnet")


def test_patch_gaussian_detects_rectangles_on_intended_jitter():
    ds = make_shapes(100, 200, 200, jitter="intended", seed=0)
    det = PatchGaussianDetector().fit(ds.train[:, None], seed=0)
    scores = reduce_maps(det.anomaly_maps(ds.test[:, None]), "max", sigma=1.0)
    assert roc_auc_score(ds.test_labels, scores) > 0.9


def test_patch_gaussian_needs_the_training_size():
    det = PatchGaussianDetector().fit(np.random.default_rng(0).random((5, 1, 16, 16), dtype=np.float32))
    with pytest.raises(ValueError, match="training image size"):
        det.anomaly_maps(np.zeros((1, 1, 20, 20), np.float32))


def _stripes(n: int, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """Oblique stripes at random phase (shifted texture), with a little noise."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1, 1)).astype(np.float32)
    img = 0.45 + 0.2 * np.sin(2 * np.pi * (xx + 0.5 * yy) / 6.0 + phase)
    img += 0.02 * rng.standard_normal((n, size, size)).astype(np.float32)
    return np.clip(img, 0, 1)[:, None].astype(np.float32)


def test_patch_knn_finds_and_localises_a_small_bright_square_on_shifted_texture():
    rng = np.random.default_rng(0)
    train = _stripes(100, rng)
    good = _stripes(30, rng)
    bad = _stripes(30, rng)
    where = rng.integers(3, 32 - 5, size=(30, 2))
    for img, (y, x) in zip(bad, where):
        img[0, y : y + 2, x : x + 2] = 1.0
    det = PatchKNNDetector(coreset_fraction=0.02).fit(train, seed=0)
    test = np.concatenate([good, bad])
    maps = det.anomaly_maps(test)
    labels = np.r_[np.zeros(30), np.ones(30)]
    assert roc_auc_score(labels, reduce_maps(maps, "max", sigma=1.0)) > 0.9
    for m, (y, x) in zip(maps[30:], where):
        py, px = np.unravel_index(m.argmax(), m.shape)
        assert abs(py - (y + 0.5)) <= 3 and abs(px - (x + 0.5)) <= 3


def test_patch_knn_memory_size_options():
    x = np.random.default_rng(0).random((10, 1, 16, 16), dtype=np.float32)
    assert len(PatchKNNDetector(memory_size=50).fit(x).state_dict()["memory"]) == 50
    assert len(PatchKNNDetector(coreset_fraction=0.25).fit(x).state_dict()["memory"]) == 640
    assert len(PatchKNNDetector(coreset_fraction=1.0, max_memory=10**6).fit(x).state_dict()["memory"]) == 2560
    assert len(PatchKNNDetector(coreset_fraction=1.0, max_memory=100).fit(x).state_dict()["memory"]) == 100
    # k nearest neighbours: the mean of k distances is at least the nearest one
    det1, det3 = PatchKNNDetector(k=1).fit(x, seed=0), PatchKNNDetector(k=3).fit(x, seed=0)
    y = np.random.default_rng(1).random((2, 1, 16, 16), dtype=np.float32)
    assert np.all(det3.grid_maps(y) >= det1.grid_maps(y) - 1e-6)


# -- coreset ------------------------------------------------------------------------------------
def test_chunked_distances_equal_brute_force():
    rng = np.random.default_rng(0)
    mem = rng.normal(size=(700, 12)).astype(np.float32) + 5.0  # offset: tests the centring
    q = rng.normal(size=(130, 12)).astype(np.float32) + 5.0
    brute = np.sqrt(((q[:, None, :].astype(np.float64) - mem[None]) ** 2).sum(-1))
    order = np.argsort(brute, axis=1)[:, :4]
    d, i = nn_distances(q, mem, 4, query_chunk=17, memory_chunk=64, return_indices=True)
    assert np.allclose(d, np.take_along_axis(brute, order, 1), atol=1e-4)
    assert np.array_equal(i, order)
    assert np.allclose(nn_distances(q, mem, 1), brute.min(axis=1, keepdims=True), atol=1e-4)
    assert np.allclose(nn_distances(q, mem, 1, matmul_dtype="bfloat16"), brute.min(axis=1, keepdims=True), atol=0.05)
    # a point of the memory is at distance 0 from itself (the winners' distances are exact)
    assert np.array_equal(nn_distances(mem[:5], mem, 1)[:, 0], np.zeros(5, np.float32))


def test_kcenter_greedy_is_k_center():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 6)).astype(np.float32)
    idx = kcenter_greedy(x, 40, seed=2)
    assert len(set(idx.tolist())) == 40
    assert np.array_equal(idx, kcenter_greedy(x, 40, seed=2))
    # each new centre is the point farthest from the centres chosen before it
    d = np.sqrt(((x[:, None, :].astype(np.float64) - x[None, idx]) ** 2).sum(-1))
    for j in range(1, 40):
        assert d[idx[j], :j].min() == pytest.approx(d[:, :j].min(axis=1).max(), rel=1e-4)
    # the covering radius shrinks as the coreset grows
    radii = [covering_radius(x, x[kcenter_greedy(x, n, seed=2)]) for n in (5, 20, 80, 320)]
    assert all(a > b for a, b in zip(radii, radii[1:]))
    # and beats a random subset of the same size
    rand = rng.choice(len(x), 80, replace=False)
    assert covering_radius(x, x[kcenter_greedy(x, 80, seed=2)]) < covering_radius(x, x[rand])
    assert np.array_equal(kcenter_greedy(x, 600), np.arange(500))


def test_kcenter_with_random_projection_is_deterministic():
    x = np.random.default_rng(0).normal(size=(300, 200)).astype(np.float32)
    a = kcenter_greedy(x, 30, seed=1, proj_dim=16)
    assert np.array_equal(a, kcenter_greedy(x, 30, seed=1, proj_dim=16))
    assert not np.array_equal(a, kcenter_greedy(x, 30, seed=2, proj_dim=16))


# -- local features ----------------------------------------------------------------------------
def test_pixel_features_shapes_and_stride():
    rng = np.random.default_rng(0)
    lf = LocalFeatures().fit(rng.random((4, 3, 20, 28), dtype=np.float32))
    f, stride = lf(rng.random((2, 3, 20, 28), dtype=np.float32))
    assert f.shape == (2, 3 * 9 * 3, 20, 28) and stride == 1.0
    big = LocalFeatures(dim=16).fit(rng.random((3, 1, 256, 256), dtype=np.float32), seed=0)
    f, stride = big(rng.random((2, 1, 256, 256), dtype=np.float32))
    assert f.shape == (2, 16, 64, 64) and stride == 4.0  # bounded grid for large images
    assert LocalFeatures(**big.config()).config() == big.config()


def test_pixel_features_see_the_neighbourhood():
    x = np.zeros((1, 1, 16, 16), np.float32)
    x[0, 0, 8, 8] = 1.0
    lf = LocalFeatures(stages=[0]).fit(x)
    f, _ = lf(x)
    assert f.shape[1] == 9
    # the 3x3 patch of cell (7, 7) holds the bright pixel at its last position (dy = dx = +1)
    assert f[0, 8, 7, 7] == 1.0 and f[0, 4, 8, 8] == 1.0 and f[0, :, 2, 2].max() == 0.0


@needs_lite
@pytest.mark.parametrize("backbone", ["random", "lite0"])
@pytest.mark.parametrize("cls", DETECTORS)
def test_network_backbones(backbone, cls):
    if backbone == "lite0" and not _have_weights():
        pytest.skip("pretrained EfficientNet-Lite0 weights are not installed")
    ds = make_shapes(16, 3, 3, jitter="intended", seed=0)
    det = cls(backbone=backbone, input_size=32).fit(ds.train[:, None], seed=0)
    maps = det.anomaly_maps(ds.test[:, None])
    assert maps.shape == (6, 16, 16) and np.all(np.isfinite(maps))
    state = det.state_dict()
    # conv weights never go into the state (seeded init or the package); BatchNorm statistics
    # re-estimated for a random network do
    assert not any("conv" in k for k in state)
    has_bn = any(k.startswith("features.net.") for k in state)
    assert has_bn == (backbone == "random")
    assert np.array_equal(_roundtrip(det).anomaly_maps(ds.test[:, None]), maps)
