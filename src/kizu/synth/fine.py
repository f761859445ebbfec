"""Fine defects: grey manufactured parts or textured surfaces with small, subtle defects.

Two modes:

``parts``    a bright part on a darker background, photographed in a fixture: each image has the part
             shifted by up to ±2 px (at 64 px; scaled with size), rotated by up to ±3°, with its own
             surface grain (fine noise, machining marks, low-frequency blotches), illumination gradient
             (random direction, 2-6 % peak to peak), brightness and sensor noise. The part kind is
             chosen by the seed: even seeds give a ``plate`` (rounded rectangle with two mounting
             holes), odd seeds a ``washer`` (disc with a central hole). Defect types
             ``DEFECT_TYPES``: ``dark_spot``, ``stain``, ``scratch``, ``chip`` (a bite out of the
             part's outer edge).
``texture``  random crops of a surface, where position-tied methods fail. ``texture="regular"``: a
             plain weave, each image at a random phase (= a random crop of an endless cloth) with
             ±2 % period and ±1° angle jitter; ``"stochastic"``: random crops of one large
             multi-scale filtered-noise texture (sand/concrete) drawn per data set;
             ``"mixed"`` (default): image index parity decides, within every split and type: even
             indices are regular, odd ones stochastic (so half and half). Defect types
             ``DEFECT_TYPES_TEXTURE``: ``dark_spot``, ``stain``, ``scratch``, ``patch`` (a small
             region of foreign texture and brightness).

Defects (sizes in px at size 64, scaled by size/64):

``dark_spot``  round spot of radius 1-3 px (at least 1 px), 0.25-0.5 darker than the surface
               (clipped at 0 on dark texture); mask = pixels within the radius.
``stain``      soft Gaussian blob 10-25 % darker (multiplicative) at its centre, "radius" 4-10 px;
               mask = where the darkening is at least 1/3 of its peak (the disc of that radius,
               cut by the part's outline in ``parts`` mode; wholly in the frame in ``texture``).
``scratch``    line 10-25 px long, width max(1, size/128) px, anti-aliased, random angle, darker
               (0.15-0.3) or brighter (0.12-0.25) than the surface; mask = pixels within half the
               width of the segment.
``chip``       a disc (radius 2-5 px) or a 90° V-notch (2-5 px deep) cut into the part's outer
               edge, showing background; mask = part pixels removed (the new edge's rim shading
               and anti-aliasing change a few pixels next to it).
``patch``      an ellipse (semi-axes 3-7 px) whose texture is replaced by a different one (other
               grain scale or weave period/angle) with a brightness shift of ±0.06-0.12;
               mask = the ellipse.

Every image is drawn from its own generator, ``default_rng([seed, split, type, index])``, so an
image does not depend on the counts asked for; ``fine_example`` returns one image together with the
same image without its defect.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import ndimage

from .base import SynthDataset, check_counts

DEFECT_TYPES = ("dark_spot", "stain", "scratch", "chip")
DEFECT_TYPES_TEXTURE = ("dark_spot", "stain", "scratch", "patch")
MODES = ("parts", "texture")
TEXTURES = ("regular", "stochastic", "mixed")
PART_KINDS = ("plate", "washer")
MIN_SIZE, MAX_SIZE = 32, 256

_SPLITS = {"train": 0, "test": 1}
_KIND_CODES = {"good": 0, "dark_spot": 1, "stain": 2, "scratch": 3, "chip": 4, "patch": 5}


def defect_types(mode: str = "parts") -> tuple[str, ...]:
    """The defect type names of ``mode``."""
    _check_choice("mode", mode, MODES)
    return DEFECT_TYPES if mode == "parts" else DEFECT_TYPES_TEXTURE


def part_kind(seed: int) -> str:
    """The part drawn in ``parts`` mode for ``seed``: ``plate`` for even seeds, ``washer`` for odd."""
    return PART_KINDS[int(seed) % 2]


def make_fine(
    n_train: int = 100,
    n_test_normal: int = 50,
    n_test_per_defect: int = 25,
    *,
    size: int = 64,
    seed: int = 0,
    mode: str = "parts",
    texture: str = "mixed",
) -> SynthDataset:
    """Good training images; a test set of goods then ``n_test_per_defect`` of each defect type.

    Test order: ``n_test_normal`` goods, then each type of ``defect_types(mode)`` in turn. Masks are
    exact pixel masks (all False for goods). ``texture`` only matters in ``texture`` mode.
    """
    _check_args(size, seed, mode, texture)
    check_counts(n_train=n_train, n_test_normal=n_test_normal, n_test_per_defect=n_test_per_defect)
    kw = dict(size=size, seed=seed, mode=mode, texture=texture)
    train = [fine_example("good", index=i, split="train", **kw)[1] for i in range(n_train)]
    test, masks, types = [], [], []
    plan = [("good", n_test_normal)] + [(d, n_test_per_defect) for d in defect_types(mode)]
    for kind, n in plan:
        for i in range(n):
            _, img, mask = fine_example(kind, index=i, split="test", **kw)
            test.append(img)
            masks.append(mask)
            types.append(kind)
    empty = np.zeros((0, size, size), np.float32)
    return SynthDataset(
        train=np.stack(train) if train else empty,
        test=np.stack(test) if test else empty,
        test_labels=np.array([0 if t == "good" else 1 for t in types], dtype=np.int64),
        test_types=types,
        test_masks=np.stack(masks) if masks else empty.astype(bool),
    )


def fine_example(
    defect: str = "good",
    *,
    index: int = 0,
    split: str = "test",
    size: int = 64,
    seed: int = 0,
    mode: str = "parts",
    texture: str = "mixed",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image as ``make_fine`` draws it: ``(clean, image, mask)``.

    ``clean`` is the same image without its defect (identical to ``image`` for goods); ``mask`` is
    the (H, W) bool defect mask. ``make_fine``'s ``index``-th image of that split and type is
    exactly ``image``.
    """
    _check_args(size, seed, mode, texture)
    _check_choice("split", split, tuple(_SPLITS))
    _check_choice("defect", defect, ("good",) + defect_types(mode))
    if split == "train" and defect != "good":
        raise ValueError("training images are all good")
    rng = np.random.default_rng([int(seed), _SPLITS[split], _KIND_CODES[defect], int(index)])
    if mode == "parts":
        clean, img, mask = _part_image(rng, size, seed, defect)
    else:
        kind = texture if texture != "mixed" else ("regular", "stochastic")[int(index) % 2]
        clean, img, mask = _texture_image(rng, size, seed, kind, defect)
    to32 = lambda a: np.clip(a, 0.0, 1.0).astype(np.float32)  # noqa: E731
    return to32(clean), to32(img), mask


