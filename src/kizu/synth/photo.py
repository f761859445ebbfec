"""Real-texture crops from scikit-image's bundled photographs (brick, gravel, grass), with the
fine-defect painters of :mod:`kizu.synth.fine` (dark spots, stains, scratches). Offline: the
photographs ship inside scikit-image.

The photograph is cut into four horizontal strips; training crops come from strips 1 and 3, test
crops from strips 2 and 4, so no test pixel was seen in training while both sample the whole
photograph's lighting. Positions are random, so methods tied to position fail.
"""

from __future__ import annotations

import numpy as np
import skimage.data

from .base import SynthDataset
from .fine import _SURFACE_DEFECTS, _grid

PHOTOS = ("brick", "gravel", "grass")
PHOTO_DEFECTS = ("dark_spot", "stain", "scratch")


def _photo(name: str) -> np.ndarray:
    if name not in PHOTOS:
        raise ValueError(f"photo must be one of {PHOTOS}, not {name!r}")
    img = getattr(skimage.data, name)()
    return (img.astype(np.float32) / 255.0) if img.ndim == 2 else img.mean(axis=2).astype(np.float32) / 255.0


def _crop(rng, photo: np.ndarray, size: int, strips: tuple[int, int]) -> np.ndarray:
    h = photo.shape[0] // 4
    top = h * strips[rng.integers(2)]
    y = top + rng.integers(0, h - size + 1)
    x = rng.integers(0, photo.shape[1] - size + 1)
    return photo[y:y + size, x:x + size].copy()


def make_photo_textures(photo: str = "brick", n_train: int = 100, n_test_normal: int = 50,
                        n_test_per_defect: int = 25, *, size: int = 64, seed: int = 0) -> SynthDataset:
    """Random ``size``-px grey crops of a photograph; defects painted on test crops with masks."""
    p = _photo(photo)
    if not 16 <= size <= p.shape[0] // 4:
        raise ValueError(f"size must be in 16..{p.shape[0] // 4} px, not {size}")
    rng = np.random.default_rng([seed, PHOTOS.index(photo)])
    train = np.stack([_crop(rng, p, size, (0, 2)) for _ in range(n_train)]).astype(np.float32)
    s = size / 64.0
    yy, xx = _grid(size)
    region = -np.minimum(np.minimum(yy, xx), np.minimum(size - 1 - yy, size - 1 - xx)) - 0.5
    ones = np.ones((size, size))
    test, masks, types = [], [], []
    for kind, n in [("good", n_test_normal)] + [(d, n_test_per_defect) for d in PHOTO_DEFECTS]:
        for _ in range(n):
            img = _crop(rng, p, size, (1, 3))
            mask = np.zeros((size, size), bool)
            if kind != "good":
                img, mask = _SURFACE_DEFECTS[kind](rng, size, s, img, region, ones, in_view=True)
            test.append(np.clip(img, 0, 1).astype(np.float32))
            masks.append(mask)
            types.append(kind)
    return SynthDataset(train, np.stack(test), np.array([t != "good" for t in types], dtype=np.int64), types,
                        np.stack(masks))
