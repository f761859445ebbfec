"""Smoothing anomaly maps (Gaussian, scipy's ``mode="nearest"`` semantics) and taking their peaks.
numpy only: the same code runs after any runtime."""

from __future__ import annotations

import numpy as np


def gaussian_kernel(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """scipy's 1-D Gaussian weights ``(2r + 1,)`` float64, r = int(truncate · sigma + 0.5)."""
    r = int(truncate * float(sigma) + 0.5)
    x = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-0.5 / float(sigma) ** 2 * x * x)
    return k / k.sum()


def gaussian_filter(x: np.ndarray, sigma: float, truncate: float = 4.0) -> np.ndarray:
    """Gaussian smoothing of ``(..., H, W)`` over the last two axes, scipy's ``mode="nearest"``.

    dtype kept (float32 in → float32 out, as ``kizu.scoring.smooth_maps``, accumulated in float32;
    float64 stays float64); ``sigma <= 0`` returns the input. Separable: per axis the input is
    edge-padded by r = int(truncate·sigma + 0.5) and 2r + 1 shifted slices are summed in place.
    """
    x = np.asarray(x)
    if sigma <= 0:
        return x
    dt = x.dtype if x.dtype in (np.float32, np.float64) else np.float64
    k = gaussian_kernel(sigma, truncate).astype(dt)
    r = len(k) // 2
    out = x.astype(dt, copy=False)
    for axis in (-1, -2):
        n = out.shape[axis]
        pad = [(0, 0)] * out.ndim
        pad[axis] = (r, r)
        xp = np.pad(out, pad, mode="edge")
        acc, tmp = np.empty(out.shape, dt), np.empty(out.shape, dt)
        for t, wt in enumerate(k):
            sl = xp[..., t:t + n] if axis == -1 else xp[..., t:t + n, :]
            if t == 0:
                np.multiply(sl, wt, out=acc)
            else:
                np.multiply(sl, wt, out=tmp)
                acc += tmp
        out = acc
    return out


def smooth_maps(maps: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-smooth each map of ``(N, H, W)`` over H and W (sigma in pixels; 0 = unchanged)."""
    maps = np.asarray(maps, dtype=np.float32)
    return gaussian_filter(maps, sigma) if sigma > 0 else maps


def map_peaks(maps: np.ndarray) -> np.ndarray:
    """``(N, H, W)`` maps → ``(N,)`` float64 maxima."""
    return np.asarray(maps).reshape(len(maps), -1).max(axis=1).astype(np.float64) if len(maps) else np.zeros(0)
