import numpy as np
import pytest

from kizu.synth.photo import PHOTOS, make_photo_textures


@pytest.mark.parametrize("photo", PHOTOS)
def test_photo_crops_with_defects_and_masks(photo):
    d = make_photo_textures(photo, 6, 3, 2, size=48, seed=1)
    assert d.train.shape == (6, 48, 48) and d.test.shape == (9, 48, 48)
    assert d.train.dtype == np.float32 and 0 <= d.test.min() and d.test.max() <= 1
    assert d.test_types == ["good"] * 3 + ["dark_spot"] * 2 + ["stain"] * 2 + ["scratch"] * 2
    assert not d.test_masks[:3].any() and all(m.any() for m in d.test_masks[3:])
    again = make_photo_textures(photo, 6, 3, 2, size=48, seed=1)
    np.testing.assert_array_equal(d.test, again.test)


def test_test_crops_never_overlap_training_strips():
    # every training crop lies in strips 1 and 3, every test crop in strips 2 and 4: no shared pixels
    d = make_photo_textures("brick", 40, 40, 0, size=64, seed=0)
    train_rows = {r.tobytes() for im in d.train for r in im}
    test_rows = {r.tobytes() for im in d.test for r in im}
    assert not train_rows & test_rows


def test_bad_size():
    with pytest.raises(ValueError, match="size"):
        make_photo_textures("brick", size=300)
    with pytest.raises(ValueError, match="photo"):
        make_photo_textures("marble")
