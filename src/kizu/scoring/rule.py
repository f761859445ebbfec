"""Reduce per-pixel anomaly maps to one score per image. Higher = more anomalous.

``mean``  the seed's image MSE (mean of the squared-error map).
``max``   maximum of the Gaussian-smoothed map: finds small defects a mean dilutes.
``topk``  mean of the top ``k`` fraction of pixels of the smoothed map: a compromise.
``max+mean``  ``max / scale[0] + mean / scale[1]``: the peak finds small defects, the mean finds
          diffuse or whole-image changes (a wrong shape, a faint large stain) that no single
          location shows. The scales are the means of the two reductions over the model's own
          training images, mapped as unseen ones (``ScoreRule.fit``; ``Detector.training_maps``),
          so each term is about 1 on good images whatever the map's units. Means, not medians: on a
          training set of two kinds of surface a median jumps between the kinds with the sample's
          mix, and cross-calibration folds would get different scales. The scales come from the
          fitted images, never from hold-out calibration images, so that calibration stays exact.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from ..ops.maps import smooth_maps
from .terms import Scored, ScoreTerm

REDUCERS = ("mean", "max", "topk", "max+mean")
#: reducers whose scales are fitted on the training images
FITTED_REDUCERS = ("max+mean",)


def reduce_maps(maps: np.ndarray, reducer: str = "mean", *, sigma: float = 0.0, topk: float = 0.01,
                scale: tuple[float, float] | None = None, smoothed: np.ndarray | None = None) -> np.ndarray:
    """``(N, H, W)`` maps → ``(N,)`` float64 image scores (``scale`` only for ``max+mean``).
    ``smoothed``: the maps already smoothed with ``sigma`` (not smoothed again)."""
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim != 3:
        raise ValueError(f"maps must be (N, H, W), got shape {maps.shape}")
    if reducer == "max+mean":
        if scale is None:
            raise ValueError("reducer 'max+mean' needs its scales (ScoreRule.fit on training maps)")
        return (reduce_maps(maps, "max", sigma=sigma, smoothed=smoothed) / scale[0]
                + reduce_maps(maps, "mean") / scale[1])
    if reducer == "mean":
        return maps.reshape(len(maps), -1).mean(axis=1, dtype=np.float64)
    flat = (smooth_maps(maps, sigma) if smoothed is None else smoothed).reshape(len(maps), -1)
    if reducer == "max":
        return flat.max(axis=1).astype(np.float64)
    if reducer == "topk":
        if not 0 < topk <= 1:
            raise ValueError(f"topk must be a fraction in (0, 1], not {topk}")
        k = max(1, int(round(topk * flat.shape[1])))
        return np.sort(flat, axis=1)[:, -k:].mean(axis=1, dtype=np.float64)
    raise ValueError(f"unknown reducer {reducer!r}; choose one of {REDUCERS}")


@dataclass(frozen=True)
class ScoreRule:
    """How a model turns maps into image scores; stored in model.json."""

    reducer: str = "mean"
    sigma: float = 0.0  # smoothing (px) applied to maps before max/topk and for display
    topk: float = 0.01
    scale: tuple[float, float] | None = None  # max+mean: means of (max, mean) on training images

    def __post_init__(self):
        if self.reducer not in REDUCERS:
            raise ValueError(f"unknown reducer {self.reducer!r}; choose one of {REDUCERS}")
        if self.scale is not None:
            scale = tuple(float(v) for v in self.scale)
            if len(scale) != 2 or not all(np.isfinite(v) and v > 0 for v in scale):
                raise ValueError(f"scale must be two positive numbers, not {self.scale!r}")
            object.__setattr__(self, "scale", scale)

    @property
    def needs_fit(self) -> bool:
        return self.reducer in FITTED_REDUCERS

    def fit(self, train_maps: np.ndarray) -> "ScoreRule":
        """This rule with its scales set from ``(N, H, W)`` maps of the images the detector was fitted
        on (the rule itself when it has none to fit)."""
        if not self.needs_fit:
            return self
        scale = tuple(_positive_mean(reduce_maps(train_maps, r, sigma=self.sigma)) for r in ("max", "mean"))
        return replace(self, scale=scale)

    def __call__(self, maps: np.ndarray, smoothed: np.ndarray | None = None) -> np.ndarray:
        """``(N,)`` image scores of ``(N, H, W)`` maps (``smoothed``: them smoothed with ``sigma``)."""
        return reduce_maps(maps, self.reducer, sigma=self.sigma, topk=self.topk, scale=self.scale, smoothed=smoothed)

    @classmethod
    def from_json(cls, data: dict) -> "ScoreRule":
        return cls(str(data["reducer"]), float(data["sigma"]), float(data["topk"]), data.get("scale"))

    def to_json(self) -> dict:
        out = asdict(self)
        out["scale"] = None if self.scale is None else list(self.scale)
        return out


def _positive_mean(values: np.ndarray) -> float:
    """Mean of the finite ``values``; 1 if it is not positive (e.g. a memory holding every training
    patch maps its own images to 0)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    mean = float(values.mean()) if len(values) else 0.0
    return mean if mean > 0 else 1.0


@dataclass(frozen=True)
class RuleTerm(ScoreTerm):
    """The first score term: smooths the detector maps into display maps (once) and reduces them to
    image scores by ``rule`` — or keeps the detector's own image scores (``own_score``: e.g. MT's
    MD, which no map reduction reproduces)."""

    rule: ScoreRule
    own_score: bool = False
    kind = "rule"

    @property
    def peak_scale(self) -> float | None:
        """The rule's scale of display-map peaks where the image score is ``max+mean`` of the map."""
        r = self.rule
        return r.scale[0] if r.reducer == "max+mean" and r.scale and not self.own_score else None

    @property
    def map_scale(self) -> float:
        """``peak_scale``, or 1."""
        return self.peak_scale or 1.0

    def fit(self, training_maps: np.ndarray) -> "RuleTerm":
        """This term with the rule's scales set from maps of the fitted images (``ScoreRule.fit``)."""
        return replace(self, rule=self.rule.fit(training_maps))

    def apply(self, scored: Scored, images: np.ndarray) -> Scored:
        display = smooth_maps(scored.maps, self.rule.sigma)
        scores = scored.scores if self.own_score else self.rule(scored.maps, smoothed=display)
        return Scored(scored.maps, np.asarray(scores, dtype=np.float64), display, self.peak_scale)

    def to_json(self) -> dict:
        return {**self.rule.to_json(), "own_score": self.own_score}

    @classmethod
    def from_json(cls, data: dict) -> "RuleTerm":
        return cls(ScoreRule.from_json(data), bool(data.get("own_score", False)))
