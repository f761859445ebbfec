"""Defect regions: connected components of a thresholded anomaly map, as boxes an operator can see."""

from __future__ import annotations

import numpy as np

from ..ops.labels import label_regions

#: a box is at least this many px a side, or this share of the image's shorter side if larger
MIN_BOX_PX, MIN_BOX_SHARE = 8, 0.04


def find_regions(anomaly_map: np.ndarray, threshold: float, *, max_regions: int = 20) -> list[dict]:
    """``(H, W)`` map → regions where it exceeds ``threshold``, largest peak first.

    Each region: ``{"x", "y", "width", "height"}`` (bounding box, px, at least ``min_box`` a side,
    centred on the region and kept inside the image), ``"area"`` (px above the threshold) and
    ``"peak"`` (the map's maximum inside it).
    """
    if not np.isfinite(threshold):
        return []
    anomaly_map = np.asarray(anomaly_map, dtype=np.float32)
    mask = anomaly_map > threshold
    if not mask.any():
        return []
    found = label_regions(mask, anomaly_map)
    out = [_region(box, area, peak, anomaly_map.shape)
           for box, area, peak in zip(found["bbox"], found["area"], found["max"])]
    out.sort(key=lambda d: -d["peak"])
    return out[:max_regions]


def peak_region(anomaly_map: np.ndarray) -> list[dict]:
    """The one region around the map's maximum, for an image flagged by a whole-image score whose
    map has no pixel above the pixel threshold: the connected pixels above half-way between the
    map's median and its maximum that include the maximum."""
    anomaly_map = np.asarray(anomaly_map, dtype=np.float32)
    top, middle = float(anomaly_map.max()), float(np.median(anomaly_map))
    if not top > middle:
        return []
    found = label_regions(anomaly_map > middle + 0.5 * (top - middle), anomaly_map)
    k = found["labels"][np.unravel_index(int(anomaly_map.argmax()), anomaly_map.shape)] - 1
    return [_region(found["bbox"][k], found["area"][k], found["max"][k], anomaly_map.shape)]


def min_box(shape: tuple[int, int]) -> int:
    """The smallest box side (px) for an image of ``shape``."""
    return min(max(MIN_BOX_PX, round(MIN_BOX_SHARE * min(shape))), *shape)


def _region(box, area: int, peak: float, shape: tuple[int, int]) -> dict:
    y0, x0, y1, x1 = (int(v) for v in box)
    side = min_box(shape)
    y0, y1 = _widen(y0, y1, side, shape[0])
    x0, x1 = _widen(x0, x1, side, shape[1])
    return {"x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0, "area": int(area), "peak": float(peak)}


def _widen(lo: int, hi: int, side: int, size: int) -> tuple[int, int]:
    """``[lo, hi)`` widened to at least ``side`` around its centre, inside ``[0, size)``."""
    if hi - lo >= side:
        return lo, hi
    lo = max(0, min((lo + hi - side) // 2, size - side))
    return lo, lo + side
