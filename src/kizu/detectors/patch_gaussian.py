"""``patch-gaussian`` — the PaDiM idea without pretrained weights (or with EfficientNet-Lite0).

Local feature maps (:mod:`._components.features`; by default raw ``patch`` × ``patch`` = 9 × 9 pixel
neighbourhoods reduced to ``feature_dim`` = 32 by PCA; ``stages`` adds coarser pyramid levels) are
computed on a grid of at most ``max_grid`` cells a side. Each grid position gets a Gaussian fitted to the good
images' feature vectors there — pooled with the ``pool``-cell neighbourhood (``pool=1``: 3×3
positions, 9 × n samples), which tolerates small shifts and steadies the estimate. The covariance
is shrunk by Ledoit-Wolf per position (``shrinkage="ledoit-wolf"``, or a fixed intensity in [0, 1])
and regularised by ``eps`` × the mean feature variance times I, so positions where the good images
never vary stay invertible. A location's anomaly is its Mahalanobis distance (square root of the
quadratic form); the grid map is resized bilinearly to the input size and optionally smoothed
(``sigma`` px). The image score is left to :mod:`kizu.scoring` (max of the smoothed map).

Memory: mean (h, w, D) and precision (h, w, D, D) float32 — with the defaults (D ≤ 32 after the
``feature_dim`` PCA, grid ≤ 64×64) at most 17 MB. The model is tied to the training image size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ._components.features import BACKBONES, LocalFeatures
from .base import Options, ProgressFn, as_image_batch, option
from .patch_base import GridMapDetector
from .registry import register

#: default pyramid levels for the "pixels" backbone: one level of large (``patch`` = 9) patches. A
#: Gaussian per position needs a large neighbourhood to see shape (docs/detectors.md).
PIXEL_STAGES = (0,)


def _offsets(pool: int):
    return [(dy, dx) for dy in range(-pool, pool + 1) for dx in range(-pool, pool + 1)]


def _slices(h: int, w: int, dy: int, dx: int):
    """(target, source) slices: position p gets the sample at p + (dy, dx) when that is inside."""
    ty = slice(max(0, -dy), h - max(0, dy))
    tx = slice(max(0, -dx), w - max(0, dx))
    sy = slice(max(0, dy), h - max(0, -dy))
    sx = slice(max(0, dx), w - max(0, -dx))
    return (ty, tx), (sy, sx)


def fit_position_gaussians(
    feats: np.ndarray, *, pool: int = 1, shrinkage: str | float = "ledoit-wolf", eps: float = 0.01
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Per-position mean ``(h, w, D)`` and precision ``(h, w, D, D)`` (float32) of ``(N, D, h, w)``."""
    x = np.ascontiguousarray(np.asarray(feats, dtype=np.float64).transpose(0, 2, 3, 1))  # (N, h, w, D)
    n, h, w, d = x.shape
    s1 = np.zeros((h, w, d))
    cnt = np.zeros((h, w))
    for dy, dx in _offsets(pool):
        (ty, tx), (sy, sx) = _slices(h, w, dy, dx)
        s1[ty, tx] += x[:, sy, sx].sum(axis=0)
        cnt[ty, tx] += n
    mean = s1 / cnt[..., None]
    s2 = np.zeros((h, w, d, d))
    s4 = np.zeros((h, w))
    for dy, dx in _offsets(pool):
        (ty, tx), (sy, sx) = _slices(h, w, dy, dx)
        c = x[:, sy, sx] - mean[None, ty, tx]
        s2[ty, tx] += np.einsum("nhwd,nhwe->hwde", c, c)
        s4[ty, tx] += (np.einsum("nhwd,nhwd->nhw", c, c) ** 2).sum(axis=0)
    m = cnt
    S = s2 / m[..., None, None]  # biased covariance, as Ledoit-Wolf defines it
    mu = np.trace(S, axis1=-2, axis2=-1) / d
    if shrinkage == "ledoit-wolf":
        fro2 = np.einsum("hwde,hwde->hw", S, S)
        delta = fro2 / d - mu**2
        beta = np.clip((s4 / m - fro2) / (m * d), 0.0, None)
        with np.errstate(divide="ignore", invalid="ignore"):
            s = np.where(delta > 0, np.minimum(beta, delta) / delta, 1.0)
    else:
        s = np.full((h, w), float(shrinkage))
        if not 0.0 <= float(shrinkage) <= 1.0:
            raise ValueError(f"shrinkage must be 'ledoit-wolf' or a number in [0, 1], not {shrinkage!r}")
    unbiased = S * (m / np.maximum(m - 1, 1))[..., None, None]
    floor = eps * float(mu.mean()) if mu.mean() > 0 else eps
    eye = np.eye(d)
    cov = (1 - s)[..., None, None] * unbiased + (s * mu)[..., None, None] * eye + max(floor, 1e-12) * eye
    precision = np.linalg.inv(cov)
    precision = 0.5 * (precision + np.swapaxes(precision, -1, -2))
    info = {"mean_shrinkage": float(s.mean()), "samples_per_position": float(m.mean())}
    return mean.astype(np.float32), precision.astype(np.float32), info


