"""decode_image (uploads, from bytes) converts exactly as kizu.io.read_image (files)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from kizu.io import read_image
from kizu.service import _kizu


def _images():
    rng = np.random.default_rng(0)
    u8 = (rng.random((12, 10)) * 255).astype(np.uint8)
    rgb = (rng.random((12, 10, 3)) * 255).astype(np.uint8)
    pal = Image.fromarray(u8).convert("P")
    return {
        "L.png": (Image.fromarray(u8), "PNG"),
        "RGB.png": (Image.fromarray(rgb), "PNG"),
        "RGBA.png": (Image.fromarray(np.dstack([rgb, u8])), "PNG"),
        "LA.png": (Image.fromarray(np.dstack([u8, u8])), "PNG"),
        "P.png": (pal, "PNG"),
        "1.png": (Image.fromarray(u8 > 128), "PNG"),
        "I16.png": (Image.fromarray((rng.random((12, 10)) * 65535).astype(np.uint16)), "PNG"),
        "F.tif": (Image.fromarray(rng.random((12, 10)).astype(np.float32)), "TIFF"),
        "RGB.jpg": (Image.fromarray(rgb), "JPEG"),
        "L.bmp": (Image.fromarray(u8), "BMP"),
        "RGB.webp": (Image.fromarray(rgb), "WEBP"),
        "L.pgm": (Image.fromarray(u8), "PPM"),
    }


@pytest.mark.parametrize("name", list(_images()))
def test_same_as_read_image(tmp_path, name):
    im, fmt = _images()[name]
    buf = io.BytesIO()
    im.save(buf, fmt)
    (tmp_path / name).write_bytes(buf.getvalue())
    expected = read_image(tmp_path / name)
    got = _kizu.decode_image(buf.getvalue(), name)
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


def test_float_out_of_range_is_refused():
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8), 3.0, np.float32)).save(buf, "TIFF")
    with pytest.raises(_kizu.UploadError, match="outside|values") as err:
        _kizu.decode_image(buf.getvalue(), "f.tif")
    assert err.value.status == 422


def test_max_pixels_checked_before_decoding():
    buf = io.BytesIO()
    Image.fromarray(np.zeros((100, 100), np.uint8)).save(buf, "PNG")
    with pytest.raises(_kizu.UploadError, match="100x100 px, more than the 9,999 pixels") as err:
        _kizu.decode_image(buf.getvalue(), "big.png", max_pixels=9999)
    assert err.value.status == 413
    assert _kizu.decode_image(buf.getvalue(), "big.png", max_pixels=10000).shape == (1, 100, 100)


def test_upload_suffix():
    buf = io.BytesIO()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(buf, "JPEG")
    assert _kizu.upload_suffix(buf.getvalue()) == ".jpg" and _kizu.upload_suffix(b"junk") == ".bin"


def test_p_value_words():
    from kizu.service.words import p_value_words

    assert p_value_words(1 / 200, 999) == "a good part scores this high about 1 time in 200"
    assert p_value_words(1 / 21, 20) == ("higher than all 20 good calibration parts: a good part scores this "
                                          "high less than 1 time in 21")
    assert p_value_words(0.42, 20) == "a good part scores this high about 4 times in 10"
    assert p_value_words(1.0, 20).startswith("an ordinary score")
    assert p_value_words(None, 0).startswith("no p-value")
