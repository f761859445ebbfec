"""TrainConfig: one frozen configuration, validated in one place, stored in model.json."""

import json

import pytest

from kizu import TrainConfig, defaults, fit_model, load_model, save_model
from kizu.errors import KizuError
from kizu.synth import make_shapes
from tests.helpers import PIXELS


def test_defaults_come_from_one_place():
    config = TrainConfig()
    assert (config.detector, config.alpha, config.max_side, config.folds) == (
        defaults.DETECTOR, defaults.ALPHA, defaults.MAX_SIDE, defaults.FOLDS)


@pytest.mark.parametrize("change, message", [
    ({"alpha": 0.0}, "alpha"), ({"alpha": 1.5}, "alpha"), ({"threshold_rule": "nope"}, "threshold rule"),
    ({"calibration": "both"}, "calibration"), ({"calibration_fraction": 1.0}, "fraction"),
    ({"score": "median"}, "score"), ({"sigma": -1.0}, "sigma"), ({"max_side": 8}, "max_side"),
])
def test_bad_values_are_one_clear_error(change, message):
    with pytest.raises(KizuError, match=message):
        TrainConfig(**change)


def test_frozen_and_round_trips_through_json():
    config = TrainConfig(options={"preset": "pixels", "k": 2}, resize=(30, 40), template=False)
    with pytest.raises(AttributeError):
        config.alpha = 0.1
    again = TrainConfig.from_json(json.loads(json.dumps(config.to_json())))
    assert again == config and again.resize == (30, 40)
    assert config.replace(seed=4).seed == 4 and config.seed == 0


def test_the_model_file_keeps_the_config(tmp_path):
    config = TrainConfig(detector="patch-knn", options=PIXELS, seed=2, alpha=0.1, folds=3)
    model = fit_model(make_shapes(20, 0, 0, seed=1).train, config)
    assert model.config == config
    assert load_model(save_model(model, tmp_path / "m")).config == config
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["config"]["seed"] == 2 and meta["config"]["options"] == PIXELS