@dataclass(frozen=True)
class PatchGaussianOptions(Options):
    """Hyper-parameters of ``patch-gaussian``."""

    backbone: str = option("pixels", f"feature extractor: one of {', '.join(BACKBONES)}")
    stages: list[int] | None = option(None, "network stages (or pixel pyramid levels) whose features are used")
    feature_dim: int | None = option(32, "PCA dimensions of the features (None = all)")
    pool: int = option(1, "each position's Gaussian pools the samples of this many cells around it")
    shrinkage: str | float = option("ledoit-wolf", "covariance shrinkage: 'ledoit-wolf' or a number in [0, 1]")
    eps: float = option(0.01, "covariance floor, as a share of the mean feature variance")
    sigma: float = option(0.0, "Gaussian smoothing of the detector's own map, in input px (0 = none)")
    patch: int = option(9, "pixels backbone: neighbourhood (cells) of each feature")
    center: bool = option(False, "pixels backbone: remove each patch's mean")
    max_grid: int = option(64, "largest feature grid, in cells a side")
    input_size: int = option(224, "networks: the image's short side is resized to this many px")

    def __post_init__(self):
        if self.pool < 0:
            raise ValueError(f"pool must be >= 0, not {self.pool}")
        if self.eps < 0 or self.sigma < 0:
            raise ValueError("eps and sigma must be >= 0")
        if isinstance(self.shrinkage, str) and self.shrinkage != "ledoit-wolf":
            raise ValueError(f"shrinkage must be 'ledoit-wolf' or a number in [0, 1], not {self.shrinkage!r}")
        self._set("stages", None if self.stages is None else [int(v) for v in self.stages])
        self._set("feature_dim", None if self.feature_dim is None else int(self.feature_dim))
        self._set("shrinkage", self.shrinkage if isinstance(self.shrinkage, str) else float(self.shrinkage))
        for name in ("pool", "patch", "max_grid", "input_size"):
            self._set(name, int(getattr(self, name)))
        self._set("eps", float(self.eps))
        self._set("sigma", float(self.sigma))
        self._set("center", bool(self.center))


@register
class PatchGaussianDetector(GridMapDetector):
    """A Gaussian per grid position over local features; map = Mahalanobis distance."""

    name = "patch-gaussian"
    Options = PatchGaussianOptions

    def __init__(self, *, device: str = "auto", **options: Any):
        super().__init__(device=device, **options)
        self.features = self._make_features()
        self._mean: np.ndarray | None = None
        self._precision: np.ndarray | None = None

    def _make_features(self) -> LocalFeatures:
        o = self.options
        stages = o.stages
        if stages is None and o.backbone == "pixels":
            stages = list(PIXEL_STAGES)
        return LocalFeatures(
            backbone=o.backbone, stages=stages, patch=o.patch, max_grid=o.max_grid,
            center=o.center, dim=o.feature_dim, input_size=o.input_size, device=self.torch_device,
        )

    def fit(self, images, *, seed: int | None = None, progress: ProgressFn | None = None) -> "PatchGaussianDetector":
        x = as_image_batch(images)
        if len(x) < 2:
            raise ValueError("need at least 2 good images")
        seed = 0 if seed is None else int(seed)
        self.features = self._make_features().fit(x, seed=seed)
        if progress:
            progress(1, 2, {})
        feats, _ = self.features(x)
        o = self.options
        self._mean, self._precision, info = fit_position_gaussians(
            feats, pool=o.pool, shrinkage=o.shrinkage, eps=o.eps
        )
        self.history = {k: [v] for k, v in info.items()}
        if progress:
            progress(2, 2, info)
        return self

    def grid_maps(self, images, batch_size: int = 64) -> np.ndarray:
        """``(N, h, w)`` Mahalanobis distances on the feature grid (before resizing)."""
        if self._mean is None:
            raise RuntimeError("patch-gaussian detector is not fitted")
        x = as_image_batch(images)
        feats, _ = self.features(x)
        if feats.shape[-2:] != self._mean.shape[:2]:
            raise ValueError(
                f"fitted on a {self._mean.shape[0]}x{self._mean.shape[1]} feature grid, these images give "
                f"{feats.shape[-2]}x{feats.shape[-1]}: patch-gaussian needs the training image size"
            )
        mean = torch.from_numpy(self._mean)
        prec = torch.from_numpy(self._precision)
        out = np.empty((len(x),) + self._mean.shape[:2], dtype=np.float32)
        with torch.no_grad():
            for i in range(0, len(x), batch_size):
                f = torch.from_numpy(np.ascontiguousarray(feats[i : i + batch_size])).permute(0, 2, 3, 1) - mean
                q = torch.einsum("nhwd,hwde,nhwe->nhw", f, prec, f)
                out[i : i + len(f)] = q.clamp_min(0.0).sqrt().numpy()
        return out

    def state_dict(self) -> dict[str, np.ndarray]:
        if self._mean is None:
            raise RuntimeError("patch-gaussian detector is not fitted")
        state = {f"features.{k}": v for k, v in self.features.state_dict().items()}
        state["mean"] = self._mean
        state["precision"] = self._precision
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.features = self._make_features()
        self.features.load_state_dict({k[9:]: v for k, v in state.items() if k.startswith("features.")})
        self._mean = np.ascontiguousarray(state["mean"], dtype=np.float32)
        self._precision = np.ascontiguousarray(state["precision"], dtype=np.float32)
