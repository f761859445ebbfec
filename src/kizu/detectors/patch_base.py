"""What the patch detectors (``patch-gaussian``, ``patch-knn``) share: an anomaly map computed on a
feature grid (``grid_maps``), resized bilinearly to the input and smoothed with ``sigma`` px, and a
compute device (``auto`` = a CUDA GPU when there is one). A fitted detector moved to a GPU gives the
CPU's maps to about 1e-5 of their largest value. Fitted on a GPU, the ``lite0`` model is the CPU's;
the ``pixels`` backbone's greedy coreset may take another of two equally near patches (raw pixel
patches of synthetic images tie often), so its maps differ locally and image scores slightly."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import numpy as np
import torch

from ..ops.maps import smooth_maps
from ._components.features import upsample_maps
from ._components.torch_utils import resolve_device
from .base import Detector, as_image_batch


class GridMapDetector(Detector):
    """A detector whose map lives on a feature grid; subclasses implement ``grid_maps`` and keep
    their :class:`~kizu.detectors._components.features.LocalFeatures` in ``self.features``."""

    uses_device = True

    def __init__(self, *, device: str = "auto", **options: Any):
        super().__init__(device=device, **options)
        self.torch_device: torch.device = resolve_device(device)  # a bad name or a missing GPU fails here

    def to(self, device: str) -> "GridMapDetector":
        self.device = device
        self.torch_device = resolve_device(device)
        if getattr(self, "features", None) is not None:
            self.features.to(self.torch_device)
        return self

    @abstractmethod
    def grid_maps(self, images: np.ndarray) -> np.ndarray:
        """``(N, C, H, W)`` → ``(N, h, w)`` float32 anomaly on the feature grid."""

    def anomaly_maps(self, images) -> np.ndarray:
        x = as_image_batch(images)
        return self._input_maps(self.grid_maps(x), x.shape[-2:])

    def _input_maps(self, grid_maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """``(N, h, w)`` grid maps → ``(N, H, W)`` at the input size, smoothed with ``sigma`` px."""
        return smooth_maps(upsample_maps(grid_maps, size), self.options.sigma)
