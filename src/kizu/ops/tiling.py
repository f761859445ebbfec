"""Overlapping tiles for large images, so small defects are not resized away.

A 1024×1024 image inspected with 128-px tiles at stride 96 gives 11 × 11 tiles; each tile's map is
put back in place and overlaps are averaged.
"""

from __future__ import annotations

import numpy as np


def tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Start offsets covering ``[0, length)`` with windows of ``tile``; the last one ends at ``length``."""
    if tile >= length:
        return [0]
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return starts


def tile_grid(shape: tuple[int, int], tile: int, stride: int) -> list[tuple[int, int]]:
    """(y, x) top-left corners of the tiles of an ``(H, W)`` image."""
    h, w = shape
    return [(y, x) for y in tile_starts(h, tile, stride) for x in tile_starts(w, tile, stride)]


def extract_tiles(images: np.ndarray, tile: int, stride: int) -> np.ndarray:
    """``(N, C, H, W)`` → ``(N * T, C, tile, tile)`` (image-major order); H, W must be >= tile."""
    n, c, h, w = images.shape
    if h < tile or w < tile:
        raise ValueError(f"images of {w}x{h} px are smaller than the {tile}-px tile")
    grid = tile_grid((h, w), tile, stride)
    return np.stack([images[:, :, y:y + tile, x:x + tile] for y, x in grid], axis=1).reshape(-1, c, tile, tile)


def stitch_maps(tile_maps: np.ndarray, shape: tuple[int, int], tile: int, stride: int) -> np.ndarray:
    """``(N * T, tile, tile)`` tile maps → ``(N, H, W)``, averaging where tiles overlap."""
    grid = tile_grid(shape, tile, stride)
    t = len(grid)
    n = len(tile_maps) // t
    out = np.zeros((n, *shape), np.float32)
    count = np.zeros(shape, np.float32)
    maps = tile_maps.reshape(n, t, tile, tile)
    for k, (y, x) in enumerate(grid):
        out[:, y:y + tile, x:x + tile] += maps[:, k]
        count[y:y + tile, x:x + tile] += 1
    return out / count
