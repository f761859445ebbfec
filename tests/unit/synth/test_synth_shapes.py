import numpy as np
import pytest
from skimage.measure import regionprops

from kizu.synth import make_shapes
from kizu.synth.shapes import seed_anomaly, seed_normal


def _centroids(imgs):
    return np.array([regionprops(im.astype(int))[0].centroid for im in imgs])


def test_seed_jitter_reproduces_the_seed_code_draws():
    # int(uniform(-2, 2)) truncates toward zero: only -1, 0, +1; radii are always 5
    d = make_shapes(2000, 0, 0, seed=0, jitter="seed")
    areas = d.train.reshape(len(d.train), -1).sum(1)
    # a radius-5 disk has ~69-81 pixels whatever the rotation; no 4- or 6-radius ellipses
    assert areas.min() >= 60 and areas.max() <= 90
    c = _centroids(d.train)
    # centres 8 + {-1, 0, 1} (skimage's ellipse is centred on the pixel), rotation moves them < 1 px
    assert c.min() > 6.0 and c.max() < 10.0
    # few distinct images: the seed's data barely varies
    distinct = {im.tobytes() for im in d.train}
    assert len(distinct) < 200


def test_seed_generator_is_the_seed_code():
    """Replay the seed's draws by hand for one image."""
    from skimage import draw
    from skimage.transform import rotate

    rng = np.random.RandomState(7)
    ours = seed_normal(rng)
    rng = np.random.RandomState(7)
    img = np.zeros((16, 16))
    cx = 8 + int(rng.uniform(-2, 2)); cy = 8 + int(rng.uniform(-2, 2))
    rx = 5 + int(rng.uniform(-1, 1)); ry = 5 + int(rng.uniform(-1, 1))
    ori = rng.uniform(-10, 10)
    rr, cc = draw.ellipse(cy, cx, ry, rx, shape=img.shape)
    img[rr, cc] = 1.0
    img = (rotate(img, ori, resize=False, order=0, mode="constant", cval=0) > 0.5).astype(np.float32)
    np.testing.assert_array_equal(ours, img)


def test_seed_anomaly_is_a_rectangle_of_the_seed_size():
    rng = np.random.RandomState(0)
    imgs = [seed_anomaly(rng) for _ in range(300)]
    areas = np.array([im.sum() for im in imgs])
    # widths and heights in 8 + {-2..2}
    assert areas.min() >= 6 * 6 - 8 and areas.max() <= 10 * 10 + 8


def test_intended_jitter_is_continuous_with_radii_4_to_6_and_rotation_10():
    d = make_shapes(1500, 0, 0, seed=1, jitter="intended")
    props = [regionprops(im.astype(int))[0] for im in d.train]
    c = np.array([p.centroid for p in props])
    assert c.min() >= 7.5 - 2.2 and c.max() <= 7.5 + 2.2
    assert c.std() > 0.9  # continuous ±2 px spread (uniform: std 1.15)
    axes = np.array([(p.axis_major_length, p.axis_minor_length) for p in props]) / 2  # ≈ radii
    assert axes.min() > 3.5 and axes.max() < 6.7
    assert axes[:, 0].max() > 5.7 and axes[:, 1].min() < 4.3
    # orientation of clearly elongated ellipses stays within ±10° of an axis
    elong = [p for p, a in zip(props, axes) if a[0] - a[1] > 0.8]
    ang = np.degrees([p.orientation for p in elong])
    dev = np.minimum(np.abs(ang), np.abs(np.abs(ang) - 90))
    assert len(elong) > 100 and np.percentile(dev, 95) < 14
    assert len({im.tobytes() for im in d.train}) > 1400  # almost every image differs


def test_counts_labels_determinism():
    a = make_shapes(5, 3, 4, seed=2)
    b = make_shapes(5, 3, 4, seed=2)
    np.testing.assert_array_equal(a.test, b.test)
    assert a.train.shape == (5, 16, 16) and a.test.shape == (7, 16, 16)
    assert list(a.test_labels) == [0] * 3 + [1] * 4
    assert a.test_types == ["good"] * 3 + ["rectangle"] * 4
    assert a.train.dtype == np.float32 and set(np.unique(a.train)) <= {0.0, 1.0}
    with pytest.raises(ValueError):
        make_shapes(1, 1, 1, jitter="nope")


def test_other_sizes_scale():
    d = make_shapes(3, 1, 1, size=32, jitter="intended")
    assert d.train.shape == (3, 32, 32) and d.train.sum(axis=(1, 2)).min() > 150
