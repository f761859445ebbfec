"""Defect regions: connected components of a thresholded anomaly map."""

from __future__ import annotations

import numpy as np
from skimage.measure import label, regionprops


def find_regions(anomaly_map: np.ndarray, threshold: float, *, min_area: int = 1, max_regions: int = 20) -> list[dict]:
    """``(H, W)`` map → regions where it exceeds ``threshold``, largest peak first.

    Each region: ``{"x", "y", "width", "height"}`` (bounding box, px), ``"area"`` (px) and
    ``"peak"`` (the map's maximum inside it).
    """
    if not np.isfinite(threshold):
        return []
    mask = np.asarray(anomaly_map) > threshold
    if not mask.any():
        return []
    lab = label(mask, connectivity=2)
    out = []
    for r in regionprops(lab, intensity_image=np.asarray(anomaly_map, dtype=np.float32)):
        if r.area < min_area:
            continue
        y0, x0, y1, x1 = r.bbox
        out.append({"x": int(x0), "y": int(y0), "width": int(x1 - x0), "height": int(y1 - y0),
                    "area": int(r.area), "peak": float(r.intensity_max)})
    out.sort(key=lambda d: -d["peak"])
    return out[:max_regions]
