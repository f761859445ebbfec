"""Score terms: the ordered steps that turn a detector's maps into image scores and display maps.

A model keeps its terms as a list — the score rule first, then optionally the score reference and
the golden template — and every image goes through ``apply`` of each in turn::

    scored = Scored.from_detector(maps, own_scores)    # (N, H, W) maps from the detector
    for term in terms:
        scored = term.apply(scored, images)            # images: the preprocessed batch

Calibration images take the same steps at training time: each term's ``fit`` turns the held-out
images' ``HeldOut`` record into the term and the record as new images would come out of it (each
image scored with statistics it is not part of), so calibration scores and new images' scores are
made by the same code.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np


@dataclass(frozen=True)
class Scored:
    """A batch of new images on its way through the terms.

    ``maps``: ``(N, H, W)`` raw detector maps; ``scores``: ``(N,)`` float64 image scores (the
    detector's own before the rule, if it has them; else None until the rule sets them);
    ``display``: ``(N, H, W)`` float32 maps shown to people (smoothed, with any template
    departures); ``peak_scale``: the rule's scale of display-map peaks where the image score is the
    display map's ``max+mean``, else None.
    """

    maps: np.ndarray
    scores: np.ndarray | None = None
    display: np.ndarray | None = None
    peak_scale: float | None = None

    @property
    def map_scale(self) -> float:
        """``peak_scale``, or 1: the units display-map changes are added in."""
        return self.peak_scale or 1.0


@dataclass(frozen=True)
class HeldOut:
    """Calibration images scored as unseen, on their way through the terms' ``fit``.

    ``scores`` ``(N,)`` float64; ``display`` ``(N, H, W)`` display maps (None when no later term
    needs them); ``peaks`` ``(N,)`` display-map peaks; ``scales`` ``(N,)`` the map scale of the
    model that scored each image (cross-calibration folds differ); ``peak_scaled``: the image score
    is the display map's ``max+mean``.
    """

    scores: np.ndarray
    display: np.ndarray | None
    peaks: np.ndarray
    scales: np.ndarray
    peak_scaled: bool

    def peaks_in_scale(self, scale: float) -> np.ndarray:
        """``(N,)`` display-map peaks in units of ``scale`` (the final model's map scale)."""
        return self.peaks / self.scales * scale


class ScoreTerm(ABC):
    """One step from detector maps to image scores. ``kind`` names it in model.json."""

    kind: ClassVar[str]

    @abstractmethod
    def apply(self, scored: Scored, images: np.ndarray) -> Scored:
        """The batch after this term (``images``: the preprocessed ``(N, C, H, W)`` batch)."""

    @abstractmethod
    def to_json(self) -> dict:
        """JSON-able parameters (``kind`` added by the model file)."""

    def arrays(self) -> dict[str, np.ndarray]:
        """Large fitted arrays, saved with the weights (none by default)."""
        return {}


def apply_terms(terms: list[ScoreTerm], scored: Scored, images: np.ndarray) -> Scored:
    """``scored`` through every term in order."""
    for term in terms:
        scored = term.apply(scored, images)
    return scored
