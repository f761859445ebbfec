"""Reduce per-pixel anomaly maps to one score per image. Higher = more anomalous.

``mean``  the seed's image MSE (mean of the squared-error map).
``max``   maximum of the Gaussian-smoothed map: finds small defects a mean dilutes.
``topk``  mean of the top ``k`` fraction of pixels of the smoothed map: a compromise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

REDUCERS = ("mean", "max", "topk")


def smooth_maps(maps: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-smooth each map of ``(N, H, W)`` over H and W (sigma in pixels; 0 = unchanged)."""
    maps = np.asarray(maps, dtype=np.float32)
    if sigma <= 0:
        return maps
    return gaussian_filter(maps, sigma=(0, sigma, sigma), mode="nearest").astype(np.float32)


def reduce_maps(maps: np.ndarray, reducer: str = "mean", *, sigma: float = 0.0, topk: float = 0.01) -> np.ndarray:
    """``(N, H, W)`` maps → ``(N,)`` float64 image scores."""
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim != 3:
        raise ValueError(f"maps must be (N, H, W), got shape {maps.shape}")
    if reducer == "mean":
        return maps.reshape(len(maps), -1).mean(axis=1, dtype=np.float64)
    flat = smooth_maps(maps, sigma).reshape(len(maps), -1)
    if reducer == "max":
        return flat.max(axis=1).astype(np.float64)
    if reducer == "topk":
        if not 0 < topk <= 1:
            raise ValueError(f"topk must be a fraction in (0, 1], not {topk}")
        k = max(1, int(round(topk * flat.shape[1])))
        return np.sort(flat, axis=1)[:, -k:].mean(axis=1, dtype=np.float64)
    raise ValueError(f"unknown reducer {reducer!r}; choose one of {REDUCERS}")


@dataclass(frozen=True)
class ScoreRule:
    """How a model turns maps into image scores; stored in model.json."""

    reducer: str = "mean"
    sigma: float = 0.0  # smoothing (px) applied to maps before max/topk and for display
    topk: float = 0.01

    def __post_init__(self):
        if self.reducer not in REDUCERS:
            raise ValueError(f"unknown reducer {self.reducer!r}; choose one of {REDUCERS}")

    def __call__(self, maps: np.ndarray) -> np.ndarray:
        return reduce_maps(maps, self.reducer, sigma=self.sigma, topk=self.topk)

    def to_json(self) -> dict:
        return asdict(self)
