import numpy as np
import pytest
from scipy import ndimage

from kizu.synth.photo import PHOTO_DEFECTS, PHOTOS, _photo, make_photo_textures


@pytest.mark.parametrize("photo", PHOTOS)
def test_photo_tiles_with_defects_and_masks(photo):
    d = make_photo_textures(photo, 6, 3, 2, size=48, seed=1)
    assert d.train.shape == (6, 48, 48) and d.test.shape == (3 + 2 * len(PHOTO_DEFECTS), 48, 48)
    assert d.train.dtype == np.float32 and 0 <= d.test.min() and d.test.max() <= 1
    assert d.test_types == ["good"] * 3 + [t for t in PHOTO_DEFECTS for _ in range(2)]
    assert not d.test_masks[:3].any() and all(m.any() for m in d.test_masks[3:])
    # each defective image is one tile of the photograph, changed inside its mask (little outside)
    photo_img = _photo(photo)
    tiles = [photo_img[r:r + 48, c:c + 48] for r in range(0, 480, 48) for c in range(0, 480, 48)]
    for img, mask in zip(d.test[3:], d.test_masks[3:]):
        outside = ~ndimage.binary_dilation(mask, iterations=2)
        diff = [np.abs(img - t) for t in tiles]
        clean = int(np.argmin([e[outside].mean() for e in diff]))
        assert diff[clean][outside].mean() < 0.01 < diff[clean][mask].mean()
    again = make_photo_textures(photo, 6, 3, 2, size=48, seed=1)
    np.testing.assert_array_equal(d.test, again.test)
    assert not np.array_equal(d.train, make_photo_textures(photo, 6, 3, 2, size=48, seed=2).train)


def _tile_origins(photo_img: np.ndarray, tiles: np.ndarray) -> list[tuple[int, int]]:
    size = tiles.shape[1]
    found = []
    for t in tiles:
        hits = [(r, c) for r in range(0, 512, size) for c in range(0, 512, size)
                if np.array_equal(photo_img[r:r + size, c:c + size], t)]
        assert len(hits) == 1
        found.append(hits[0])
    return found


def test_images_are_disjoint_tiles_spread_over_the_photograph():
    d = make_photo_textures("gravel", 100, 50, 0, seed=0)
    assert d.train.shape == (100, 32, 32)
    train = _tile_origins(_photo("gravel"), d.train)
    test = _tile_origins(_photo("gravel"), d.test)
    assert len(set(train) | set(test)) == 150  # no pixel in two images
    # both splits sample the whole photograph (each half of it in both directions)
    for origins in (train, test):
        rows, cols = np.array(origins).T
        assert {0, 1} == set(rows // 256) == set(cols // 256)


def test_bad_arguments_say_what_is_wrong():
    with pytest.raises(ValueError, match="size"):
        make_photo_textures("brick", size=300)
    with pytest.raises(ValueError, match="photo"):
        make_photo_textures("marble")
    with pytest.raises(ValueError, match="only 256 disjoint 32-px tiles"):
        make_photo_textures("brick", 200, 50, 25)
    with pytest.raises(ValueError, match="n_train must be a non-negative integer"):
        make_photo_textures("brick", -1, 5, 5)
    with pytest.raises(ValueError, match="n_test_normal must be a non-negative integer"):
        make_photo_textures("brick", 5, 2.5, 5)
    with pytest.raises(ValueError, match="n_test_per_defect must be a non-negative integer"):
        make_photo_textures("brick", 5, 5, -3)
    with pytest.raises(ValueError, match="defects"):
        make_photo_textures("brick", 5, 5, 5, defects=("dent",))
