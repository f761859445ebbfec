"""Reading image files (kizu.images.read_image): fixed scales, never silent clipping."""

import numpy as np
import pytest
from PIL import Image

from kizu.errors import InputError
from kizu.io.images import read_image


def test_sixteen_bit_files_use_one_fixed_scale(tmp_path):
    """A dark and a bright 16-bit image of one camera keep their relative brightness."""
    for name, value in (("dark.png", 200), ("bright.png", 30000)):
        Image.fromarray(np.full((8, 8), value, np.uint16)).save(tmp_path / name)
    assert read_image(tmp_path / "dark.png").max() == pytest.approx(200 / 65535)
    assert read_image(tmp_path / "bright.png").max() == pytest.approx(30000 / 65535)


def test_float_images_in_unit_range_are_read_as_they_are(tmp_path):
    Image.fromarray(np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)).save(tmp_path / "f.tif")
    img = read_image(tmp_path / "f.tif")
    assert img.shape == (1, 8, 8) and img.min() == 0.0 and img.max() == 1.0


@pytest.mark.parametrize("name, array, message", [
    ("raw.tif", np.full((8, 8), 3000.0, np.float32), "values 3000..3000"),
    ("nan.tif", np.where(np.eye(8, dtype=bool), np.nan, 0.5).astype(np.float32), "NaN or infinite"),
    ("i32.tif", np.full((8, 8), 70000, np.int32), "outside 0..65535"),
])
def test_values_no_fixed_scale_maps_into_unit_range_are_an_error_naming_the_file(tmp_path, name, array, message):
    """Clipping a float image's 3000s to 1 would flatten it silently."""
    Image.fromarray(array).save(tmp_path / name)
    with pytest.raises(InputError, match=message) as err:
        read_image(tmp_path / name)
    assert name in str(err.value)


@pytest.mark.parametrize("kind", ["0/255", "0/1 labels", "green on black"])
def test_masks_in_common_encodings_mark_the_defect(tmp_path, kind):
    from kizu.io.layouts import read_mask

    region = np.zeros((8, 8), bool)
    region[2:5, 3:6] = True
    if kind == "0/255":
        Image.fromarray(region.astype(np.uint8) * 255).save(tmp_path / "m.png")
    elif kind == "0/1 labels":  # would read as all-good with a fixed threshold at half of white
        Image.fromarray(region.astype(np.uint8)).save(tmp_path / "m.png")
    else:
        rgb = np.zeros((8, 8, 3), np.uint8)
        rgb[region, 1] = 255
        Image.fromarray(rgb).save(tmp_path / "m.png")
    assert np.array_equal(read_mask(tmp_path / "m.png", (8, 8)), region)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "empty.png")
    assert not read_mask(tmp_path / "empty.png", (8, 8)).any()


@pytest.mark.parametrize("mask_name", ["0_mask.png", "0.png", "0.bmp"])
def test_test_sets_find_masks_named_as_mvtec_or_as_the_image(tmp_path, mask_name):
    from kizu.io.layouts import test_set

    for folder, name in (("test/good", "g.png"), ("test/spot", "0.bmp")):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((8, 8), 100, np.uint8)).save(tmp_path / folder / name)
    (tmp_path / "ground_truth" / "spot").mkdir(parents=True)
    Image.fromarray(np.eye(8, dtype=np.uint8) * 255).save(tmp_path / "ground_truth" / "spot" / mask_name)
    data = test_set(tmp_path)
    assert data.mask_paths == [None, tmp_path / "ground_truth" / "spot" / mask_name]
