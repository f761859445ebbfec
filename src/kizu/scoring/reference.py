"""Scores relative to similar good images, for training sets of several kinds of good image.

When the good images are of two or more kinds (two surfaces, two product variants, two lighting
set-ups), a detector's scores of good images differ by kind: a stochastic surface scores higher
than a woven one everywhere. One threshold then flags the busy kind's faint defects late and the
quiet kind's early, and image AUROC over the mixed set drops below each kind's own.

``ScoreReference`` rescales each image's score by how high its own kind scores: it compares
``image_descriptors`` (a small, cheap summary of what an image shows: brightness, contrast and
how its detail is spread over scales) with those of a reference set of good images scored as
unseen ones — training uses its calibration images — and divides by the mean
score of the ``k`` most similar ones. The calibration scores themselves are adjusted with each
image left out of its own neighbours (``own_factors``), so they stay exchangeable with new images'
and the conformal threshold keeps its meaning. How much of that local mean is used is learned
from the reference set itself (``weight`` in [0, 1]): each reference image's score is predicted
from its ``k`` neighbours without itself; ``weight`` is the share of the score variance those
predictions explain (R², clipped to [0, 1]). On a set of one kind the neighbours predict nothing
(R² <= 0) and the scores are left exactly as they are; on two kinds they predict most of it.

    ref = ScoreReference.fit(descriptors, scores)     # (M, D), (M,) from good images
    adjusted = ref.adjust(scores_new, descriptors_new)  # (N,) → (N,)

``adjust`` multiplies each score by ``global_mean / ((1 - weight) · global_mean + weight · local_mean)``
so a weight of 0 leaves scores unchanged and the units stay those of the score rule.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from ..ops.resize import adaptive_avg_pool2d
from .terms import HeldOut, Scored, ScoreTerm

#: neighbours whose mean score is an image's local reference
REFERENCE_K = 8
#: radial frequency bands of the spectrum part of the descriptor (log-spaced, cycles per pixel)
SPECTRUM_BANDS = 6
#: larger images are area-averaged to at most this many pixels a side before they are described
SPECTRUM_MAX_SIDE = 256


def image_descriptors(images: np.ndarray) -> np.ndarray:
    """``(N, C, H, W)`` in [0, 1] → ``(N, 2C + SPECTRUM_BANDS)`` float64: per channel mean and
    standard deviation, and the grey image's share of spectral power in ``SPECTRUM_BANDS`` radial
    bands, all of the image area-averaged to at most ``SPECTRUM_MAX_SIDE`` px a side. Cheap: one
    small FFT per image. No layout: a shifted or rotated part is the same kind."""
    x = np.asarray(images, dtype=np.float32)
    if x.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {x.shape}")
    n, c, h, w = x.shape
    if max(h, w) > SPECTRUM_MAX_SIDE:
        f = SPECTRUM_MAX_SIDE / max(h, w)
        h, w = max(1, round(h * f)), max(1, round(w * f))
        x = adaptive_avg_pool2d(x, (h, w))
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    edges = np.geomspace(1.0 / max(h, w), 0.5 * np.sqrt(2) + 1e-9, SPECTRUM_BANDS + 1)
    edges[0] = 1e-12  # the lowest band takes every non-zero frequency below its top
    band = np.digitize(np.hypot(fy, fx), edges) - 1  # -1 for the DC term, SPECTRUM_BANDS past the corner
    # image by image: a batched reduction can round differently, and an image's descriptor (so its
    # score reference's neighbours) must not depend on the batch it came in
    return np.stack([_descriptor(image, band) for image in x]) if n else np.zeros((0, 2 * c + SPECTRUM_BANDS))


def _descriptor(image: np.ndarray, band: np.ndarray) -> np.ndarray:
    """One ``(C, h, w)`` image's descriptor (``image_descriptors``); ``band``: each frequency's band."""
    flat = image.reshape(len(image), -1)
    stats = np.concatenate([flat.mean(axis=1, dtype=np.float64), flat.std(axis=1, dtype=np.float64)])
    grey = image.mean(axis=0, dtype=np.float64)
    power = np.abs(np.fft.rfft2(grey - grey.mean())) ** 2
    total = power.sum() + 1e-12
    return np.concatenate([stats, [power[band == b].sum() / total for b in range(SPECTRUM_BANDS)]])


def _distances(query: np.ndarray, ref: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """``(N, M)`` Euclidean distances after dividing each descriptor dimension by ``spread``, each
    row computed on its own (element by element, no matrix product whose rounding depends on how
    many rows there are), so an image's neighbours do not depend on the batch it came in: equal
    descriptors are exactly 0 apart and their tie is broken by index."""
    q, r = query / spread, ref / spread
    return np.sqrt(((q[:, None, :] - r[None, :, :]) ** 2).sum(axis=2))


def _nearest(dist: np.ndarray, k: int) -> np.ndarray:
    """``(N, k)`` column indices of the ``k`` smallest entries of each row (stable: ties by index)."""
    return np.argsort(dist, axis=1, kind="stable")[:, :k]


def _loo_local_means(desc: np.ndarray, scores: np.ndarray, spread: np.ndarray, k: int) -> np.ndarray:
    """``(M,)`` mean score of each reference image's ``k`` nearest others (itself left out)."""
    dist = _distances(desc, desc, spread)
    np.fill_diagonal(dist, np.inf)
    return scores[_nearest(dist, min(k, len(scores) - 1))].mean(axis=1)