# ---------------------------------------------------------------------------------------------
# argument checks


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, not {value!r}")


def _check_args(size: int, seed: int, mode: str, texture: str) -> None:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"size must be an integer from {MIN_SIZE} to {MAX_SIZE} px, not {size!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, not {seed!r}")
    _check_choice("mode", mode, MODES)
    _check_choice("texture", texture, TEXTURES)


# ---------------------------------------------------------------------------------------------
# shared helpers


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    return yy, xx


def _unit_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma) -> np.ndarray:
    """Gaussian-filtered white noise scaled to zero mean, unit standard deviation."""
    f = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    f -= f.mean()
    return f / (f.std() + 1e-12)


def _gradient(rng: np.random.Generator, size: int, lo: float = 0.02, hi: float = 0.06) -> np.ndarray:
    """Multiplicative illumination: a linear ramp of ``lo``-``hi`` peak to peak, random direction."""
    yy, xx = _grid(size)
    a = rng.uniform(0, 2 * np.pi)
    amp = rng.uniform(lo, hi)
    c = (size - 1) / 2
    t = (np.cos(a) * (xx - c) + np.sin(a) * (yy - c)) / (size * np.sqrt(2))  # in [-0.5, 0.5]
    return 1.0 + amp * t


def _segment_distance(yy, xx, p0, p1) -> np.ndarray:
    """Distance of each pixel centre to the segment p0-p1 (points as (y, x))."""
    d = np.subtract(p1, p0)
    L2 = float(d @ d)
    t = ((yy - p0[0]) * d[0] + (xx - p0[1]) * d[1]) / max(L2, 1e-12)
    t = np.clip(t, 0.0, 1.0)
    return np.hypot(yy - (p0[0] + t * d[0]), xx - (p0[1] + t * d[1]))


