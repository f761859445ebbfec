"""Convolutional autoencoder; the image score is its reconstruction error.

Preset ``seed`` is the seed post's Keras network, exactly: Conv 32 3×3 ReLU, max-pool 2, Conv 16 ReLU,
max-pool 2, Conv 16 ReLU, upsample 2, Conv 32 ReLU, upsample 2, Conv C linear; 'same' padding;
Glorot-uniform kernels and zero biases (Keras defaults); Adam (lr 1e-3, eps 1e-7), MSE, 50 epochs,
batch 32, the last 10 % of the images for validation (Keras' ``validation_split``).

Preset ``default`` keeps that shape but adds a 16-unit dense bottleneck (so the network cannot learn
the identity), trains for at least 2000 optimiser *steps* (the seed makes only ~150 with 100 images),
augments (small shifts, rotations, brightness) and uses an SSIM loss and (1 − SSIM)/2 error map
(``bench/seed_parity.py`` compares it with the seed's network). Preset ``deep`` is for 64–256 px
images: more levels, a narrow bottleneck, L1+SSIM loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ._components.losses import LOSSES, error_map, training_loss
from ._components.torch_utils import (
    batched,
    deterministic_kernels,
    device_batch,
    load_numpy_state,
    resolve_device,
    seeded_generator,
    state_to_numpy,
)
from .base import Detector, Options, ProgressFn, option
from .registry import register


@dataclass(frozen=True)
class AutoencoderOptions(Options):
    """Hyper-parameters of the autoencoder; the defaults are preset ``default``."""

    channels: list[int] = option([32, 16], "convolution channels per encoder level (each halves the size)")
    latent: int = option(16, "units of the dense bottleneck (0 = none, as the seed's network)")
    epochs: int = option(50, "training epochs (at least; see min_steps)")
    min_steps: int = option(2000, "at least this many optimiser steps, however few the images")
    batch_size: int = option(32, "images per optimiser step")
    lr: float = option(1e-3, "Adam learning rate")
    val_split: float = option(0.1, "share of the images kept for the validation loss")
    loss: str = option("ssim", f"training loss and error map: one of {', '.join(LOSSES)}")
    patience: int = option(0, "stop after this many epochs without a better validation loss (0 = never)")
    augment: bool = option(True, "random small shifts, rotations and brightness changes while training")
    flips: bool = option(False, "random horizontal flips while augmenting")
    denoise: float = option(0.0, "standard deviation of noise added to inputs (denoising autoencoder)")
    random_split: bool = option(True, "validation images drawn at random (the seed takes the last 10 %)")

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; choose one of {LOSSES}")
        if not 0 <= self.val_split < 1:
            raise ValueError("val_split must be in [0, 1)")
        self._set("channels", [int(c) for c in self.channels])
        for name in ("latent", "epochs", "min_steps", "batch_size", "patience"):
            self._set(name, int(getattr(self, name)))


#: the seed post's Keras network and training, exactly; a deeper net for 64-256 px images
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "seed": dict(min_steps=0, latent=0, loss="mse", augment=False, random_split=False),
    "deep": dict(channels=[32, 64, 64, 32, 16], latent=64, min_steps=3000, batch_size=16, loss="l1+ssim",
                 patience=40),
}


class ConvAutoencoder(nn.Module):
    """Encoder: [Conv 3×3 ReLU, max-pool 2] per entry of ``channels``; decoder mirrors it with
    nearest-neighbour upsampling; a final linear Conv 3×3 back to ``in_channels``.

    Inputs of any size are padded (edge values) to a multiple of 2**levels and cropped back.
    """

    def __init__(self, in_channels: int, channels: list[int], latent: int = 0, size: tuple[int, int] = (16, 16)):
        super().__init__()
        self.levels = len(channels)
        m = 2**self.levels
        self.code_shape = (channels[-1], -(-size[0] // m), -(-size[1] // m))
        code = int(np.prod(self.code_shape))
        # optional dense bottleneck: a real information limit, so the network cannot learn the identity
        self.bottleneck = (
            nn.Sequential(nn.Flatten(), nn.Linear(code, latent), nn.ReLU(), nn.Linear(latent, code), nn.ReLU())
            if latent else nn.Identity()
        )
        enc, c_prev = [], in_channels
        for c in channels:
            enc += [nn.Conv2d(c_prev, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            c_prev = c
        dec = []
        for c in reversed(channels):
            dec += [nn.Conv2d(c_prev, c, 3, padding=1), nn.ReLU(), nn.Upsample(scale_factor=2, mode="nearest")]
            c_prev = c
        dec += [nn.Conv2d(c_prev, in_channels, 3, padding=1)]
        self.encoder = nn.Sequential(*enc)
        self.decoder = nn.Sequential(*dec)
        for m in self.modules():  # Keras defaults: glorot_uniform kernels, zero biases
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        m = 2**self.levels
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        z = self.bottleneck(self.encoder(x)).reshape(x.shape[0], *self.code_shape) if not isinstance(
            self.bottleneck, nn.Identity) else self.encoder(x)
        return self.decoder(z)[..., :h, :w]


def _augment(x: torch.Tensor, g: torch.Generator, flips: bool) -> torch.Tensor:
    """Small random shifts (±3 % of the size), rotations (±5°) and brightness (±5 %)."""
    n = x.shape[0]
    angle = (torch.rand(n, generator=g) * 2 - 1) * math.radians(5)
    shift = (torch.rand(n, 2, generator=g) * 2 - 1) * 0.06  # affine_grid units: 2 = full size
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if flips:
        flip = torch.rand(n, generator=g) < 0.5
        out = torch.where(flip[:, None, None, None].to(x.device), out.flip(-1), out)
    gain = 1 + (torch.rand(n, 1, 1, 1, generator=g) * 2 - 1) * 0.05
    return (out * gain.to(x)).clamp(0, 1)


@register
class AutoencoderDetector(Detector):
    """Reconstruction-error detector. Options override the chosen preset's values."""

    name = "autoencoder"

    Options = AutoencoderOptions
    presets = PRESETS
    uses_device = True
    default_reducer = "mean"  # the seed's image MSE

    def __init__(self, *, device: str = "auto", **options: Any):
        super().__init__(device=device, **options)
        self.net: ConvAutoencoder | None = None
        self.in_channels: int | None = None

    @property
    def map_label(self) -> str:
        """What the anomaly map is, for figure titles."""
        return {"mse": "Squared error", "l1": "Absolute error", "ssim": "(1 − SSIM) / 2",
                "l1+ssim": "|error| and (1 − SSIM) / 2"}[self.options.loss]

    def to(self, device: str) -> "AutoencoderDetector":
        self.device = device
        return self

    def _build(self, in_channels: int, size: tuple[int, int]) -> ConvAutoencoder:
        self.in_channels, self.size = in_channels, (int(size[0]), int(size[1]))
        self.net = ConvAutoencoder(in_channels, self.options.channels, self.options.latent, self.size)
        return self.net

    def fit(self, images: np.ndarray, *, seed: int | None = None, progress: ProgressFn | None = None):
        o = self.options
        images = np.ascontiguousarray(images, dtype=np.float32)
        n = len(images)
        if n < 2:
            raise ValueError("the autoencoder needs at least 2 training images")
        torch.manual_seed(0 if seed is None else seed)
        g = seeded_generator(seed)
        device = resolve_device(self.device)
        net = self._build(images.shape[1], images.shape[2:]).to(device)

        n_val = int(round(n * o.val_split)) if o.val_split > 0 else 0
        n_val = min(n_val, n - 1)
        order = torch.randperm(n, generator=g).numpy() if o.random_split else np.arange(n)
        train_idx, val_idx = order[: n - n_val], order[n - n_val:]
        x_train = device_batch(images[train_idx], device)
        x_val = device_batch(images[val_idx], device)

        bs = o.batch_size
        steps_per_epoch = math.ceil(len(x_train) / bs)
        # enough optimiser steps even for tiny sets: ``epochs`` is a minimum, ``min_steps`` too
        epochs = max(o.epochs, math.ceil(o.min_steps / steps_per_epoch))
        opt = torch.optim.Adam(net.parameters(), lr=o.lr, eps=1e-7)
        best, best_state, since_best = math.inf, None, 0
        self.history = {"loss": [], "val_loss": []}
        with deterministic_kernels(device):  # same seed → same weights on a GPU too
            for epoch in range(epochs):
                net.train()
                perm = torch.randperm(len(x_train), generator=g)
                total = 0.0
                for i in range(0, len(x_train), bs):
                    target = x_train[perm[i:i + bs].to(device)]
                    x_in = _augment(target, g, o.flips) if o.augment else target
                    if o.augment:
                        target = x_in
                    if o.denoise > 0:
                        x_in = x_in + o.denoise * torch.randn(x_in.shape, generator=g).to(device)
                    loss = training_loss(target, net(x_in), o.loss)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    total += loss.item() * len(target)
                self.history["loss"].append(total / len(x_train))
                val = self._eval_loss(x_val) if n_val else math.nan
                self.history["val_loss"].append(val)
                if progress is not None:
                    progress(epoch + 1, epochs, {"loss": self.history["loss"][-1], "val_loss": val})
                if o.patience and n_val:
                    if val < best - 1e-7:
                        best, since_best = val, 0
                        best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                    else:
                        since_best += 1
                        if since_best >= o.patience:
                            break
        if best_state is not None:
            net.load_state_dict(best_state)
        net.eval()
        return self

    @torch.no_grad()
    def _eval_loss(self, x: torch.Tensor) -> float:
        self.net.eval()
        return float(training_loss(x, self.net(x), self.options.loss))

    def _require_fitted(self):
        if self.net is None:
            raise RuntimeError("the autoencoder is not fitted")

    def reconstruct(self, images: np.ndarray) -> np.ndarray:
        self._require_fitted()
        device = resolve_device(self.device)
        self.net.to(device).eval()
        return torch.cat(batched(self.net, images, device)).numpy()

    def anomaly_maps(self, images: np.ndarray) -> np.ndarray:
        self._require_fitted()
        device = resolve_device(self.device)
        self.net.to(device).eval()
        loss = self.options.loss
        outs = batched(lambda x: error_map(x, self.net(x), loss), images, device)
        return torch.cat(outs).numpy().astype(np.float32)

    def state_dict(self) -> dict[str, np.ndarray]:
        self._require_fitted()
        state = state_to_numpy(self.net)
        state["meta.in_channels"] = np.array([self.in_channels], dtype=np.int64)
        state["meta.size"] = np.array(self.size, dtype=np.int64)
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        in_channels = int(np.asarray(state["meta.in_channels"]).ravel()[0])
        net = self._build(in_channels, tuple(np.asarray(state["meta.size"]).ravel()))
        load_numpy_state(net, {k: v for k, v in state.items() if not k.startswith("meta.")})
        net.eval()
