"""Transforms of raw local features, each fitted on the good images' features.

``BrightnessChannels`` adds two relative-brightness channels (the local mean brightness around each
cell over windows of ``WINDOWS`` cells, relative to the image's mean or to a larger ``surround``
window, minus 1), scaled at fit time to ``weight`` × the RMS spread of the appearance channels:
network features describe structure and hardly change when a patch of a textured surface gets
10–25 % darker, so with these channels the nearest good neighbour must match the expected
brightness too. Relative to a surround, illumination gradients and broad blotches cancel.

``Projection`` is a PCA to ``dim`` components (optionally whitened: unit variance per component
plus a floor of ``WHITEN_FLOOR`` × the mean variance, so directions in which good surfaces hardly
vary weigh as much as the large ones in a Euclidean distance).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .backbones import pool_to

#: windows (grid cells a side) of the relative-brightness channels
WINDOWS = (3, 7)
#: whitening adds this fraction of the mean eigenvalue to every component's variance
WHITEN_FLOOR = 0.01
#: feature vectors sampled (at most) to fit the projection
PCA_SAMPLES = 50_000


def relative_brightness(t: torch.Tensor, grid: tuple[int, int], surround: int = 0) -> torch.Tensor:
    """``(n, C, H, W)`` → ``(n, len(WINDOWS), *grid)``: the local mean brightness around each cell
    relative to the image's mean, or with ``surround`` (odd, cells) to the mean of that larger window
    around the cell, minus 1."""
    grey = pool_to(t.mean(dim=1, keepdim=True), grid)

    def local_mean(w: int) -> torch.Tensor:
        return F.avg_pool2d(grey, w, stride=1, padding=w // 2, count_include_pad=False)

    ref = local_mean(surround) if surround else t.mean(dim=(1, 2, 3))[:, None, None, None]
    return torch.cat([local_mean(w) for w in WINDOWS], dim=1) / ref.clamp_min(1e-3) - 1.0


class BrightnessChannels:
    """The relative-brightness channels appended to the raw features (see the module docstring)."""

    dim = len(WINDOWS)

    def __init__(self, weight: float, surround: int):
        self.weight, self.surround = weight, surround
        self.scale = np.ones(self.dim, np.float32)

    def __call__(self, t: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """``(n, len(WINDOWS), *grid)`` scaled channels of the batch ``t``."""
        scale = torch.from_numpy(self.scale).to(t.device)[None, :, None, None]
        return scale * relative_brightness(t, grid, self.surround)

    def fit(self, raw: list[torch.Tensor]) -> None:
        """Scale the last ``dim`` channels of the raw batches (in place) to ``weight`` × the RMS
        standard deviation of the other channels, so the weight means the same on any surface;
        ``raw`` must hold them unscaled."""
        nb = self.dim
        count, total, squares = 0, 0.0, 0.0  # per-channel moments, batch by batch (bounded memory)
        for f in raw:
            v = f.permute(1, 0, 2, 3).reshape(f.shape[1], -1).double()
            count, total, squares = count + v.shape[1], total + v.sum(dim=1), squares + (v * v).sum(dim=1)
        var = (squares / count - (total / count) ** 2).clamp_min(0) * count / max(count - 1, 1)
        appearance = float(var[:-nb].mean().sqrt())
        spread = var[-nb:].sqrt().clamp_min(1e-6)
        scale = (self.weight * appearance / spread).float()
        for f in raw:
            f[:, -nb:] *= scale[None, :, None, None]
        self.scale = scale.numpy()

    def reset(self) -> None:
        self.scale = np.ones(self.dim, np.float32)


class Projection:
    """PCA of feature vectors to ``dim`` components, optionally whitened (see the module docstring)."""

    def __init__(self, dim: int | None, whiten: bool):
        self.dim, self.whiten = dim, whiten
        self.mean: np.ndarray | None = None
        self.components: np.ndarray | None = None

    def fit(self, raw_batches, grid: tuple[int, int], n_images: int, seed: int | None) -> None:
        """From at most ``PCA_SAMPLES`` vectors of the ``(n, D, *grid)`` batches, sampled batch by
        batch (bounded memory), the same number per image."""
        rng = np.random.default_rng(0 if seed is None else int(seed))
        cells = grid[0] * grid[1]
        per_image = max(1, min(cells, PCA_SAMPLES // n_images))
        samples = []
        for f in raw_batches:
            v = f.permute(0, 2, 3, 1).reshape(len(f), cells, -1).numpy()
            for j in range(len(f)):
                pick = slice(None)
                if per_image < cells:
                    pick = np.sort(rng.choice(cells, per_image, replace=False))
                samples.append(v[j, pick])
        v = np.concatenate(samples).astype(np.float64)
        mean = v.mean(axis=0)
        cov = (v - mean).T @ (v - mean) / max(len(v) - 1, 1)
        ev, vec = np.linalg.eigh(cov)
        ev, vec = ev[::-1][: self.dim], vec[:, ::-1][:, : self.dim]
        # fix the sign of each component so the PCA is reproducible across LAPACK builds
        vec *= np.where(vec[np.abs(vec).argmax(axis=0), np.arange(vec.shape[1])] < 0, -1.0, 1.0)
        if self.whiten:  # unit variance per component; the floor keeps near-empty directions from exploding
            vec = vec / np.sqrt(np.maximum(ev, 0) + WHITEN_FLOOR * max(float(ev.mean()), 1e-12))
        self.mean = mean.astype(np.float32)
        self.components = np.ascontiguousarray(vec.T, dtype=np.float32)

    @property
    def fitted(self) -> bool:
        return self.components is not None

    def __call__(self, f: torch.Tensor) -> torch.Tensor:
        """``(n, D, h, w)`` → ``(n, dim, h, w)``."""
        n, d, h, w = f.shape
        v = f.permute(0, 2, 3, 1).reshape(-1, d) - torch.from_numpy(self.mean)
        return (v @ torch.from_numpy(self.components).T).reshape(n, h, w, -1).permute(0, 3, 1, 2)

    def reset(self) -> None:
        self.mean = self.components = None
