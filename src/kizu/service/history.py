"""Recent inspections kept in memory (bounded by count and bytes) for overlays and reviews."""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

#: overlays are drawn about 460 px wide: maps of larger images are kept subsampled to this side
MAP_SIDE = 1024


@dataclass
class InspectionRecord:
    """One inspected upload: its bytes (for reviews and the overlay), the result sent to the client
    and its anomaly map, subsampled by ``stride`` for large images."""

    id: str
    name: str
    data: bytes
    suffix: str  #: file suffix of the upload's format (".png", ...)
    result: dict  #: the JSON result sent to the client
    anomaly_map: np.ndarray  #: float16, subsampled by ``stride``
    stride: int
    pixel_threshold: float
    audit: bool
    review: str | None = None  #: "good" / "defective" once reviewed
    saved: list[str] = field(default_factory=list)  #: review files written for it
    overlay: bytes | None = None  #: rendered once, on first request

    @property
    def nbytes(self) -> int:
        return len(self.data) + self.anomaly_map.nbytes + len(self.overlay or b"")


def map_stride(shape: tuple[int, ...]) -> int:
    """Subsampling step that brings the longer side to at most ``MAP_SIDE``."""
    return max(1, math.ceil(max(shape) / MAP_SIDE))


def small_map(anomaly_map: np.ndarray) -> tuple[np.ndarray, int]:
    """The map as kept in the history: float16, subsampled; and the step."""
    s = map_stride(anomaly_map.shape)
    return np.ascontiguousarray(anomaly_map[::s, ::s], dtype=np.float16), s


def scaled_regions(regions: list[dict], stride: int) -> list[dict]:
    """Region boxes in the coordinates of a map subsampled by ``stride``."""
    if stride == 1:
        return regions
    return [{**r, "x": r["x"] // stride, "y": r["y"] // stride, "width": max(1, r["width"] // stride),
             "height": max(1, r["height"] // stride)} for r in regions]


class History:
    """The last ``max_items`` records, fewer when together they pass ``max_bytes`` (oldest go first)."""

    def __init__(self, max_items: int = 200, max_bytes: int = 512 << 20):
        self.max_items, self.max_bytes = max_items, max_bytes
        self._records: OrderedDict[str, InspectionRecord] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._records)

    def add(self, rec: InspectionRecord) -> None:
        with self._lock:
            self._records[rec.id] = rec
            self._bytes += rec.nbytes
            while len(self._records) > 1 and (len(self._records) > self.max_items or self._bytes > self.max_bytes):
                _, old = self._records.popitem(last=False)
                self._bytes -= old.nbytes

    def get(self, rec_id: str) -> InspectionRecord | None:
        with self._lock:
            return self._records.get(rec_id)

    def set_overlay(self, rec: InspectionRecord, png: bytes) -> None:
        """Cache a rendered overlay, counting its bytes."""
        with self._lock:
            if rec.overlay is None and rec.id in self._records:
                rec.overlay = png
                self._bytes += len(png)
