"""The tensor part on the detector object itself (PyTorch where the detector has torch parts)."""

from __future__ import annotations

import numpy as np

from ..detectors.base import Detector
from ..ops.tiling import extract_tiles, stitch_maps

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
        n, _, h, w = images.shape
        if n == 0:
            return np.zeros((0, h, w), np.float32), (np.zeros(0) if self.own_score else None)
        own = self.own_scores(images)
        if self.tile is None:
            return self._batched(images), own
        tiles = extract_tiles(images, self.tile, self.tile_stride)
        return stitch_maps(self._batched(tiles), (h, w), self.tile, self.tile_stride), own

    def own_scores(self, images: np.ndarray) -> np.ndarray | None:
        """The detector's own ``(N,)`` image scores where the model uses them, else None."""
        return self.detector.image_scores(images) if self.own_score else None

    def _batched(self, x: np.ndarray) -> np.ndarray:
        return np.concatenate([self.detector.anomaly_maps(x[i:i + BATCH]) for i in range(0, len(x), BATCH)])
