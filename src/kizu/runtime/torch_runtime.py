"""The tensor part on the detector object itself (PyTorch where the detector has torch parts)."""

from __future__ import annotations

import numpy as np

from ..detectors.base import Detector
from .base import tiled_maps

#: images (or tiles) given to the detector at once
BATCH = 256


class TorchRuntime:
    """Maps of a fitted ``detector``; with ``tile`` the detector sees overlapping ``tile``-px tiles at
    ``tile_stride`` and their maps are stitched back (a detector's own whole-image score does not
    exist then: the stitched map is reduced instead)."""

    def __init__(self, detector: Detector, tile: int | None = None, tile_stride: int | None = None):
        self.detector = detector
        self.tile, self.tile_stride = tile, tile_stride
        self.own_score = detector.has_own_image_score and tile is None

    def maps(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if len(images) == 0:
            return tiled_maps(self._batched, images, None, None), (np.zeros(0) if self.own_score else None)
        return tiled_maps(self._batched, images, self.tile, self.tile_stride), self.own_scores(images)

    def own_scores(self, images: np.ndarray) -> np.ndarray | None:
        """The detector's own ``(N,)`` image scores where the model uses them, else None."""
        return self.detector.image_scores(images) if self.own_score else None

    def _batched(self, x: np.ndarray) -> np.ndarray:
        return np.concatenate([self.detector.anomaly_maps(x[i:i + BATCH]) for i in range(0, len(x), BATCH)])