def _pick(rng: np.random.Generator, allowed: np.ndarray) -> tuple[int, int] | None:
    idx = np.flatnonzero(allowed)
    if idx.size == 0:
        return None
    k = idx[rng.integers(idx.size)]
    return divmod(int(k), allowed.shape[1])


def _allowed(region_sdf: np.ndarray, margin: float) -> np.ndarray:
    """Pixels at least ``margin`` inside the region (sdf < 0 inside); relaxes the margin if none."""
    m = margin
    while m > 0.5:
        ok = region_sdf < -m
        if ok.any():
            return ok
        m *= 0.75
    return region_sdf < 0


def _dark_spot(rng, size, s, img, region_sdf, region_cover, in_view=False):
    yy, xx = _grid(size)
    r = max(1.0, rng.uniform(1.0, 3.0) * s)
    c = rng.uniform(0.25, 0.5)
    for _ in range(20):
        cy, cx = _pick(rng, _allowed(region_sdf, r + 2.0))
        # within a quarter pixel of a pixel centre, so that pixel takes the full contrast
        cy, cx = cy + rng.uniform(-0.25, 0.25), cx + rng.uniform(-0.25, 0.25)
        d = np.hypot(yy - cy, xx - cx)
        mask = (d <= r) & (region_cover >= 0.5)
        if mask.any():
            break
    out = img - c * np.clip(r + 0.5 - d, 0.0, 1.0) * region_cover
    return out, mask


def _stain(rng, size, s, img, region_sdf, region_cover, in_view=False):
    yy, xx = _grid(size)
    R = rng.uniform(4.0, 10.0) * s
    depth = rng.uniform(0.10, 0.25)
    sigma = R / np.sqrt(2 * np.log(3.0))  # darkening falls to peak/3 at distance R
    for _ in range(20):
        margin = R + 1.0 if in_view else max(2.0, 0.5 * R)  # in_view: the whole blob in the frame
        cy, cx = _pick(rng, _allowed(region_sdf, margin))  # a pixel centre: the peak is exact
        d2 = (yy - cy) ** 2 + (xx - cx) ** 2
        dark = depth * np.exp(-d2 / (2 * sigma * sigma)) * region_cover
        mask = dark >= depth / 3  # on a full-cover surface: exactly the disc of radius R
        if mask.any():
            break
    return img * (1.0 - dark), mask


def _scratch(rng, size, s, img, region_sdf, region_cover, in_view=False):
    yy, xx = _grid(size)
    L = rng.uniform(10.0, 25.0) * s
    w = max(1.0, s / 2)
    contrast = -rng.uniform(0.15, 0.30) if rng.random() < 0.5 else rng.uniform(0.12, 0.25)
    p0 = p1 = None
    for attempt in range(200):
        if attempt and attempt % 40 == 0:
            L *= 0.8
        cy, cx = _pick(rng, _allowed(region_sdf, 2.0))
        a = rng.uniform(0, np.pi)
        dy, dx = np.sin(a) * L / 2, np.cos(a) * L / 2
        q0, q1 = (cy - dy, cx - dx), (cy + dy, cx + dx)
        ts = np.linspace(0, 1, 25)
        py = np.rint(q0[0] + ts * (q1[0] - q0[0])).astype(int)
        px = np.rint(q0[1] + ts * (q1[1] - q0[1])).astype(int)
        inside = (py >= 0) & (py < size) & (px >= 0) & (px < size)
        if inside.all() and (region_sdf[py, px] < -(w / 2 + 1.0)).all():
            p0, p1 = q0, q1
            break
    if p0 is None:  # a short scratch about the last centre
        p0, p1 = (cy - 1.0, cx - 1.0), (cy + 1.0, cx + 1.0)
    d = _segment_distance(yy, xx, p0, p1)
    mask = (d <= w / 2) & (region_cover >= 0.5)
    out = img + contrast * np.clip(w / 2 + 0.5 - d, 0.0, 1.0) * region_cover
    return out, mask


