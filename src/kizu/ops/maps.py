"""Smoothing anomaly maps and taking their peaks."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter


def smooth_maps(maps: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-smooth each map of ``(N, H, W)`` over H and W (sigma in pixels; 0 = unchanged)."""
    maps = np.asarray(maps, dtype=np.float32)
    if sigma <= 0:
        return maps
    return gaussian_filter(maps, sigma=(0, sigma, sigma), mode="nearest").astype(np.float32)


def map_peaks(maps: np.ndarray) -> np.ndarray:
    """``(N, H, W)`` maps → ``(N,)`` float64 maxima."""
    return np.asarray(maps).reshape(len(maps), -1).max(axis=1).astype(np.float64) if len(maps) else np.zeros(0)
