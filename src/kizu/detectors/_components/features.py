"""Local feature maps for the patch detectors (``patch-gaussian``, ``patch-knn``): a backbone
(:mod:`.backbones`) followed by the fitted transforms (:mod:`.transforms`).

``LocalFeatures(backbone=...)`` turns images ``(N, C, H, W)`` in [0, 1] into feature maps
``(N, D, h, w)`` on a grid with stride ``H / h`` input pixels per cell::

    lf = LocalFeatures(backbone="pixels").fit(train_images, seed=0)
    feats, stride = lf(images)          # float32 (N, D, h, w), float
    feats, stride = LocalFeatures(...).fit_transform(train_images, seed=0)   # one network pass

``brightness`` > 0 appends two relative-brightness channels (``BrightnessChannels``); ``dim``
reduces D by a PCA fitted on the training features and ``whiten`` scales its components to unit
variance (``Projection``).

State: the transforms' arrays, and the backbone's (for a random network its seed and BatchNorm
statistics; pretrained weights come from their package and are never stored). Everything is numpy
arrays.

``device`` (``"cpu"`` or ``"cuda"``, ``to(device)`` later): where the backbone runs; features come
back as numpy arrays either way. It is not part of the configuration: a model fitted on a GPU loads
on a CPU (the same model scores to within about 1e-6, relative, on either).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..base import as_image_batch
from .backbones import DEFAULT_STAGES, MAX_UPSCALE, Backbone, make_backbone
from .torch_utils import device_batch, full_precision_convs
from .transforms import BrightnessChannels, Projection

BACKBONES = tuple(DEFAULT_STAGES)


def upsample_maps(maps: np.ndarray | torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """``(N, h, w)`` grid maps → ``(N, H, W)`` float32, bilinear (cell centres aligned)."""
    t = torch.as_tensor(np.ascontiguousarray(maps, dtype=np.float32))
    if tuple(t.shape[-2:]) == tuple(size):
        return t.numpy()
    return F.interpolate(t[None], size=tuple(int(v) for v in size), mode="bilinear", align_corners=False)[0].numpy()


def _int(a) -> int:
    return int(np.asarray(a).reshape(-1)[0])


class LocalFeatures:
    """Feature maps for patch detectors; see the module docstring."""

    def __init__(
        self,
        *,
        backbone: str = "pixels",
        stages: list[int] | tuple[int, ...] | None = None,
        patch: int = 3,
        max_grid: int = 64,
        center: bool = False,
        dim: int | None = None,
        input_size: int = 224,
        batch_size: int = 16,
        max_upscale: float = MAX_UPSCALE,
        pad: int = 0,
        whiten: bool = False,
        brightness: float = 0.0,
        brightness_surround: int = 0,
        device: str | torch.device = "cpu",
    ):
        if backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, not {backbone!r}")
        stages = list(DEFAULT_STAGES[backbone] if stages is None else stages)
        if not stages or any(int(s) < 0 for s in stages):
            raise ValueError(f"stages must be a non-empty list of non-negative ints, not {stages!r}")
        if patch < 1 or patch % 2 == 0:
            raise ValueError(f"patch must be an odd size >= 1, not {patch}")
        if max_grid < 1 or input_size < 8 or batch_size < 1:
            raise ValueError("max_grid, input_size and batch_size must be positive (input_size >= 8)")
        if dim is not None and dim < 1:
            raise ValueError(f"dim must be None or >= 1, not {dim}")
        if not max_upscale > 0:
            raise ValueError(f"max_upscale must be > 0, not {max_upscale}")
        if pad < 0:
            raise ValueError(f"pad must be >= 0, not {pad}")
        self.backbone = backbone
        self.stages = [int(s) for s in stages]
        self.patch = int(patch)
        self.max_grid = int(max_grid)
        self.center = bool(center)
        self.dim = None if dim is None else int(dim)
        self.input_size = int(input_size)
        self.batch_size = int(batch_size)
        self.max_upscale = float(max_upscale)
        self.pad = int(pad)
        self.whiten = bool(whiten)
        if brightness < 0:
            raise ValueError(f"brightness must be >= 0, not {brightness}")
        self.brightness = float(brightness)
        if brightness_surround != 0 and (brightness_surround < 3 or brightness_surround % 2 == 0):
            raise ValueError(f"brightness_surround must be 0 (the image's mean) or an odd number of cells >= 3, "
                             f"not {brightness_surround}")
        self.brightness_surround = int(brightness_surround)
        self.device = torch.device(device)
        self._backbone: Backbone | None = None
        self._brightness = BrightnessChannels(self.brightness, self.brightness_surround) if self.brightness else None
        self._projection = Projection(self.dim, self.whiten)
        self._channels: int | None = None
        self._fitted = False

    def _new_backbone(self, fitted_pretrained: bool | None = None) -> Backbone:
        return make_backbone(self.backbone, self.stages, self.device, fitted_pretrained=fitted_pretrained,
                             patch=self.patch, max_grid=self.max_grid, center=self.center, input_size=self.input_size,
                             max_upscale=self.max_upscale, pad=self.pad, batch_size=self.batch_size)

    def to(self, device: str | torch.device) -> "LocalFeatures":
        """Run on ``device`` from now on (moves a fitted network there)."""
        self.device = torch.device(device)
        if self._backbone is not None:
            self._backbone.to(self.device)
        return self

    # -- configuration -----------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {
            "backbone": self.backbone,
            "stages": list(self.stages),
            "patch": self.patch,
            "max_grid": self.max_grid,
            "center": self.center,
            "dim": self.dim,
            "input_size": self.input_size,
            "batch_size": self.batch_size,
            "max_upscale": self.max_upscale,
            "pad": self.pad,
            "whiten": self.whiten,
            "brightness": self.brightness,
            "brightness_surround": self.brightness_surround,
        }

    @property
    def raw_dim(self) -> int:
        """D before the projection (needs the channel count, known after ``fit``)."""
        if self._channels is None:
            raise RuntimeError("LocalFeatures is not fitted")
        return self._backbone.raw_dim(self._channels) + self._brightness_dim

    @property
    def _brightness_dim(self) -> int:
        return BrightnessChannels.dim if self._brightness is not None else 0

    @property
    def out_dim(self) -> int:
        return self.raw_dim if not self._projection.fitted else len(self._projection.components)

    # -- fitting -----------------------------------------------------------------------------
    def fit(self, images: np.ndarray, seed: int | None = 0) -> "LocalFeatures":
        """Prepare the backbone on ``images`` (a random network's BatchNorm statistics) and fit the
        transforms."""
        if self._brightness is not None:  # its scale needs all raw features first
            self.fit_transform(images, seed)
            return self
        x = self._start_fit(images, seed)
        if self._needs_projection():
            self._projection.fit((f for _, f in self._raw_batches(x)), self._grid(*x.shape[-2:]), len(x), seed)
        return self

    def fit_transform(self, images: np.ndarray, seed: int | None = 0) -> tuple[np.ndarray, float]:
        """``fit(images, seed)`` then ``self(images)``, running the backbone over the images once."""
        x = self._start_fit(images, seed)
        raw = [f for _, f in self._raw_batches(x)]
        if self._brightness is not None:
            self._brightness.fit(raw)
        if self._needs_projection():
            self._projection.fit(raw, self._grid(*x.shape[-2:]), len(x), seed)
        return self._assemble(x, enumerate(raw))

    def _start_fit(self, images: np.ndarray, seed: int | None) -> np.ndarray:
        x = as_image_batch(images)
        self._channels = int(x.shape[1])
        self._projection.reset()
        if self._brightness is not None:
            self._brightness.reset()
        self._backbone = self._new_backbone()
        self._backbone.fit(x, 0 if seed is None else int(seed))
        self._fitted = True
        return x

    def _needs_projection(self) -> bool:
        return self.whiten or (self.dim is not None and self.dim < self.raw_dim)

    def _grid(self, h: int, w: int) -> tuple[int, int]:
        return (self._backbone or self._new_backbone()).grid(h, w)

    # -- extraction --------------------------------------------------------------------------
    @torch.no_grad()
    def _raw_batches(self, x: np.ndarray):
        """Yield (start, raw features (n, D, h, w) float32 tensor) batch by batch."""
        grid = self._grid(*x.shape[-2:])
        for i in range(0, len(x), self.batch_size):
            t = device_batch(x[i: i + self.batch_size], self.device)
            with full_precision_convs():
                f = self._backbone.features(t, grid)
            if self._brightness is not None:
                f = torch.cat([f, self._brightness(t, grid)], dim=1)
            yield i, f.cpu()

    @torch.no_grad()
    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, float]:
        """``(N, C, H, W)`` → feature maps ``(N, D, h, w)`` float32 and the stride ``H / h``."""
        if not self._fitted:
            raise RuntimeError("LocalFeatures is not fitted")
        x = as_image_batch(images)
        if x.shape[1] != self._channels:
            raise ValueError(f"fitted on {self._channels}-channel images, got {x.shape[1]} channels")
        return self._assemble(x, ((i // self.batch_size, f) for i, f in self._raw_batches(x)))

    def _assemble(self, x: np.ndarray, raw_batches) -> tuple[np.ndarray, float]:
        """Project raw batches (index, (n, D, h, w) tensor), in order, into one float32 array."""
        H, W = x.shape[-2:]
        grid = self._grid(H, W)
        out: np.ndarray | None = None
        start = 0
        for _, f in raw_batches:
            if self._projection.fitted:
                f = self._projection(f)
            if out is None:
                out = np.empty((len(x), f.shape[1], *grid), dtype=np.float32)
            out[start: start + len(f)] = f.numpy()
            start += len(f)
        if out is None:
            out = np.zeros((0, self.out_dim, *grid), dtype=np.float32)
        return out, H / grid[0]

    # -- persistence -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        if not self._fitted:
            raise RuntimeError("LocalFeatures is not fitted")
        # scalars are stored with shape (1,): np.ascontiguousarray (used when saving) makes 0-d 1-d
        state = {"channels": np.array([self._channels], dtype=np.int64)}
        if self._brightness is not None:
            state["brightness_scale"] = self._brightness.scale
        if self._projection.fitted:
            state["pca_mean"] = self._projection.mean
            state["pca_components"] = self._projection.components
        state.update(self._backbone.state_dict())
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self._channels = _int(state["channels"])
        self._projection.reset()
        if "pca_components" in state:
            self._projection.mean = np.asarray(state["pca_mean"], dtype=np.float32)
            self._projection.components = np.asarray(state["pca_components"], dtype=np.float32)
        if self._brightness is not None:
            self._brightness.scale = np.asarray(state["brightness_scale"], dtype=np.float32)
        pretrained = bool(_int(state["net_pretrained"])) if "net_pretrained" in state else None
        self._backbone = self._new_backbone(fitted_pretrained=pretrained)
        self._backbone.load_state_dict(state)
        self._fitted = True
