"""``patch-knn`` — the PatchCore idea without a training loop.

A memory bank of local feature vectors (:mod:`kizu.features`) from the good images, thinned by a
greedy k-center coreset (:mod:`kizu.coreset`). A location's anomaly is the mean Euclidean
distance of its feature vector to the ``k`` nearest vectors in the memory — wherever in whichever
good image they came from, so the score does not depend on position: shifted, rotated and textured
surfaces work. The grid map is resized bilinearly to the input size and optionally smoothed
(``sigma`` px); the image score is left to :mod:`kizu.scoring` (max of the smoothed map).

Options: ``backbone`` ("pixels" | "lite0" | "random"), ``stages``, ``patch``, ``center``,
``max_grid``, ``feature_dim``, ``input_size`` (see :class:`kizu.features.LocalFeatures`);
``k`` neighbours; memory size = ``memory_size`` if given, else ``coreset_fraction`` of all
training vectors, at most ``max_memory`` (k-center costs O(N · memory) — bounded on CPUs);
``proj_dim`` (projection used while choosing the coreset); ``matmul_dtype`` for the distance
products; ``sigma`` (Gaussian smoothing of the output map, input px; 0 = none).
"""

from __future__ import annotations

import math

import numpy as np

from ..coreset import MATMUL_DTYPES, kcenter_greedy, nn_distances
from ..features import LocalFeatures, as_image_batch, upsample_maps
from ..scoring import smooth_maps
from .base import Detector, ProgressFn
from .registry import register


@register
class PatchKNNDetector(Detector):
    """Nearest-neighbour distance to a coreset memory of good local features."""

    name = "patch-knn"

    def __init__(
        self,
        *,
        backbone: str = "pixels",
        stages: list[int] | None = None,
        k: int = 1,
        coreset_fraction: float = 0.1,
        memory_size: int | None = None,
        max_memory: int = 10000,
        proj_dim: int = 64,
        sigma: float = 0.0,
        patch: int = 3,
        center: bool = False,
        max_grid: int = 64,
        feature_dim: int | None = None,
        input_size: int = 224,
        matmul_dtype: str = "float32",
    ):
        if k < 1:
            raise ValueError(f"k must be >= 1, not {k}")
        if not 0 < coreset_fraction <= 1:
            raise ValueError(f"coreset_fraction must be in (0, 1], not {coreset_fraction}")
        if memory_size is not None and memory_size < 1:
            raise ValueError(f"memory_size must be None or >= 1, not {memory_size}")
        if matmul_dtype not in MATMUL_DTYPES:
            raise ValueError(f"matmul_dtype must be one of {tuple(MATMUL_DTYPES)}, not {matmul_dtype!r}")
        if sigma < 0:
            raise ValueError(f"sigma must be >= 0, not {sigma}")
        super().__init__(
            backbone=backbone,
            stages=None if stages is None else [int(s) for s in stages],
            k=int(k),
            coreset_fraction=float(coreset_fraction),
            memory_size=None if memory_size is None else int(memory_size),
            max_memory=int(max_memory),
            proj_dim=int(proj_dim),
            sigma=float(sigma),
            patch=int(patch),
            center=bool(center),
            max_grid=int(max_grid),
            feature_dim=None if feature_dim is None else int(feature_dim),
            input_size=int(input_size),
            matmul_dtype=matmul_dtype,
        )
        self.features = self._make_features()
        self._memory: np.ndarray | None = None

    def _make_features(self) -> LocalFeatures:
        p = self.params
        return LocalFeatures(
            backbone=p["backbone"], stages=p["stages"], patch=p["patch"], max_grid=p["max_grid"],
            center=p["center"], dim=p["feature_dim"], input_size=p["input_size"],
        )

    def fit(self, images, *, seed: int | None = None, progress: ProgressFn | None = None) -> "PatchKNNDetector":
        x = as_image_batch(images)
        if len(x) == 0:
            raise ValueError("need at least one good image")
        seed = 0 if seed is None else int(seed)
        self.features = self._make_features().fit(x, seed=seed)
        if progress:
            progress(1, 3, {})
        feats, _ = self.features(x)
        vecs = feats.transpose(0, 2, 3, 1).reshape(-1, feats.shape[1])
        p = self.params
        n = p["memory_size"]
        if n is None:
            n = min(p["max_memory"], math.ceil(p["coreset_fraction"] * len(vecs)))
        if progress:
            progress(2, 3, {"patches": float(len(vecs)), "memory": float(min(n, len(vecs)))})
        idx = kcenter_greedy(vecs, n, seed=seed, proj_dim=p["proj_dim"])
        self._memory = np.ascontiguousarray(vecs[idx], dtype=np.float32)
        self.history = {"memory_size": [float(len(self._memory))], "patches": [float(len(vecs))]}
        if progress:
            progress(3, 3, {"memory": float(len(self._memory))})
        return self

    def grid_maps(self, images) -> np.ndarray:
        """``(N, h, w)`` k-NN distances on the feature grid (before resizing)."""
        if self._memory is None:
            raise RuntimeError("patch-knn detector is not fitted")
        feats, _ = self.features(as_image_batch(images))
        n, d, h, w = feats.shape
        vecs = feats.transpose(0, 2, 3, 1).reshape(-1, d)
        dist = nn_distances(vecs, self._memory, self.params["k"], matmul_dtype=self.params["matmul_dtype"])
        return dist.mean(axis=1).reshape(n, h, w).astype(np.float32)

    def anomaly_maps(self, images) -> np.ndarray:
        x = as_image_batch(images)
        maps = upsample_maps(self.grid_maps(x), x.shape[-2:])
        return smooth_maps(maps, self.params["sigma"])

    def state_dict(self) -> dict[str, np.ndarray]:
        if self._memory is None:
            raise RuntimeError("patch-knn detector is not fitted")
        state = {f"features.{k}": v for k, v in self.features.state_dict().items()}
        state["memory"] = self._memory
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.features = self._make_features()
        self.features.load_state_dict({k[9:]: v for k, v in state.items() if k.startswith("features.")})
        self._memory = np.ascontiguousarray(state["memory"], dtype=np.float32)
