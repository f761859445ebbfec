"""What inspection returns: a ``Prediction`` of a batch (raw arrays at the model's working
resolution) and, at the edge, one ``Verdict`` per image (its map at the image's own resolution and
the defect regions on it)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..ops.resize import resize_maps
from ..scoring.regions import find_regions, peak_region


@dataclass(frozen=True)
class Prediction:
    """A batch of ``N`` inspected images.

    ``scores`` ``(N,)`` raw anomaly scores (higher = more anomalous; units depend on the detector);
    ``p_values`` ``(N,)`` conformal p-values against the calibration good images; ``defective``
    ``(N,)`` bool, score above the threshold; ``normalized`` ``(N,)`` 0–1 scores for people (0.5 at
    the threshold); ``maps`` ``(N, h, w)`` float32 display maps at the model's working resolution;
    ``input_shapes``: each image's ``(H, W)``; ``pixel_threshold``: the display-map level regions
    are drawn at; ``turned``: which images were turned a quarter to the model's orientation.
    """

    scores: np.ndarray
    p_values: np.ndarray
    defective: np.ndarray
    normalized: np.ndarray
    maps: np.ndarray
    input_shapes: list[tuple[int, int]]
    pixel_threshold: float
    #: per image: turned a quarter before inspection (``Preprocessor.orient``), its map turned back here
    turned: list[bool] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.scores)


@dataclass
class Verdict:
    """The inspection result for one image."""

    score: float  #: raw anomaly score (higher = more anomalous; units depend on the detector)
    p_value: float  #: conformal p-value against the calibration good images, in (0, 1]
    defective: bool  #: score above the threshold (⟺ p <= alpha under the conformal rule)
    normalized: float  #: 0–1 score for people, 0.5 at the threshold (never replaces the p-value)
    anomaly_map: np.ndarray = field(repr=False)  #: (H, W) float32 at the input's resolution
    regions: list[dict] = field(default_factory=list)  #: bounding boxes where the map exceeds the pixel threshold
    path: str | None = None


def verdicts(prediction: Prediction, paths: list | None = None) -> list[Verdict]:
    """One ``Verdict`` per image: its map resized to the image's own size and, for a flagged image,
    the regions above the pixel threshold (or, flagged by a whole-image score, the region around
    the map's peak)."""
    paths = list(paths) if paths is not None else [None] * len(prediction)
    out = []
    for i, shape in enumerate(prediction.input_shapes):
        m = _input_map(prediction.maps[i], shape, bool(prediction.turned and prediction.turned[i]))
        defective = bool(prediction.defective[i])
        regions = _regions(m, prediction.pixel_threshold) if defective else []
        out.append(Verdict(float(prediction.scores[i]), float(prediction.p_values[i]), defective,
                           float(prediction.normalized[i]), m, regions, None if paths[i] is None else str(paths[i])))
    return out


def _input_map(display: np.ndarray, shape: tuple[int, int], turned: bool) -> np.ndarray:
    """A display map ``(h, w)`` back at its input's ``shape`` (and orientation)."""
    if not turned:
        return resize_maps(display[None], shape)[0]
    return np.ascontiguousarray(np.rot90(resize_maps(display[None], shape[::-1])[0], -1))


def _regions(anomaly_map: np.ndarray, pixel_threshold: float) -> list[dict]:
    # flagged by a whole-image score with no pixel above the threshold: show where the map peaks
    return find_regions(anomaly_map, pixel_threshold) or peak_region(anomaly_map)
