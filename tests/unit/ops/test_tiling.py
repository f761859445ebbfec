import numpy as np
import pytest

from kizu import TrainConfig, fit_model
from kizu.ops.tiling import extract_tiles, stitch_maps, tile_grid, tile_starts
from tests.helpers import FAST_AE


def test_tiles_cover_the_image_and_stitch_back_exactly():
    assert tile_starts(100, 32, 24) == [0, 24, 48, 68]
    x = np.random.default_rng(0).random((2, 1, 100, 70), dtype=np.float32)
    tiles = extract_tiles(x, 32, 24)
    assert tiles.shape == (2 * len(tile_grid((100, 70), 32, 24)), 1, 32, 32)
    # stitching the tiles' own pixels gives back the image (overlaps average identical values)
    np.testing.assert_allclose(stitch_maps(tiles[:, 0], (100, 70), 32, 24), x[:, 0], rtol=1e-6)


def test_tiled_model_finds_a_small_spot_in_a_large_image():
    rng = np.random.default_rng(1)
    goods = [0.5 + 0.02 * rng.standard_normal((1, 96, 96)).astype(np.float32) for _ in range(12)]
    m = fit_model(goods, TrainConfig(detector="patch-knn" if _has("patch-knn") else "autoencoder", options={} if _has("patch-knn") else FAST_AE, tile=32, tile_stride=24, calibration_fraction=0.25, alpha=0.1))
    assert m.preprocessor.tile == 32
    bad = goods[0].copy()
    bad[0, 60:62, 20:22] = 0.0  # a 2-px dark spot
    v = m.inspect([bad])[0]
    assert v.anomaly_map.shape == (96, 96)
    y, x = np.unravel_index(np.argmax(v.anomaly_map), v.anomaly_map.shape)
    assert abs(y - 60.5) <= 4 and abs(x - 20.5) <= 4


def test_tile_larger_than_image_is_an_error():
    with pytest.raises(Exception, match="larger than the images"):
        fit_model([np.zeros((1, 16, 16), np.float32)] * 4, TrainConfig(detector="autoencoder", options=FAST_AE, tile=32))


def _has(name):
    from kizu.detectors import available

    return name in available()