def neighbour_weight(scores: np.ndarray, local_means: np.ndarray) -> float:
    """Share of the variance of ``scores`` explained by ``local_means`` (leave-one-out predictions):
    R² clipped to [0, 1]."""
    scores = np.asarray(scores, dtype=np.float64)
    total = float(((scores - scores.mean()) ** 2).sum())
    if not total > 0:
        return 0.0
    r2 = 1.0 - float(((scores - local_means) ** 2).sum()) / total
    return float(np.clip(r2, 0.0, 1.0))


@dataclass(frozen=True)
class ScoreReference:
    """Good images' descriptors ``(M, D)`` and scores ``(M,)``, and how much to trust neighbours."""

    descriptors: np.ndarray
    scores: np.ndarray
    spread: np.ndarray  # (D,) standard deviation of each descriptor dimension over the reference set
    weight: float
    k: int = REFERENCE_K

    @classmethod
    def fit(cls, descriptors: np.ndarray, scores: np.ndarray, k: int = REFERENCE_K) -> "ScoreReference":
        """From good images scored as unseen ones (``M >= 3``; fewer neighbours than ``k`` are fine)."""
        desc = np.asarray(descriptors, dtype=np.float64)
        scores = np.asarray(scores, dtype=np.float64)
        if desc.ndim != 2 or scores.shape != (len(desc),):
            raise ValueError(f"descriptors must be (M, D) and scores (M,), got {desc.shape} and {scores.shape}")
        if k < 1:
            raise ValueError(f"k must be >= 1, not {k}")
        # a floor, so a dimension that hardly varies (every image's contrast normalised, say)
        # does not blow rounding noise up into distances
        spread = np.maximum(desc.std(axis=0), 1e-3 * np.abs(desc.mean(axis=0)) + 1e-9)
        weight = 0.0
        if len(desc) >= 2 and np.all(np.isfinite(scores)) and scores.mean() > 0:
            weight = neighbour_weight(scores, _loo_local_means(desc, scores, spread, int(k)))
        return cls(desc, scores, spread, weight, int(k))

    def factors(self, descriptors: np.ndarray) -> np.ndarray:
        """``(N,)`` multipliers for the scores of new images with these descriptors (1 where weight is 0)."""
        desc = np.asarray(descriptors, dtype=np.float64)
        if self.weight <= 0 or len(desc) == 0:
            return np.ones(len(desc))
        dist = _distances(desc, self.descriptors, self.spread)
        return self._factors(self.scores[_nearest(dist, min(self.k, len(self.scores)))].mean(axis=1))

    def own_factors(self) -> np.ndarray:
        """``(M,)`` multipliers for the reference images' own scores, each image left out of its own
        neighbours — as a new image would be, so adjusted calibration scores stay exchangeable with
        adjusted test scores."""
        if self.weight <= 0:
            return np.ones(len(self.scores))
        return self._factors(_loo_local_means(self.descriptors, self.scores, self.spread, self.k))

    def _factors(self, local: np.ndarray) -> np.ndarray:
        overall = float(self.scores.mean())
        return overall / np.maximum((1.0 - self.weight) * overall + self.weight * local, 1e-12 * overall)

    def adjust(self, scores: np.ndarray, descriptors: np.ndarray) -> np.ndarray:
        """``(N,)`` scores → ``(N,)`` scores relative to their own kind of good image."""
        return np.asarray(scores, dtype=np.float64) * self.factors(descriptors)

    def to_json(self) -> dict:
        return {"descriptors": self.descriptors.tolist(), "scores": self.scores.tolist(),
                "spread": self.spread.tolist(), "weight": self.weight, "k": self.k}

    @classmethod
    def from_json(cls, data: dict) -> "ScoreReference":
        desc = np.asarray(data["descriptors"], dtype=np.float64)
        scores = np.asarray(data["scores"], dtype=np.float64)
        spread = np.asarray(data["spread"], dtype=np.float64)
        weight, k = float(data["weight"]), int(data["k"])
        if desc.ndim != 2 or scores.shape != (len(desc),) or spread.shape != (desc.shape[1],):
            raise ValueError("reference descriptors, scores and spread do not fit together")
        if not 0 <= weight <= 1 or k < 1 or not np.all(spread > 0):
            raise ValueError(f"invalid reference (weight {weight}, k {k})")
        return cls(desc, scores, spread, weight, k)


@dataclass(frozen=True)
class ReferenceTerm(ScoreTerm):
    """The score reference as a score term: each image's score relative to similar good images."""

    reference: ScoreReference
    kind = "reference"

    #: at least this many calibration images to fit a reference from
    MIN_IMAGES: ClassVar[int] = 3

    @classmethod
    def fit(cls, held: HeldOut, held_images: np.ndarray) -> tuple["ReferenceTerm", HeldOut]:
        """From the calibration images (``(N, C, H, W)``, scored as unseen in ``held``): the term, and
        their scores adjusted with each image left out of its own neighbours (``own_factors``)."""
        reference = ScoreReference.fit(image_descriptors(held_images), held.scores)
        return cls(reference), replace(held, scores=held.scores * reference.own_factors())

    def apply(self, scored: Scored, images: np.ndarray) -> Scored:
        if self.reference.weight <= 0:
            return scored
        return replace(scored, scores=self.reference.adjust(scored.scores, image_descriptors(images)))

    def to_json(self) -> dict:
        return self.reference.to_json()

    @classmethod
    def from_json(cls, data: dict) -> "ReferenceTerm":
        return cls(ScoreReference.from_json(data))
