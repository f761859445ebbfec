"""The runtime interface, and tiling around any runtime's tensor part."""

from __future__ import annotations

from typing import Callable, Protocol

import numpy as np

from ..ops.tiling import extract_tiles, stitch_maps


class Runtime(Protocol):
    """Turns preprocessed images into detector maps."""

    #: True when ``maps`` also returns the detector's own image scores (then the score rule keeps them)
    own_score: bool

    def maps(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``(N, C, H, W)`` float32 → ``(N, H, W)`` float32 maps and ``(N,)`` own scores (or None)."""
        ...


def tiled_maps(part: Callable[[np.ndarray], np.ndarray], images: np.ndarray, tile: int | None,
               stride: int | None) -> np.ndarray:
    """``part``'s maps of ``(N, C, H, W)`` images; with ``tile`` it sees overlapping ``tile``-px tiles
    at ``stride`` and their maps are stitched back (overlaps averaged)."""
    n, _, h, w = images.shape
    if n == 0:
        return np.zeros((0, h, w), np.float32)
    if tile is None:
        return part(images)
    return stitch_maps(part(extract_tiles(images, tile, stride)), (h, w), tile, stride)