_SURFACE_DEFECTS = {"dark_spot": _dark_spot, "stain": _stain, "scratch": _scratch}


# ---------------------------------------------------------------------------------------------
# parts


def _part_sdf(kind: str, size: int, cy: float, cx: float, theta: float, yy, xx):
    """Signed distances (negative inside) of the part's outer outline and of the whole part."""
    ct, st = np.cos(theta), np.sin(theta)
    u = ct * (xx - cx) + st * (yy - cy)
    v = -st * (xx - cx) + ct * (yy - cy)
    if kind == "plate":
        a, b, rc = 0.33 * size, 0.23 * size, 0.07 * size
        qx, qy = np.abs(u) - a + rc, np.abs(v) - b + rc
        outer = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0)) + np.minimum(np.maximum(qx, qy), 0) - rc
        rh, hx = 0.05 * size, 0.22 * size
        holes = np.minimum(np.hypot(u - hx, v), np.hypot(u + hx, v)) - rh
    else:
        rho = np.hypot(u, v)
        outer = rho - 0.36 * size
        holes = rho - 0.09 * size
    return outer, np.maximum(outer, -holes), (u, v)


def _cover(sdf: np.ndarray) -> np.ndarray:
    return np.clip(0.5 - sdf, 0.0, 1.0)


def _part_image(rng: np.random.Generator, size: int, seed: int, defect: str):
    s = size / 64.0
    kind = part_kind(seed)
    yy, xx = _grid(size)
    # pose and appearance of this piece, all drawn before any defect
    cy = (size - 1) / 2 + rng.uniform(-2, 2) * s
    cx = (size - 1) / 2 + rng.uniform(-2, 2) * s
    theta = np.deg2rad(rng.uniform(-3, 3))
    level = 0.70 + rng.uniform(-0.03, 0.03)
    bg_level = 0.16 + rng.uniform(-0.02, 0.02)
    gain = 1.0 + rng.uniform(-0.03, 0.03)
    blotch = _unit_noise(rng, (size, size), 6.0 * s)
    grain = _unit_noise(rng, (size, size), 0.6)
    bg_noise = _unit_noise(rng, (size, size), 1.5 * s)
    if kind == "plate":  # brushed along the part's long axis
        marks = _unit_noise(rng, (size, size), (0.4, 3.0 * s))
    else:  # turning marks: concentric rings about the part centre
        profile = ndimage.gaussian_filter1d(rng.standard_normal(4 * size), 1.0)
        profile = (profile - profile.mean()) / (profile.std() + 1e-12)
        rho = np.hypot(yy - cy, xx - cx)
        marks = np.interp(rho * 2.0 / max(s, 0.5), np.arange(profile.size), profile)
    light = _gradient(rng, size)
    sensor = rng.standard_normal((size, size)) * 0.008

    outer, part, _ = _part_sdf(kind, size, cy, cx, theta, yy, xx)
    cover0 = _cover(part)
    shadow = ndimage.shift(ndimage.gaussian_filter(cover0, 1.5 * s), (1.5 * s, 1.5 * s), order=1, mode="nearest")

    def compose(part_sdf):
        cov = _cover(part_sdf)
        rim = 1.0 - 0.12 * np.exp(-np.maximum(-part_sdf, 0.0) / (1.2 * s))
        surface = level * (1.0 + 0.025 * blotch) * rim + 0.012 * grain + 0.012 * marks
        background = bg_level * (1.0 - 0.3 * shadow) + 0.01 * bg_noise
        img = (cov * surface + (1.0 - cov) * background) * light * gain + sensor
        return np.clip(img, 0.0, 1.0)

    clean = compose(part)
    mask = np.zeros((size, size), bool)
    if defect == "good":
        return clean, clean.copy(), mask
    if defect == "chip":
        img, mask = _chip(rng, size, s, outer, part, compose)
        return clean, img, mask
    img, mask = _SURFACE_DEFECTS[defect](rng, size, s, clean, part, cover0)
    return clean, np.clip(img, 0.0, 1.0), mask


