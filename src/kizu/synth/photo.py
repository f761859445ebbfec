"""Real-texture tiles from scikit-image's bundled photographs (brick, gravel, grass), with painted
defects and pixel masks. Offline: the photographs ship inside scikit-image.

Every image is its own tile of a ``size``-px grid laid over the photograph (512 px: 256 tiles of
32 px); the tiles are shuffled (seeded) and dealt out to training, good test and defective test
images. No two images share a pixel, and every split samples the whole photograph, so training,
calibration and test images are exchangeable, independent draws — as parts on a line are. (Random
crops overlap each other: a held-out calibration crop that shares pixels with training crops scores
low, and the threshold it sets then flags most new images.)

Defects, at the photograph's own pixel scale whatever the tile size (so sizes are as in
:mod:`kizu.synth.fine` at 64 px): ``dark_spot``, ``scratch``, ``stain`` (the fine-defect
painters) and ``patch`` — an ellipse (semi-axes 3-7 px) showing one of the *other* photographs,
scaled to the tile's own mean and contrast, so only its texture is foreign.
"""

from __future__ import annotations

import numpy as np
import skimage.data

from .base import SynthDataset, check_counts
from .fine import _SURFACE_DEFECTS, _grid, _patch_ellipse

PHOTOS = ("brick", "gravel", "grass")
PHOTO_DEFECTS = ("dark_spot", "scratch", "patch", "stain")


def _photo(name: str) -> np.ndarray:
    if name not in PHOTOS:
        raise ValueError(f"photo must be one of {PHOTOS}, not {name!r}")
    img = getattr(skimage.data, name)()
    return (img.astype(np.float32) / 255.0) if img.ndim == 2 else img.mean(axis=2).astype(np.float32) / 255.0


def _foreign_patch(rng, photo: str, tile: np.ndarray, region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    size = tile.shape[0]
    other = _photo(PHOTOS[(PHOTOS.index(photo) + 1 + rng.integers(len(PHOTOS) - 1)) % len(PHOTOS)])
    y, x = rng.integers(0, other.shape[0] - size + 1), rng.integers(0, other.shape[1] - size + 1)
    src = other[y:y + size, x:x + size]
    foreign = (src - src.mean()) / (src.std() + 1e-6) * tile.std() + tile.mean()
    alpha, mask = _patch_ellipse(rng, size, 1.0, region)
    return (1.0 - alpha) * tile + alpha * foreign, mask


def make_photo_textures(photo: str = "brick", n_train: int = 100, n_test_normal: int = 50,
                        n_test_per_defect: int = 25, *, size: int = 32, seed: int = 0,
                        defects: tuple[str, ...] = PHOTO_DEFECTS) -> SynthDataset:
    """Disjoint ``size``-px grey tiles of a photograph; ``defects`` painted on test tiles, with masks.

    Test order: the goods, then each of ``defects`` in turn. Needs ``n_train + n_test_normal +
    len(defects) * n_test_per_defect`` tiles at most ``(512 // size) ** 2`` (256 at 32 px).
    """
    p = _photo(photo)
    check_counts(n_train=n_train, n_test_normal=n_test_normal, n_test_per_defect=n_test_per_defect)
    unknown = [d for d in defects if d not in PHOTO_DEFECTS]
    if unknown:
        raise ValueError(f"defects must be among {PHOTO_DEFECTS}, not {unknown}")
    if not 16 <= size <= p.shape[0] // 4:
        raise ValueError(f"size must be in 16..{p.shape[0] // 4} px, not {size}")
    rows, cols = p.shape[0] // size, p.shape[1] // size
    plan = [("good", n_test_normal)] + [(d, n_test_per_defect) for d in defects]
    needed = n_train + sum(n for _, n in plan)
    if needed > rows * cols:
        raise ValueError(f"{photo}: {needed} images asked for, but the photograph has only {rows * cols} "
                         f"disjoint {size}-px tiles; ask for fewer images or a smaller size")
    rng = np.random.default_rng([seed, PHOTOS.index(photo)])
    order = iter(rng.permutation(rows * cols))

    def tile() -> np.ndarray:
        r, c = divmod(int(next(order)), cols)
        return p[r * size:(r + 1) * size, c * size:(c + 1) * size].astype(np.float64)

    empty = np.zeros((0, size, size), np.float32)
    train = np.stack([tile() for _ in range(n_train)]).astype(np.float32) if n_train else empty
    yy, xx = _grid(size)
    region = -np.minimum(np.minimum(yy, xx), np.minimum(size - 1 - yy, size - 1 - xx)) - 0.5
    ones = np.ones((size, size))
    test, masks, types = [], [], []
    for kind, n in plan:
        for _ in range(n):
            img = tile()
            mask = np.zeros((size, size), bool)
            if kind == "patch":
                img, mask = _foreign_patch(rng, photo, img, region)
            elif kind != "good":
                img, mask = _SURFACE_DEFECTS[kind](rng, size, 1.0, img, region, ones, in_view=True)
            test.append(np.clip(img, 0, 1).astype(np.float32))
            masks.append(mask)
            types.append(kind)
    empty = np.zeros((0, size, size), np.float32)
    return SynthDataset(train, np.stack(test) if test else empty,
                        np.array([t != "good" for t in types], dtype=np.int64), types,
                        np.stack(masks) if masks else empty.astype(bool))
