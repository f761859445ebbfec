import numpy as np
import pytest
import torch.nn as nn

from kizu.detectors import create
from kizu.detectors.autoencoder import ConvAutoencoder
from tests.helpers import rng_images


def test_seed_network_matches_the_keras_model_layer_by_layer():
    net = ConvAutoencoder(1, [32, 16])
    layers = [m for m in list(net.encoder) + list(net.decoder)]
    kinds = [type(m).__name__ for m in layers]
    assert kinds == ["Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "MaxPool2d",
                     "Conv2d", "ReLU", "Upsample", "Conv2d", "ReLU", "Upsample", "Conv2d"]
    convs = [m for m in layers if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(1, 32), (32, 16), (16, 16), (16, 32), (32, 1)]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)  # 'same'
    # Keras' model.summary() for the seed's network: 12,193 parameters
    assert sum(p.numel() for p in net.parameters()) == 12193
    assert all(float(c.bias.detach().abs().max()) == 0.0 for c in convs)  # zero-initialised biases


@pytest.mark.parametrize("shape", [(1, 16, 16), (1, 20, 28), (3, 17, 9)])
def test_any_size_grey_or_rgb(shape):
    det = create("autoencoder", preset="seed", epochs=1)
    x = rng_images(6, *shape)
    det.fit(x, seed=0)
    maps = det.anomaly_maps(x)
    assert maps.shape == (6, shape[1], shape[2]) and maps.dtype == np.float32
    assert det.reconstruct(x).shape == x.shape


def test_same_seed_same_model_and_scores():
    x = rng_images(20)
    a = create("autoencoder", preset="default", min_steps=10).fit(x, seed=5)
    b = create("autoencoder", preset="default", min_steps=10).fit(x, seed=5)
    c = create("autoencoder", preset="default", min_steps=10).fit(x, seed=6)
    np.testing.assert_array_equal(a.anomaly_maps(x), b.anomaly_maps(x))
    assert not np.array_equal(a.anomaly_maps(x), c.anomaly_maps(x))


def test_seed_preset_trains_50_epochs_with_validation_split():
    x = rng_images(40)
    det = create("autoencoder", preset="seed").fit(x, seed=0)
    assert len(det.history["loss"]) == 50 and len(det.history["val_loss"]) == 50
    assert det.history["loss"][-1] < det.history["loss"][0]


def test_error_map_is_squared_error_for_mse():
    x = rng_images(4)
    det = create("autoencoder", preset="seed", epochs=1).fit(x, seed=0)
    np.testing.assert_allclose(det.anomaly_maps(x), ((x - det.reconstruct(x)) ** 2).mean(1), rtol=1e-5, atol=1e-7)


def test_state_dict_round_trip():
    x = rng_images(10)
    det = create("autoencoder", preset="default", min_steps=5).fit(x, seed=0)
    other = create("autoencoder", **det.config())
    other.load_state_dict(det.state_dict())
    np.testing.assert_array_equal(det.anomaly_maps(x), other.anomaly_maps(x))


@pytest.mark.parametrize("loss", ["l1", "ssim", "l1+ssim"])
def test_other_losses_and_augmentation_train(loss):
    x = rng_images(12, h=24, w=24)
    det = create("autoencoder", preset="default", loss=loss, augment=True, denoise=0.05, min_steps=5).fit(x, seed=0)
    m = det.anomaly_maps(x)
    assert m.shape == (12, 24, 24) and np.isfinite(m).all() and (m >= -1e-6).all()


def test_unknown_preset_and_loss_are_clear_errors():
    with pytest.raises(ValueError, match="preset"):
        create("autoencoder", preset="huge")
    with pytest.raises(ValueError, match="loss"):
        create("autoencoder", loss="psnr")