def _chip(rng, size, s, outer, part, compose):
    yy, xx = _grid(size)
    r = max(1.5, rng.uniform(2.0, 5.0) * s)
    notch = rng.random() < 0.5
    gy, gx = np.gradient(outer)
    for _ in range(50):
        by, bx = _pick(rng, np.abs(outer) < 0.5)
        ny, nx = gy[by, bx], gx[by, bx]  # outward normal
        nn = np.hypot(ny, nx) + 1e-12
        ny, nx = ny / nn, nx / nn
        # snap the centre onto the outline
        off = outer[by, bx]
        py, px = by - off * ny, bx - off * nx
        if notch:  # V-notch: apex r deep along the inward normal, 90° opening
            a = r + (yy - py) * ny + (xx - px) * nx  # outward from the apex
            b = np.abs((yy - py) * nx - (xx - px) * ny)  # sideways
            chip_sdf = np.where(a + b > 0, (b - a) / np.sqrt(2.0), np.hypot(a, b))  # exact wedge distance
            chip_sdf = np.maximum(chip_sdf, np.hypot(yy - py, xx - px) - 2.5 * r)
        else:
            chip_sdf = np.hypot(yy - py, xx - px) - r
        new = np.maximum(part, -chip_sdf)
        mask = (part <= 0) & (new > 0)
        if mask.sum() >= 2:
            break
    return compose(new), mask


# ---------------------------------------------------------------------------------------------
# textures


@lru_cache(maxsize=4)
def _mother_texture(seed: int, size: int) -> np.ndarray:
    """One large stochastic texture per data set (6x the image side), zero mean, unit std."""
    s = size / 64.0
    rng = np.random.default_rng([int(seed), 99, size])
    n = 6 * size
    f = (
        0.55 * _unit_noise(rng, (n, n), 0.7)
        + 0.45 * _unit_noise(rng, (n, n), 2.0 * s)
        + 0.35 * _unit_noise(rng, (n, n), 6.0 * s)
    )
    f = ((f - f.mean()) / f.std()).astype(np.float32)
    f.setflags(write=False)
    return f


def _weave(size: int, period: float, angle: float, phase: tuple[float, float]) -> np.ndarray:
    """Plain weave in [0, 1], rendered at 2x and averaged down (anti-aliased)."""
    ss = 2
    yy, xx = np.mgrid[0 : size * ss, 0 : size * ss].astype(np.float64)
    yy, xx = (yy + 0.5) / ss - 0.5, (xx + 0.5) / ss - 0.5
    ca, sa = np.cos(angle), np.sin(angle)
    u = (ca * xx + sa * yy) / (period / 2) + phase[0]
    v = (-sa * xx + ca * yy) / (period / 2) + phase[1]
    i, j = np.floor(u), np.floor(v)
    a, b = u - i, v - j
    warp_top = ((i + j) % 2) == 0
    warp = np.sin(np.pi * a) ** 0.6 * (0.7 + 0.3 * np.sin(np.pi * b))
    weft = np.sin(np.pi * b) ** 0.6 * (0.7 + 0.3 * np.sin(np.pi * a))
    w = np.where(warp_top, warp, weft)
    return w.reshape(size, ss, size, ss).mean(axis=(1, 3))


