"""patch-gaussian, patch-knn, their local features and the k-center coreset."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save
from sklearn.metrics import roc_auc_score

from kizu.detectors._components.coreset import NNIndex, covering_radius, kcenter_greedy, nn_distances
from kizu.detectors._components.features import LocalFeatures, as_image_batch
from kizu.detectors._components.torch_utils import device_batch
from kizu.detectors.patch_gaussian import PatchGaussianDetector
from kizu.detectors.patch_knn import PatchKNNDetector, auto_stages, edge_classes
from kizu.detectors.registry import detector_class
from kizu.scoring.rule import reduce_maps
from kizu.synth.shapes import make_shapes

DETECTORS = [PatchGaussianDetector, PatchKNNDetector]


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _have_weights() -> bool:
    from kizu.detectors._components.efficientnet_lite import weights_path

    return weights_path() is not None


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
    det = PatchKNNDetector(preset="pixels", coreset_fraction=0.02).fit(train, seed=0)
    test = np.concatenate([good, bad])
    maps = det.anomaly_maps(test)
    labels = np.r_[np.zeros(30), np.ones(30)]
    assert roc_auc_score(labels, reduce_maps(maps, "max", sigma=1.0)) > 0.9
    for m, (y, x) in zip(maps[30:], where):
        py, px = np.unravel_index(m.argmax(), m.shape)
        assert abs(py - (y + 0.5)) <= 3 and abs(px - (x + 0.5)) <= 3


def test_patch_knn_memory_size_options():
    x = np.random.default_rng(0).random((10, 1, 16, 16), dtype=np.float32)
    assert len(PatchKNNDetector(preset="pixels", memory_size=50).fit(x).state_dict()["memory"]) == 50
    assert len(PatchKNNDetector(preset="pixels", coreset_fraction=0.25).fit(x).state_dict()["memory"]) == 640
    assert len(PatchKNNDetector(preset="pixels", coreset_fraction=1.0, max_memory=10**6).fit(x).state_dict()["memory"]) == 2560
    assert len(PatchKNNDetector(preset="pixels", coreset_fraction=1.0, max_memory=100).fit(x).state_dict()["memory"]) == 100
    # k nearest neighbours: the mean of k distances is at least the nearest one (raw distances:
    # the edge correction divides by a profile that depends on k)
    det1 = PatchKNNDetector(preset="pixels", k=1, edge_cells=0).fit(x, seed=0)
    det3 = PatchKNNDetector(preset="pixels", k=3, edge_cells=0).fit(x, seed=0)
    y = np.random.default_rng(1).random((2, 1, 16, 16), dtype=np.float32)
    assert np.all(det3.grid_maps(y) >= det1.grid_maps(y) - 1e-6)


def test_edge_classes_count_from_each_side():
    assert edge_classes(8, 3).tolist() == [0, 1, 2, 3, 3, 4, 5, 6]
    assert edge_classes(4, 3).tolist() == [0, 1, 2, 6]  # small grids: counted from the start first
    assert edge_classes(5, 0).tolist() == [0] * 5


def _noise_crops(n: int, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """Random crops of one smooth random texture (position carries no information)."""
    from scipy.ndimage import gaussian_filter

    big = gaussian_filter(rng.standard_normal((256, 256)), 1.5)
    big = (0.5 + 0.15 * big / big.std()).astype(np.float32)
    ys, xs = rng.integers(0, 256 - size, size=(2, n))
    return np.stack([big[y : y + size, x : x + size] for y, x in zip(ys, xs)])[:, None]


def test_patch_knn_edge_correction_evens_out_the_border():
    rng = np.random.default_rng(0)
    crops = _noise_crops(90, rng)
    train, test = crops[:60], crops[60:]
    plain = PatchKNNDetector(preset="pixels", edge_cells=0).fit(train, seed=0)
    fixed = PatchKNNDetector(preset="pixels").fit(train, seed=0)
    profile = fixed.state_dict()["edge_profile"]
    assert profile.shape == (7, 7) and profile[3, 3] == pytest.approx(1.0)
    # corners and sides are sparse in the memory: good border cells are farther from it
    assert profile[0, 0] > 1.05 and profile[6, 6] > 1.05

    def border_ratio(det):
        g = det.grid_maps(test).mean(axis=0)
        inner = np.zeros(g.shape, bool)
        inner[3:-3, 3:-3] = True
        return g[~inner].mean() / g[inner].mean()

    assert border_ratio(plain) > 1.03
    assert abs(border_ratio(fixed) - 1.0) < abs(border_ratio(plain) - 1.0) / 2


def test_patch_knn_configs_saved_before_new_options_keep_their_behaviour():
    from kizu.io.model_file import migrate

    old = {"backbone": "lite0", "stages": None, "k": 1, "coreset_fraction": 0.1, "memory_size": None,
           "max_memory": 10000, "proj_dim": 64, "sigma": 0.0, "patch": 3, "center": False, "max_grid": 64,
           "feature_dim": None, "input_size": 224, "matmul_dtype": "float32"}
    meta = {"format_version": 1, "detector": {"name": "patch-knn", "config": old}, "preprocess": {},
            "scoring": {"reducer": "max", "sigma": 1.0, "topk": 0.01, "scale": None}}
    cfg = PatchKNNDetector.from_config(migrate(meta, None)["detector"]["config"]).config()
    assert cfg["max_upscale"] == 4.0 and cfg["edge_cells"] == 0 and cfg["pad"] == 0
    assert cfg["max_candidates"] is None and cfg["feature_dim"] is None and cfg["max_memory"] == 10000
    assert cfg["whiten"] is False and cfg["brightness"] == 0.0 and cfg["brightness_surround"] == 0


def test_patch_knn_low_precision_matmul():
    x = np.random.default_rng(0).random((8, 1, 16, 16), dtype=np.float32)
    det = PatchKNNDetector(preset="pixels", matmul_dtype="bfloat16").fit(x[:6], seed=0)
    ref = PatchKNNDetector(preset="pixels").fit(x[:6], seed=0)
    assert np.allclose(det.state_dict()["edge_profile"], ref.state_dict()["edge_profile"])
    assert np.allclose(det.grid_maps(x[6:]), ref.grid_maps(x[6:]), rtol=0.02, atol=0.01)


def test_patch_knn_without_edge_profile_state_loads():
    x = np.random.default_rng(0).random((6, 1, 16, 16), dtype=np.float32)
    det = PatchKNNDetector(preset="pixels", edge_cells=0).fit(x, seed=0)
    assert "edge_profile" not in det.state_dict()
    assert np.array_equal(_roundtrip(det).anomaly_maps(x[:2]), det.anomaly_maps(x[:2]))
    # one training image: nothing to leave out, so no correction (a profile of ones)
    one = PatchKNNDetector(preset="pixels").fit(x[:1], seed=0)
    assert np.all(one.state_dict()["edge_profile"] == 1.0)


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
    saved = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        kcenter_greedy(x, 10, seed=2)  # runs its loop on one thread, then gives the others back
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(saved)


def test_kcenter_with_random_projection_is_deterministic():
    x = np.random.default_rng(0).normal(size=(300, 200)).astype(np.float32)
    a = kcenter_greedy(x, 30, seed=1, proj_dim=16)
    assert np.array_equal(a, kcenter_greedy(x, 30, seed=1, proj_dim=16))
    assert not np.array_equal(a, kcenter_greedy(x, 30, seed=2, proj_dim=16))


def test_kcenter_on_a_candidate_subset():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 5)).astype(np.float32)
    idx = kcenter_greedy(x, 50, seed=4, candidates=300)
    assert len(set(idx.tolist())) == 50 and idx.min() >= 0 and idx.max() < 2000
    assert np.array_equal(idx, kcenter_greedy(x, 50, seed=4, candidates=300))
    assert not np.array_equal(idx, kcenter_greedy(x, 50, seed=5, candidates=300))
    # the chosen rows are a greedy k-center of the subset they were drawn from
    sub = np.sort(np.random.default_rng([4, 1]).choice(2000, 300, replace=False))
    assert np.array_equal(idx, sub[kcenter_greedy(x[sub], 50, seed=4)])
    # a subset at least as large as x changes nothing; never fewer candidates than centres
    assert np.array_equal(kcenter_greedy(x, 50, seed=4, candidates=5000), kcenter_greedy(x, 50, seed=4))
    assert len(set(kcenter_greedy(x, 80, seed=4, candidates=10).tolist())) == 80


def test_nn_index_fast_values_and_exclusion():
    """Exact search with rows excluded equals a search of the remaining rows, chunk boundaries aside."""
    rng = np.random.default_rng(1)
    mem = rng.normal(size=(500, 16)).astype(np.float32) + 3.0
    q = rng.normal(size=(70, 16)).astype(np.float32) + 3.0
    index = NNIndex(mem)
    assert len(index) == 500
    for k in (1, 3):
        exact = index.search(q, k)
        assert np.array_equal(exact, nn_distances(q, mem, k))
        assert np.allclose(index.search(q, k, exact=False, memory_chunk=128), exact, atol=1e-3)
    drop = np.zeros(500, bool)
    drop[rng.choice(500, 200, replace=False)] = True
    for k in (1, 2):
        assert np.allclose(index.search(q, k, exact=False, exclude=drop, memory_chunk=64),
                           nn_distances(q, mem[~drop], k), atol=1e-3)
        assert np.array_equal(index.search(q, k, exclude=drop, memory_chunk=64), nn_distances(q, mem[~drop], k))
    with pytest.raises(ValueError):
        NNIndex(mem, "bfloat16").search(q, 1, exclude=drop)  # exclusion is float32 only
    with pytest.raises(ValueError):
        index.search(q, 1, exact=False, exclude=np.ones(500, bool))
    # bfloat16 screening: the exact re-ranking keeps the true distances for clear winners
    low = NNIndex(mem, "bfloat16").search(q, 2)
    assert np.allclose(low, nn_distances(q, mem, 2), atol=0.05)


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


def test_fit_transform_equals_fit_then_call():
    rng = np.random.default_rng(0)
    x = rng.random((5, 3, 20, 24), dtype=np.float32)
    a, sa = LocalFeatures(dim=10, batch_size=2).fit_transform(x, seed=1)
    lf = LocalFeatures(dim=10, batch_size=2).fit(x, seed=1)
    b, sb = lf(x)
    assert a.shape == (5, 10, 20, 24) and sa == sb
    assert np.allclose(a, b, atol=1e-5)


def test_network_input_scale_and_mirror_padding():
    rng = np.random.default_rng(0)
    x = rng.random((3, 1, 64, 64), dtype=np.float32)
    f4, s4 = LocalFeatures(backbone="random").fit(x, seed=0)(x)
    f2, s2 = LocalFeatures(backbone="random", max_upscale=2.0).fit(x, seed=0)(x)
    assert f4.shape[-2:] == (56, 56) and s4 == pytest.approx(64 / 56)  # 224 px in: /4 cells
    assert f2.shape[-2:] == (32, 32) and s2 == 2.0  # 128 px in
    lf = LocalFeatures(backbone="random", max_upscale=2.0, pad=4)
    assert LocalFeatures(**lf.config()).config() == lf.config()
    fp, sp = lf.fit(x, seed=0)(x)
    assert fp.shape == f2.shape and sp == s2
    if _have_weights():  # fixed weights (a random network's BatchNorm statistics see the padding)
        a, _ = LocalFeatures(backbone="lite0", max_upscale=2.0).fit(x)(x)
        b, _ = LocalFeatures(backbone="lite0", max_upscale=2.0, pad=4).fit(x)(x)
        # the padding changes the border cells, not the centre ones (beyond the receptive field)
        assert not np.allclose(a[..., 0, :], b[..., 0, :], atol=1e-3)
        assert np.allclose(a[..., 14:18, 14:18], b[..., 14:18, 14:18], atol=1e-4)
    with pytest.raises(ValueError):
        LocalFeatures(backbone="lite0", pad=-1)
    with pytest.raises(ValueError):
        LocalFeatures(backbone="lite0", max_upscale=0)


def test_pretrained_network_is_loaded_once():
    if not _have_weights():
        pytest.skip("pretrained EfficientNet-Lite0 weights are not installed")
    x = np.random.default_rng(0).random((2, 1, 16, 16), dtype=np.float32)
    a = LocalFeatures(backbone="lite0").fit(x)
    b = LocalFeatures(backbone="lite0").fit(x, seed=5)
    assert a._backbone._net is b._backbone._net and not any(p.requires_grad for p in a._backbone._net.parameters())


# -- whitening and relative-brightness channels ---------------------------------------------------
def test_whitened_features_have_unit_variance_per_component():
    x = np.random.default_rng(0).random((20, 1, 16, 16), dtype=np.float32) * np.linspace(0.2, 1, 16, dtype=np.float32)
    lf = LocalFeatures(backbone="pixels", whiten=True)  # no dim: all components, whitened
    f, _ = lf.fit_transform(x)
    v = f.transpose(1, 0, 2, 3).reshape(f.shape[1], -1)
    assert f.shape[1] == lf.raw_dim == 27
    # variance ev / (ev + floor), floor = 1 % of the mean eigenvalue: about 1 for the large components,
    # less for the near-empty ones (that is what the floor is for), never above 1
    var = v.var(axis=1)
    assert np.all(var <= 1.0 + 1e-3) and np.all(var[:10] > 0.95) and np.all(np.diff(var) <= 1e-3)
    assert abs(np.corrcoef(v)[0, 1]) < 1e-3  # decorrelated
    plain, _ = LocalFeatures(backbone="pixels").fit_transform(x)
    assert plain.transpose(1, 0, 2, 3).reshape(27, -1).var(axis=1).max() < 0.2  # raw pixels: small variance


def test_brightness_channels_are_scaled_gain_free_and_local():
    rng = np.random.default_rng(1)
    x = (0.3 + 0.4 * rng.random((30, 1, 32, 32))).astype(np.float32)
    lf = LocalFeatures(backbone="pixels", brightness=2.0)
    f, _ = lf.fit_transform(x)
    assert f.shape[1] == 27 + 2
    v = f.transpose(1, 0, 2, 3).reshape(f.shape[1], -1)
    rms = np.sqrt(v[:-2].var(axis=1).mean())
    assert np.allclose(v[-2:].std(axis=1), 2.0 * rms, rtol=1e-3)  # the weight is relative to the appearance
    img = x[:1]
    brighter, _ = lf(img * 1.2)
    same, _ = lf(img)
    assert np.allclose(brighter[:, -2:], same[:, -2:], atol=1e-4)  # a global gain does not count
    stained = img.copy()
    stained[..., 10:18, 10:18] *= 0.8
    g, _ = lf(stained)
    change = np.abs(g[0, -1] - same[0, -1])
    assert change[14, 14] > 5 * change[0, 31] and change[14, 14] > 0  # darker where the stain is
    clone = LocalFeatures(backbone="pixels", brightness=2.0)
    clone.load_state_dict(st_load(st_save({k: np.ascontiguousarray(v) for k, v in lf.state_dict().items()})))
    assert np.array_equal(clone(stained)[0], g)
    with pytest.raises(ValueError):
        LocalFeatures(brightness=-1)


def test_brightness_surround_cancels_an_illumination_ramp_but_not_a_stain():
    from kizu.detectors._components.transforms import relative_brightness as _relative_brightness

    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32)
    ramp = torch.from_numpy(0.4 + 0.01 * xx + 0.005 * yy)[None, None]  # light falling across the image
    stained = ramp.clone()
    stained[..., 12:20, 12:20] *= 0.8
    global_ref = _relative_brightness(ramp, (32, 32))
    local_ref = _relative_brightness(ramp, (32, 32), surround=15)
    inner = (slice(None), slice(None), slice(8, 24), slice(8, 24))  # the windows lie inside the image
    assert global_ref[inner].abs().max() > 0.15  # against the image's mean, the ramp itself shows
    assert local_ref[inner].abs().max() < 0.02  # against the surround, a linear ramp cancels
    assert _relative_brightness(stained, (32, 32), surround=15)[0, 0, 16, 16] < -0.1  # the stain does not
    lf = LocalFeatures(backbone="pixels", brightness=2.0, brightness_surround=15)
    f, _ = lf.fit_transform(np.repeat(ramp.numpy(), 4, axis=0))
    clone = LocalFeatures(**lf.config())
    clone.load_state_dict(lf.state_dict())
    assert np.array_equal(clone(stained.numpy())[0], lf(stained.numpy())[0])
    for bad in (-1, 2, 1):
        with pytest.raises(ValueError, match="brightness_surround"):
            LocalFeatures(brightness=2.0, brightness_surround=bad)


def test_patch_knn_brightness_finds_faint_stains_on_a_weave():
    from kizu.synth.fine import make_fine

    d = make_fine(60, 20, 20, size=32, seed=0, mode="texture", texture="regular")
    keep = np.isin(np.array(d.test_types), ["good", "stain"])
    test, labels = d.test[keep][:, None], d.test_labels[keep]
    aurocs = {}
    for brightness in (0.0, 2.0):
        det = PatchKNNDetector(backbone="lite0", feature_dim=None, brightness=brightness).fit(d.train[:, None], seed=0)
        aurocs[brightness] = roc_auc_score(labels, reduce_maps(det.anomaly_maps(test), "max", sigma=1.0))
        if brightness:
            assert np.array_equal(_roundtrip(det).anomaly_maps(test[:3]), det.anomaly_maps(test[:3]))
    assert aurocs[2.0] >= 0.8 and aurocs[2.0] > aurocs[0.0] + 0.1, aurocs


no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without a GPU")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize("cls", DETECTORS)
def test_device_is_not_a_hyper_parameter_and_cpu_equals_auto_here(cls):
    ds = make_shapes(20, 4, 4, jitter="intended", seed=2)
    auto = cls().fit(ds.train, seed=1)
    cpu = cls(device="cpu").fit(ds.train, seed=1)
    assert "device" not in cpu.config()
    if not torch.cuda.is_available():
        assert np.array_equal(auto.anomaly_maps(ds.test), cpu.anomaly_maps(ds.test))
    # moving a fitted detector keeps its maps (here: to the CPU it is already on)
    assert np.array_equal(cpu.to("cpu").anomaly_maps(ds.test), cpu.anomaly_maps(ds.test))


@no_cuda
@pytest.mark.parametrize("cls", DETECTORS)
def test_asking_for_a_missing_gpu_is_a_clear_option_error(cls):
    from kizu.errors import OptionError

    with pytest.raises(OptionError, match="no CUDA GPU"):
        cls(device="cuda")
    with pytest.raises(OptionError, match="expected auto, cpu or cuda"):
        cls(device="gpu")


@needs_cuda
def test_gpu_scores_what_the_cpu_scores_and_repeats_itself():
    ds = make_shapes(30, 5, 5, jitter="intended", seed=4)
    opts = dict(backbone="lite0", brightness=2.0, brightness_surround=15, k=3)
    cpu = PatchKNNDetector(device="cpu", **opts).fit(ds.train, seed=2)
    m_cpu = cpu.anomaly_maps(ds.test)
    # the same fitted memory searched on the GPU: float rounding only
    assert np.allclose(cpu.to("cuda").anomaly_maps(ds.test), m_cpu, rtol=1e-4, atol=1e-4 * float(m_cpu.max()))
    # fitted on the GPU: the same seed gives the same maps (the coreset may differ from the CPU's, as
    # rounding changes which of two nearly equidistant patches the greedy search takes)
    m_gpu = PatchKNNDetector(device="cuda", **opts).fit(ds.train, seed=2).anomaly_maps(ds.test)
    assert np.array_equal(PatchKNNDetector(device="cuda", **opts).fit(ds.train, seed=2).anomaly_maps(ds.test), m_gpu)


def test_batches_reach_torch_with_row_major_strides():
    # NumPy gives a length-1 axis any stride (x[:, None]: 0, a fancy-indexed copy of it: 1 item);
    # CUDA's adaptive_avg_pool2d then computed wrong means
    x = np.random.default_rng(0).random((4, 8, 8), dtype=np.float32)
    for view in (x[:, None], x[:, None][[0, 2, 1, 3]], x[:, None, :, :1]):
        assert view.strides[1] != view.shape[2] * view.shape[3] * 4  # each has an odd stride (or gaps)
        t = device_batch(view, "cpu")
        assert t.stride() == (view.shape[2] * view.shape[3], view.shape[2] * view.shape[3], view.shape[3], 1)
        assert np.array_equal(t.numpy(), view)
    assert 0 not in as_image_batch(x).strides and np.array_equal(as_image_batch(x)[:, 0], x)


@needs_cuda
@pytest.mark.parametrize("cls", DETECTORS)
def test_the_pixels_backbone_on_the_gpu_gives_the_cpu_maps(cls):
    ds = make_shapes(30, 5, 5, jitter="intended", seed=4)
    lf = LocalFeatures(backbone="pixels").fit(ds.train, seed=0)
    f_cpu = lf(ds.test)[0]
    assert np.allclose(lf.to("cuda")(ds.test)[0], f_cpu, atol=1e-6)
    cpu = cls(backbone="pixels", device="cpu").fit(ds.train, seed=1)
    m_cpu = cpu.anomaly_maps(ds.test)
    assert cls(backbone="pixels", device="cuda").torch_device.type == "cuda"
    assert np.allclose(cpu.to("cuda").anomaly_maps(ds.test), m_cpu, rtol=1e-4, atol=1e-4 * float(m_cpu.max()))
    m_gpu = cls(backbone="pixels", device="cuda").fit(ds.train, seed=1).anomaly_maps(ds.test)
    assert np.array_equal(cls(backbone="pixels", device="cuda").fit(ds.train, seed=1).anomaly_maps(ds.test), m_gpu)
    # fitted on the GPU: the image scores agree (the coreset may take another of two equidistant patches)
    s_cpu, s_gpu = m_cpu.max(axis=(1, 2)), m_gpu.max(axis=(1, 2))
    assert np.abs(s_gpu - s_cpu).max() <= 0.02 * np.ptp(s_cpu), (s_cpu, s_gpu)


@needs_cuda
def test_nn_index_on_the_gpu_equals_the_cpu():
    rng = np.random.default_rng(0)
    mem, q = rng.normal(size=(3000, 24)).astype(np.float32), rng.normal(size=(500, 24)).astype(np.float32)
    d_cpu, i_cpu = NNIndex(mem).search(q, 3, return_indices=True)
    d_gpu, i_gpu = NNIndex(mem, device="cuda").search(q, 3, return_indices=True)
    assert np.allclose(d_gpu, d_cpu, atol=1e-4) and (i_gpu == i_cpu).mean() > 0.99
    assert np.array_equal(kcenter_greedy(mem, 50, seed=1, device="cuda"), kcenter_greedy(mem, 50, seed=1))


def test_training_maps_search_without_the_image_own_memory_rows():
    """Leave-own-out calibration's view: a fitted image scores as if its rows were not in the
    memory. An exact duplicate keeps its twin's rows (in-sample score); a unique image does not."""
    x = np.random.default_rng(0).random((8, 1, 16, 16), dtype=np.float32)
    x[1] = x[0]
    det = PatchKNNDetector(preset="pixels", coreset_fraction=1.0, max_memory=10**6).fit(x, seed=0)
    inside, own_out = det.anomaly_maps(x), det.training_maps(x, np.arange(8))
    assert np.allclose(own_out[:2], inside[:2], atol=1e-5)
    peak_own, peak_in = own_out[2:].reshape(6, -1).max(axis=1), inside[2:].reshape(6, -1).max(axis=1)
    assert (own_out[2:] >= inside[2:] - 1e-5).all() and (peak_own > peak_in + 1e-3).all()


def test_auto_stages_go_deeper_on_large_network_inputs_only():
    assert auto_stages(64, 64, input_size=224, max_upscale=2.0) == [1, 2]  # 128 px input
    assert auto_stages(256, 300, input_size=256, max_upscale=2.0) == [2, 3]
    assert auto_stages(1000, 3000, input_size=256, max_upscale=2.0) == [2, 3]
    det = PatchKNNDetector(max_memory=500).fit(np.random.default_rng(0).random((3, 3, 32, 32), dtype=np.float32))
    assert det.config()["stages"] == [1, 2]  # the choice is saved, not "auto"


@pytest.mark.parametrize("given, stages", [("2,3", [2, 3]), ("1", [1]), (2, [2]), ([1, 2], [1, 2]), ("auto", "auto")])
def test_stages_accept_the_command_line_forms(given, stages):
    assert PatchKNNDetector(stages=given).options.stages == stages


@pytest.mark.parametrize("given", ["abc", "", [1, "x"], "-1"])
def test_bad_stages_are_one_clear_error(given):
    with pytest.raises(ValueError, match="stages must be 'auto' or stage numbers"):
        PatchKNNDetector(stages=given)
