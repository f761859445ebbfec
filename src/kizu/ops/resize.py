"""Bilinear resizing with PyTorch's semantics (``F.interpolate(mode="bilinear", align_corners=False,
antialias=...)``), numpy only, and adaptive average pooling with PyTorch's windows."""

from __future__ import annotations

import numpy as np


def _taps(n_in: int, n_out: int, antialias: bool) -> tuple[np.ndarray, np.ndarray]:
    """Source indices and weights ``(n_out, T)`` of torch's 1-D bilinear resize, align_corners=False.

    Without anti-aliasing: src = max((i + 0.5) · n_in / n_out − 0.5, 0), two taps (clamped).
    With it (``_upsample_bilinear2d_aa``): a triangle of half-width max(scale, 1) input px around
    (i + 0.5) · scale, weights normalised per output pixel (what PIL does)."""
    scale = n_in / n_out
    i = np.arange(n_out, dtype=np.float64)
    if not antialias:
        src = np.maximum((i + 0.5) * scale - 0.5, 0.0)
        i0 = np.minimum(src.astype(np.int64), n_in - 1)
        lam = src - i0
        i1 = np.minimum(i0 + 1, n_in - 1)
        return np.stack([i0, i1], 1), np.stack([1.0 - lam, lam], 1)
    # float32 arithmetic, as torch computes these weights for float32 images (in float64 the
    # weights differ by up to 1.5e-5, e.g. 256 → 224)
    f32 = np.float32
    scale = f32(n_in) / f32(n_out)
    support = scale if scale >= 1.0 else f32(1.0)
    inv = f32(1.0) / scale if scale >= 1.0 else f32(1.0)
    centre = scale * (np.arange(n_out, dtype=f32) + f32(0.5))
    xmin = np.maximum((centre - support + f32(0.5)).astype(np.int64), 0)  # C++ truncation (values > -1)
    xmax = np.minimum((centre + support + f32(0.5)).astype(np.int64), n_in)
    taps = int((xmax - xmin).max())
    j = xmin[:, None] + np.arange(taps)[None, :]
    w = np.clip(f32(1.0) - np.abs((j.astype(f32) - centre[:, None] + f32(0.5)) * inv), f32(0.0), None)
    w[j >= xmax[:, None]] = 0.0
    w = w / w.sum(axis=1, keepdims=True, dtype=f32)
    return np.minimum(j, n_in - 1), w.astype(np.float64)


def resize_matrix(n_in: int, n_out: int, antialias: bool = False) -> np.ndarray:
    """``(n_out, n_in)`` float64 weights of the 1-D resize: ``out = Wh @ img @ Ww.T``."""
    idx, w = _taps(n_in, n_out, antialias)
    m = np.zeros((n_out, n_in))
    np.add.at(m, (np.repeat(np.arange(n_out), idx.shape[1]), idx.ravel()), w.ravel())
    return m


def _resize_axis(x: np.ndarray, axis: int, n_out: int, antialias: bool) -> np.ndarray:
    """Resize ``x`` along its last (``axis=-1``) or second-to-last (``axis=-2``) axis: a weighted sum
    of a few gathered columns / rows (no dense matrix, no transposes; in place after the first)."""
    n_in = x.shape[axis]
    if n_in == n_out:
        return x
    idx, w = _taps(n_in, n_out, antialias)
    w = w.astype(x.dtype)
    shape = list(x.shape)
    shape[axis] = n_out
    out, tmp = np.empty(shape, x.dtype), np.empty(shape, x.dtype)
    for t in range(idx.shape[1]):
        np.take(x, idx[:, t], axis=axis, out=tmp if t else out)
        wt = w[:, t] if axis == -1 else w[:, t, None]
        if t:
            tmp *= wt
            out += tmp
        else:
            out *= wt
    return out


def resize_bilinear(x: np.ndarray, size: tuple[int, int], antialias: bool = False) -> np.ndarray:
    """``(..., H, W)`` → ``(..., *size)`` float32, as ``F.interpolate(mode="bilinear",
    align_corners=False, antialias=antialias)``. kizu passes ``antialias=True`` only when an axis
    shrinks (``preprocess._bilinear``); torch then anti-aliases both axes, and so does this."""
    x = np.asarray(x, dtype=np.float32)
    h, w = int(size[0]), int(size[1])
    if x.shape[-2:] == (h, w):
        return x
    return _resize_axis(_resize_axis(x, -1, w, antialias), -2, h, antialias)


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(C, H, W)`` → ``(C, *size)``, bilinear, anti-aliased when an axis shrinks."""
    if image.shape[1:] == tuple(size):
        return image
    shrink = size[0] < image.shape[1] or size[1] < image.shape[2]
    return resize_bilinear(image, size, antialias=shrink)


def resize_maps(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(N, h, w)`` → ``(N, *size)`` bilinear, no anti-aliasing (maps are upsampled back)."""
    return resize_bilinear(maps, size, antialias=False)


def adaptive_avg_pool2d(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(..., H, W)`` → ``(..., *size)`` with torch's windows [floor(i·n/g), ceil((i+1)·n/g)).
    Sums from float64 cumulative sums; the input's float dtype comes back."""
    x = np.asarray(x)
    dt = x.dtype if x.dtype in (np.float32, np.float64) else np.float64
    out = x.astype(np.float64)
    for axis, g in ((x.ndim - 2, int(size[0])), (x.ndim - 1, int(size[1]))):
        n = out.shape[axis]
        if n == g:
            continue
        i = np.arange(g)
        a, b = (i * n) // g, -(-((i + 1) * n) // g)
        c = np.concatenate([np.zeros_like(np.take(out, [0], axis=axis)), np.cumsum(out, axis=axis)], axis=axis)
        out = (np.take(c, b, axis=axis) - np.take(c, a, axis=axis))
        shape = [1] * out.ndim
        shape[axis] = g
        out = out / (b - a).reshape(shape)
    return out.astype(dt)
