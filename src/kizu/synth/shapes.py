"""The seed post's data set: filled ellipses are good, filled rectangles are defective.

Two jitter modes:

``seed``      exactly what the seed's Keras code draws. Note ``5 + int(uniform(-1, 1))`` is always 5
              (every "ellipse" is a radius-5 disk) and ``int(uniform(-2, 2))`` is only -1, 0 or +1
              (truncation toward zero), so most test images are pixel copies of training images.
``intended``  what the seed's text describes: continuous centre shifts of ±2 px, radii 4-6 px,
              rotation ±10°, drawn with sub-pixel centres.
"""

from __future__ import annotations

import numpy as np
from skimage import draw
from skimage.transform import rotate

from .base import SynthDataset

JITTER_MODES = ("seed", "intended")


def seed_normal(rng: np.random.RandomState, size: int = 16) -> np.ndarray:
    """One good image exactly as the seed's ``generate_normal`` (scaled when size != 16)."""
    s = size / 16.0
    img = np.zeros((size, size))
    center_x = 8 * s + int(rng.uniform(-2, 2) * s)
    center_y = 8 * s + int(rng.uniform(-2, 2) * s)
    radius_x = 5 * s + int(rng.uniform(-1, 1) * s)
    radius_y = 5 * s + int(rng.uniform(-1, 1) * s)
    orientation = rng.uniform(-10, 10)
    rr, cc = draw.ellipse(center_y, center_x, radius_y, radius_x, shape=img.shape)
    img[rr, cc] = 1.0
    img = rotate(img, orientation, resize=False, order=0, mode="constant", cval=0)
    return (img > 0.5).astype(np.float32)


def seed_anomaly(rng: np.random.RandomState, size: int = 16) -> np.ndarray:
    """One defective image exactly as the seed's ``generate_anomaly`` (scaled when size != 16)."""
    s = size / 16.0
    img = np.zeros((size, size))
    x_start = 4 * s + int(rng.uniform(-2, 2) * s)
    x_end = 12 * s + int(rng.uniform(-2, 2) * s)
    y_start = 4 * s + int(rng.uniform(-2, 2) * s)
    y_end = 12 * s + int(rng.uniform(-2, 2) * s)
    x_min, x_max = int(np.floor(x_start)), int(np.ceil(x_end))
    y_min, y_max = int(np.floor(y_start)), int(np.ceil(y_end))
    img[y_min:y_max, x_min:x_max] = 1.0
    angle = rng.uniform(-10, 10)
    img = rotate(img, angle, resize=False, order=0, mode="constant", cval=0)
    return (img > 0.5).astype(np.float32)


def intended_normal(rng: np.random.RandomState, size: int = 16) -> np.ndarray:
    """An ellipse with centre ±2 px (continuous), radii 4-6 px, rotation ±10° (scaled by size/16)."""
    s = size / 16.0
    cx, cy = (size - 1) / 2 + rng.uniform(-2, 2) * s, (size - 1) / 2 + rng.uniform(-2, 2) * s
    rx, ry = rng.uniform(4, 6) * s, rng.uniform(4, 6) * s
    angle = np.deg2rad(rng.uniform(-10, 10))
    img = np.zeros((size, size), dtype=np.float32)
    rr, cc = draw.ellipse(cy, cx, ry, rx, shape=img.shape, rotation=angle)
    img[rr, cc] = 1.0
    return img


def intended_anomaly(rng: np.random.RandomState, size: int = 16) -> np.ndarray:
    """A rectangle with edges at 4±2 and 12±2 px (continuous), rotated ±10° about its centre."""
    s = size / 16.0
    x0, x1 = (4 + rng.uniform(-2, 2)) * s, (12 + rng.uniform(-2, 2)) * s
    y0, y1 = (4 + rng.uniform(-2, 2)) * s, (12 + rng.uniform(-2, 2)) * s
    angle = np.deg2rad(rng.uniform(-10, 10))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]) - [cx, cy]
    c, s_ = np.cos(angle), np.sin(angle)
    rotated = corners @ np.array([[c, s_], [-s_, c]]) + [cx, cy]
    # pixel centres sit at integer coordinates + 0.5 of the continuous edges
    img = np.zeros((size, size), dtype=np.float32)
    rr, cc = draw.polygon(rotated[:, 1] - 0.5, rotated[:, 0] - 0.5, shape=img.shape)
    img[rr, cc] = 1.0
    return img


def make_shapes(
    n_train: int = 1000,
    n_test_normal: int = 500,
    n_test_anomaly: int = 500,
    *,
    size: int = 16,
    seed: int = 0,
    jitter: str = "seed",
) -> SynthDataset:
    """The seed's data set: ``n_train`` good images; a test set of good ellipses and rectangles."""
    if jitter not in JITTER_MODES:
        raise ValueError(f"jitter must be one of {JITTER_MODES}, not {jitter!r}")
    if size < 8:
        raise ValueError(f"size must be at least 8 px, not {size}")
    normal, anomaly = (seed_normal, seed_anomaly) if jitter == "seed" else (intended_normal, intended_anomaly)
    rng = np.random.RandomState(seed)
    train = np.stack([normal(rng, size) for _ in range(n_train)]) if n_train else np.zeros((0, size, size), np.float32)
    goods = [normal(rng, size) for _ in range(n_test_normal)]
    bads = [anomaly(rng, size) for _ in range(n_test_anomaly)]
    test = np.stack(goods + bads).astype(np.float32) if goods or bads else np.zeros((0, size, size), np.float32)
    labels = np.array([0] * n_test_normal + [1] * n_test_anomaly, dtype=np.int64)
    types = ["good"] * n_test_normal + ["rectangle"] * n_test_anomaly
    return SynthDataset(train.astype(np.float32), test, labels, types, None)
