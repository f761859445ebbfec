"""What the patch detectors (``patch-gaussian``, ``patch-knn``) share: an anomaly map computed on a
feature grid (``grid_maps``), resized bilinearly to the input and smoothed with ``sigma`` px."""

from __future__ import annotations

from abc import abstractmethod

import numpy as np

from ..features import as_image_batch, upsample_maps
from ..scoring import smooth_maps
from .base import Detector


class GridMapDetector(Detector):
    """A detector whose map lives on a feature grid; subclasses implement ``grid_maps``."""

    @abstractmethod
    def grid_maps(self, images: np.ndarray) -> np.ndarray:
        """``(N, C, H, W)`` → ``(N, h, w)`` float32 anomaly on the feature grid."""

    def anomaly_maps(self, images) -> np.ndarray:
        x = as_image_batch(images)
        return self._input_maps(self.grid_maps(x), x.shape[-2:])

    def _input_maps(self, grid_maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """``(N, h, w)`` grid maps → ``(N, H, W)`` at the input size, smoothed with ``sigma`` px."""
        return smooth_maps(upsample_maps(grid_maps, size), self.params["sigma"])
