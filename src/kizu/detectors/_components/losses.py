"""Image-similarity losses and error maps for reconstruction detectors (PyTorch)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("mse", "l1", "ssim", "l1+ssim")


def _gaussian_window(size: int, sigma: float, channels: int, device, dtype) -> torch.Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    w = g[:, None] * g[None, :]
    return w.expand(channels, 1, size, size).contiguous()


def ssim_map(x: torch.Tensor, y: torch.Tensor, window: int = 7, sigma: float = 1.5) -> torch.Tensor:
    """Local SSIM ``(N, C, H, W)`` of images in [0, 1] (Wang et al. 2004 constants), same size as input."""
    return ssim_with_window(x, y, _gaussian_window(window, sigma, x.shape[1], x.device, x.dtype))


def ssim_with_window(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``ssim_map`` with its ``(C, 1, k, k)`` window given (the exported graph keeps it a constant)."""
    c, pad = x.shape[1], w.shape[-1] // 2

    def filt(t):
        return F.conv2d(F.pad(t, (pad, pad, pad, pad), mode="replicate"), w, groups=c)

    mu_x, mu_y = filt(x), filt(y)
    sxx = filt(x * x) - mu_x**2
    syy = filt(y * y) - mu_y**2
    sxy = filt(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    return ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))


def error_map(x: torch.Tensor, recon: torch.Tensor, loss: str) -> torch.Tensor:
    """Per-pixel error ``(N, H, W)`` matching the training loss; channels are averaged.

    mse → squared error (the seed's heat map); l1 → absolute error; ssim → (1 − SSIM) / 2;
    l1+ssim → mean of the absolute error and (1 − SSIM) / 2.
    """
    if loss == "mse":
        return ((x - recon) ** 2).mean(dim=1)
    if loss == "l1":
        return (x - recon).abs().mean(dim=1)
    dssim = ((1 - ssim_map(x, recon)) / 2).mean(dim=1)
    if loss == "ssim":
        return dssim
    if loss == "l1+ssim":
        return 0.5 * ((x - recon).abs().mean(dim=1) + dssim)
    raise ValueError(f"unknown loss {loss!r}; choose one of {LOSSES}")


def training_loss(x: torch.Tensor, recon: torch.Tensor, loss: str) -> torch.Tensor:
    """Scalar loss; ``mse`` is exactly Keras' mean squared error."""
    if loss == "mse":
        return F.mse_loss(recon, x)
    return error_map(x, recon, loss).mean()