def _texture_base(rng, size: int, seed: int, kind: str, s: float) -> np.ndarray:
    """The defect-free texture field (before grain, light and noise)."""
    if kind == "regular":
        period = 12.0 * s * (1.0 + rng.uniform(-0.02, 0.02))
        angle = np.deg2rad(rng.uniform(-1, 1))
        phase = (rng.uniform(0, 2), rng.uniform(0, 2))
        return 0.22 + 0.5 * _weave(size, period, angle, phase)
    mother = _mother_texture(seed, size)
    oy, ox = rng.integers(0, mother.shape[0] - size + 1, size=2)
    return 0.52 + 0.09 * mother[oy : oy + size, ox : ox + size]


def _texture_image(rng: np.random.Generator, size: int, seed: int, kind: str, defect: str):
    s = size / 64.0
    base = _texture_base(rng, size, seed, kind, s)
    gain = 1.0 + rng.uniform(-0.03, 0.03)
    blotch = _unit_noise(rng, (size, size), 8.0 * s)
    grain = _unit_noise(rng, (size, size), 0.6)
    light = _gradient(rng, size, 0.02, 0.05)
    sensor = rng.standard_normal((size, size)) * 0.008

    def compose(field):
        img = (field * (1.0 + 0.02 * blotch) + 0.012 * grain) * light * gain + sensor
        return np.clip(img, 0.0, 1.0)

    clean = compose(base)
    mask = np.zeros((size, size), bool)
    if defect == "good":
        return clean, clean.copy(), mask
    # the whole frame is surface: distance to the border as the region's signed distance
    yy, xx = _grid(size)
    region = -np.minimum(np.minimum(yy, xx), np.minimum(size - 1 - yy, size - 1 - xx)) - 0.5
    ones = np.ones((size, size))
    if defect == "patch":
        img, mask = _patch(rng, size, s, seed, kind, base, region, compose)
        return clean, img, mask
    img, mask = _SURFACE_DEFECTS[defect](rng, size, s, clean, region, ones, in_view=True)
    return clean, np.clip(img, 0.0, 1.0), mask


def _patch(rng, size, s, seed, kind, base, region, compose):
    alpha, mask = _patch_ellipse(rng, size, s, region)
    shift = rng.choice([-1.0, 1.0]) * rng.uniform(0.06, 0.12)
    if kind == "regular":  # a mis-woven spot: other period and angle
        period = 12.0 * s * rng.uniform(0.55, 0.75)
        foreign = 0.22 + 0.5 * _weave(size, period, rng.uniform(0.3, 0.8), (rng.uniform(0, 2), rng.uniform(0, 2)))
    else:  # other grain: coarse and smooth, or very fine
        sig = rng.choice([4.0 * s, 0.5])
        foreign = 0.52 + 0.09 * _unit_noise(rng, (size, size), sig)
    field = (1.0 - alpha) * base + alpha * (foreign + shift)
    return compose(field), mask


def _patch_ellipse(rng, size, s, region) -> tuple[np.ndarray, np.ndarray]:
    """A random ellipse (semi-axes 3-7 px × size/64) inside ``region``: anti-aliased cover, mask."""
    yy, xx = _grid(size)
    ra = rng.uniform(3.0, 7.0) * s
    rb = ra * rng.uniform(0.6, 1.0)
    ang = rng.uniform(0, np.pi)
    cy, cx = _pick(rng, _allowed(region, ra + 1.0))
    cy, cx = cy + rng.uniform(-0.5, 0.5), cx + rng.uniform(-0.5, 0.5)
    ca, sa = np.cos(ang), np.sin(ang)
    u = ca * (xx - cx) + sa * (yy - cy)
    v = -sa * (xx - cx) + ca * (yy - cy)
    q = np.hypot(u / ra, v / rb)
    grad = np.hypot(u / ra**2, v / rb**2) / np.maximum(q, 1e-9)
    sdf = (q - 1.0) / np.maximum(grad, 1e-9)  # first-order distance to the ellipse, in px
    return _cover(sdf), sdf <= 0
