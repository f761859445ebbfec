"""The fine-defect generator: shapes, determinism, defect geometry and contrast, MVTec writing."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from kizu.io.images import read_image
from kizu.synth import write_mvtec
from kizu.synth.fine import (
    DEFECT_TYPES,
    DEFECT_TYPES_TEXTURE,
    defect_types,
    fine_example,
    make_fine,
    part_kind,
)

MODES = ("parts", "texture")


@pytest.fixture(scope="module", params=MODES)
def ds_mode(request):
    return request.param, make_fine(6, 4, 3, size=64, seed=3, mode=request.param)


def _feret(mask: np.ndarray) -> float:
    pts = np.argwhere(mask).astype(float)
    d = np.sqrt(((pts[:, None] - pts[None]) ** 2).sum(-1))
    return float(d.max())


# --------------------------------------------------------------------------------- structure


def test_shapes_dtypes_range_labels(ds_mode):
    mode, ds = ds_mode
    kinds = defect_types(mode)
    assert ds.train.shape == (6, 64, 64) and ds.train.dtype == np.float32
    assert ds.test.shape == (4 + 3 * len(kinds), 64, 64) and ds.test.dtype == np.float32
    for a in (ds.train, ds.test):
        assert np.isfinite(a).all() and a.min() >= 0.0 and a.max() <= 1.0
    assert ds.test_types == ["good"] * 4 + [k for k in kinds for _ in range(3)]
    assert ds.test_labels.tolist() == [0] * 4 + [1] * (3 * len(kinds))
    assert ds.test_masks.shape == ds.test.shape and ds.test_masks.dtype == bool
    types = np.array(ds.test_types)
    assert not ds.test_masks[types == "good"].any()
    for k in kinds:
        assert ds.test_masks[types == k].sum(axis=(1, 2)).min() > 0, k


def test_defect_type_names():
    assert DEFECT_TYPES == ("dark_spot", "stain", "scratch", "chip")
    assert DEFECT_TYPES_TEXTURE == ("dark_spot", "stain", "scratch", "patch")
    assert set(make_fine(0, 0, 1, mode="texture").test_types) == set(DEFECT_TYPES_TEXTURE)


def test_zero_counts():
    ds = make_fine(0, 0, 0, size=32)
    assert ds.train.shape == (0, 32, 32) and ds.test.shape == (0, 32, 32)
    assert ds.test_masks.shape == (0, 32, 32) and ds.test_types == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"size": 31},
        {"size": 257},
        {"size": 64.0},
        {"mode": "fabric"},
        {"texture": "woven"},
        {"seed": -1},
        {"n_train": -1},
    ],
)
def test_bad_arguments(kwargs):
    args = {"n_train": 1, "n_test_normal": 1, "n_test_per_defect": 1}
    args.update(kwargs)
    with pytest.raises(ValueError):
        make_fine(**args)


@pytest.mark.parametrize("size", [32, 256])
def test_size_limits(size):
    ds = make_fine(1, 1, 1, size=size, mode="texture", texture="stochastic")
    assert ds.train.shape == (1, size, size)
    assert ds.test_masks[1:].sum(axis=(1, 2)).min() > 0


# --------------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("mode", MODES)
def test_deterministic(mode):
    a = make_fine(3, 2, 1, seed=5, mode=mode)
    b = make_fine(3, 2, 1, seed=5, mode=mode)
    c = make_fine(3, 2, 1, seed=6, mode=mode)
    assert np.array_equal(a.train, b.train) and np.array_equal(a.test, b.test)
    assert np.array_equal(a.test_masks, b.test_masks)
    assert not np.array_equal(a.train, c.train)
    assert not np.array_equal(a.test, c.test)


def test_images_independent_of_counts():
    small = make_fine(2, 1, 1, seed=2)
    big = make_fine(5, 3, 2, seed=2)
    assert np.array_equal(small.train, big.train[:2])
    t_small, t_big = np.array(small.test_types), np.array(big.test_types)
    for k in ("good",) + DEFECT_TYPES:
        assert np.array_equal(small.test[t_small == k][0], big.test[t_big == k][0]), k


def test_fine_example_matches_make_fine():
    ds = make_fine(2, 2, 2, seed=4, mode="texture")
    types = np.array(ds.test_types)
    _, img, mask = fine_example("patch", index=1, seed=4, mode="texture")
    assert np.array_equal(img, ds.test[types == "patch"][1])
    assert np.array_equal(mask, ds.test_masks[types == "patch"][1])
    assert np.array_equal(fine_example("good", index=1, split="train", seed=4, mode="texture")[1], ds.train[1])
    with pytest.raises(ValueError):
        fine_example("chip", mode="texture")
    with pytest.raises(ValueError):
        fine_example("scratch", split="train")


def test_part_kind_follows_seed():
    assert part_kind(0) == "plate" and part_kind(1) == "washer"
    plate, washer = fine_example(seed=0)[1], fine_example(seed=1)[1]
    # the plate is wider than tall; the washer is round
    def extent(img):
        ys, xs = np.nonzero(img > 0.45)
        return xs.max() - xs.min(), ys.max() - ys.min()

    pw, ph = extent(plate)
    ww, wh = extent(washer)
    assert pw > ph + 8
    assert abs(ww - wh) <= 3


# --------------------------------------------------------------------------------- realism of goods


@pytest.mark.parametrize("mode", MODES)
def test_goods_are_not_pixel_copies(mode):
    ds = make_fine(8, 4, 0, seed=0, mode=mode)
    tr = ds.train
    d = np.abs(tr[:, None] - tr[None]).mean(axis=(2, 3))
    np.fill_diagonal(d, np.inf)
    assert d.min() > 0.012
    nn = np.abs(ds.test[:, None] - tr[None]).mean(axis=(2, 3)).min(axis=1)
    assert nn.min() > 0.012


def test_parts_pose_varies():
    # the part's centroid moves by up to ±2 px between images
    cents = []
    for i in range(12):
        img = fine_example(index=i, split="train", seed=0)[1]
        ys, xs = np.nonzero(img > 0.45)
        cents.append((ys.mean(), xs.mean()))
    cents = np.array(cents)
    spread = cents.max(0) - cents.min(0)
    assert (spread > 1.0).all() and (spread < 5.0).all()


@pytest.mark.parametrize("texture", ["regular", "stochastic"])
def test_texture_crops_differ_in_position(texture):
    imgs = [fine_example(index=i, split="train", mode="texture", texture=texture)[1] for i in range(6)]
    cs = [np.corrcoef(imgs[i].ravel(), imgs[j].ravel())[0, 1] for i in range(6) for j in range(i + 1, 6)]
    if texture == "stochastic":
        assert np.mean(np.abs(cs)) < 0.3
    else:  # periodic: some pairs align by chance, but the phases are random
        assert min(cs) < 0.3 and max(cs) < 0.95


def test_mixed_texture_alternates_by_index():
    kw = dict(split="train", mode="texture")
    assert np.array_equal(fine_example(index=0, texture="mixed", **kw)[1], fine_example(index=0, texture="regular", **kw)[1])
    assert np.array_equal(
        fine_example(index=1, texture="mixed", **kw)[1], fine_example(index=1, texture="stochastic", **kw)[1]
    )


# --------------------------------------------------------------------------------- defects


@pytest.mark.parametrize("mode", MODES)
def test_dark_spot_size_and_contrast(mode):
    for i in range(12):
        clean, img, mask = fine_example("dark_spot", index=i, mode=mode, seed=1)
        assert 1 <= mask.sum() <= 30
        assert _feret(mask) <= 6.0 + 1e-9  # diameter of a radius-3 disc
        drop = (clean - img).max()
        if mode == "parts":  # no clipping on the bright part: the drop is the contrast
            assert 0.25 - 1e-4 <= drop <= 0.5 + 1e-4
        else:
            assert drop >= 0.1
        assert (clean - img)[mask].min() > 0.0


@pytest.mark.parametrize("mode", MODES)
def test_stain_darkening_10_to_25_percent(mode):
    for i in range(12):
        clean, img, mask = fine_example("stain", index=i, mode=mode, seed=2)
        rel = (clean - img) / np.maximum(clean, 1e-6)
        peak = rel.max()
        assert 0.10 - 1e-3 <= peak <= 0.25 + 1e-3
        assert np.all(img <= clean + 1e-6)  # only darker
        # the mask is where the darkening is at least a third of its peak
        assert rel[mask].min() >= peak / 3 - 1e-3
        assert rel[~mask].max() <= peak / 3 + 1e-3
        assert 40 <= mask.sum() <= 330
        if mode == "texture":  # never cut by the frame
            assert not (mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


@pytest.mark.parametrize("mode", MODES)
def test_scratch_is_a_thin_line(mode):
    for i in range(12):
        clean, img, mask = fine_example("scratch", index=i, mode=mode, seed=3)
        length = _feret(mask)
        assert 7.0 <= length <= 27.0
        assert mask.sum() / (length + 1) <= 1.6  # about one pixel wide
        diff = np.abs(img - clean)
        assert 0.09 <= diff.max() <= 0.30 + 1e-4
        # the change is confined to the line and its anti-aliased edge, which is weaker
        assert diff[~mask].max() < diff[mask].max()
        assert diff[~ndimage.binary_dilation(mask, iterations=2)].max() < 1e-6


def test_chip_removes_edge_pixels():
    for seed in (0, 1):  # plate and washer
        for i in range(8):
            clean, img, mask = fine_example("chip", index=i, seed=seed)
            assert 2 <= mask.sum() <= 60
            # removed pixels were bright part and now show the dark background
            assert clean[mask].mean() > 0.5
            assert img[mask].mean() < 0.35
            # the bite touches the background of the clean image (it is at the edge)
            grown = ndimage.binary_dilation(mask, iterations=2)
            assert (clean[grown & ~mask] < 0.35).any()
            diff = np.abs(img - clean)
            # outside the bite only the new edge's anti-aliasing and rim shading change
            assert diff[~ndimage.binary_dilation(mask, iterations=3)].max() < 0.03
            assert diff[~ndimage.binary_dilation(mask, iterations=8)].max() < 1e-3


def test_texture_patch_changes_only_its_region():
    for i in range(8):
        clean, img, mask = fine_example("patch", index=i, mode="texture", seed=4)
        assert 15 <= mask.sum() <= 160
        diff = np.abs(img - clean)
        assert diff[mask].mean() > 0.04
        assert diff[~mask].max() < diff[mask].max()
        assert diff[~ndimage.binary_dilation(mask)].max() < 1e-6


def test_goods_have_no_defect():
    for mode in MODES:
        clean, img, mask = fine_example("good", index=3, mode=mode)
        assert np.array_equal(clean, img) and not mask.any()


# --------------------------------------------------------------------------------- MVTec writing


def test_write_mvtec_round_trip(tmp_path):
    ds = make_fine(2, 2, 2, seed=0, mode="parts")
    out = write_mvtec(ds, tmp_path / "fine")
    assert sorted(p.name for p in (out / "train" / "good").iterdir()) == ["0000.png", "0001.png"]
    assert not (out / "ground_truth" / "good").exists()
    types = np.array(ds.test_types)
    for k in DEFECT_TYPES:
        assert sorted(p.name for p in (out / "test" / k).iterdir()) == ["0000.png", "0001.png"]
        masks = sorted(p.name for p in (out / "ground_truth" / k).iterdir())
        assert masks == ["0000_mask.png", "0001_mask.png"]
        back = read_image(out / "ground_truth" / k / "0001_mask.png")[0] > 0.5
        assert np.array_equal(back, ds.test_masks[types == k][1])
        img = read_image(out / "test" / k / "0000.png")[0]
        assert np.abs(img - ds.test[types == k][0]).max() <= 0.5 / 255 + 1e-6
