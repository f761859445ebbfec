"""The contract every registered detector keeps (in the spirit of scikit-learn's check_estimator):
it fits, maps at the input's size, rebuilds from its configuration, gives the same maps for the
same seed, restores its state exactly, and survives a model file round trip."""

import json

import numpy as np
import pytest

from kizu import TrainConfig, fit_model, load_model, save_model
from kizu.detectors import available, create, detector_class
from kizu.errors import OptionError
from kizu.synth import make_shapes
from tests.helpers import FAST_AE

#: fast options for each registered detector (a new detector must add its own here)
FAST = {"autoencoder": FAST_AE, "mt": {}, "patch-gaussian": {}, "patch-knn": {}}
CASES = [(name, FAST[name]) for name in available()] + [("patch-knn", {"preset": "pixels"})]


@pytest.fixture(scope="module")
def images():
    d = make_shapes(24, 3, 3, seed=5, jitter="intended")
    return d.train[:, None], d.test[:, None]


def test_every_registered_detector_has_fast_options_here():
    assert set(available()) == set(FAST)


@pytest.mark.parametrize("name, options", CASES)
def test_fit_maps_config_seed_and_state(name, options, images):
    train, test = images
    det = create(name, **options).fit(train, seed=3)
    maps = det.anomaly_maps(test)
    assert maps.shape == (len(test), *test.shape[-2:]) and maps.dtype == np.float32 and np.isfinite(maps).all()
    config = json.loads(json.dumps(det.config()))  # JSON-able
    assert detector_class(name).from_config(config).config() == det.config()
    again = create(name, **options).fit(train, seed=3)
    np.testing.assert_array_equal(again.anomaly_maps(test), maps)
    restored = detector_class(name).from_config(config)
    restored.load_state_dict({k: np.array(v) for k, v in det.state_dict().items()})
    np.testing.assert_allclose(restored.anomaly_maps(test), maps, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name, options", CASES)
def test_model_file_round_trip_scores_the_same(name, options, images, tmp_path):
    train, test = images
    model = fit_model(train, TrainConfig(detector=name, options=options, seed=1, alpha=0.1))
    loaded = load_model(save_model(model, tmp_path / "m"))
    a, b = model.predict(test), loaded.predict(test)
    np.testing.assert_allclose(b.scores, a.scores, rtol=1e-9)
    np.testing.assert_array_equal(b.defective, a.defective)
    assert loaded.config == model.config


@pytest.mark.parametrize("name", available())
def test_options_are_explained_validated_and_unknown_ones_refused(name):
    cls = detector_class(name)
    assert all(help_text for _, _, help_text in cls.option_help())
    for preset in cls.presets:
        assert cls.make_options({"preset": preset}).preset == preset
    with pytest.raises(OptionError, match="no option 'nope'"):
        create(name, nope=1)
