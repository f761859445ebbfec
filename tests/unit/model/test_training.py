import json

import numpy as np
import pytest

from kizu import TrainConfig, fit_model, load_model, save_model, synth
from kizu.errors import KizuError, ModelFileError
from tests.helpers import FAST_AE


@pytest.fixture(scope="module")
def model_and_data():
    d = synth.make_shapes(50, 8, 8, seed=0)
    m = fit_model(d.train, TrainConfig(detector="autoencoder", options=FAST_AE, seed=0, calibration="holdout",
                                       alpha=0.1))
    return m, d


def test_train_holds_out_calibration_images(model_and_data):
    m, _ = model_and_data
    assert m.summary["n_fit"] == 40 and m.summary["n_calibration"] == 10
    assert len(m.calibration.scores) == 10


def test_verdicts_are_consistent(model_and_data):
    m, d = model_and_data
    vs = m.inspect(d.test)
    assert len(vs) == 16
    for v in vs:
        assert v.anomaly_map.shape == (16, 16) and v.anomaly_map.dtype == np.float32
        assert 0 < v.p_value <= 1 and 0 <= v.normalized <= 1
        assert v.defective == (v.p_value <= m.calibration.alpha)
        assert v.defective == (v.normalized > 0.5)


def test_save_load_round_trip_identical_scores(model_and_data, tmp_path):
    m, d = model_and_data
    save_model(m, tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["model.json", "weights.safetensors"]
    m2 = load_model(tmp_path / "model")
    a, b = m.inspect(d.test), m2.inspect(d.test)
    assert [v.score for v in a] == [v.score for v in b]
    assert [v.p_value for v in a] == [v.p_value for v in b]
    # saving again over an existing model replaces it atomically
    save_model(m2, tmp_path / "model")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_same_seed_same_model():
    d = synth.make_shapes(30, 4, 4, seed=0)
    a = fit_model(d.train, TrainConfig(detector="autoencoder", options=FAST_AE, seed=3)).inspect(d.test)
    b = fit_model(d.train, TrainConfig(detector="autoencoder", options=FAST_AE, seed=3)).inspect(d.test)
    assert [v.score for v in a] == [v.score for v in b]


@pytest.mark.parametrize("damage, message", [
    (lambda p: (p / "model.json").write_text("{not json"), "invalid JSON"),
    (lambda p: (p / "model.json").unlink(), "model.json is missing"),
    (lambda p: (p / "weights.safetensors").write_bytes(b"\x00" * 20), "damaged weights"),
    (lambda p: (p / "weights.safetensors").unlink(), "weights.safetensors is missing"),
    (lambda p: _edit(p, lambda j: j.update(format_version=99)), "format version 99"),
    (lambda p: _edit(p, lambda j: j["detector"].update(name="nope")), "unknown detector"),
    (lambda p: _edit(p, lambda j: j.pop("calibration")), "incomplete"),
    (lambda p: _edit(p, lambda j: j["score_terms"][0].update(scale=[1.0, -2.0])), "scale must be two positive numbers"),
])
def test_damaged_models_say_what_is_wrong(model_and_data, tmp_path, damage, message):
    m, _ = model_and_data
    p = save_model(m, tmp_path / "model")
    damage(p)
    with pytest.raises(ModelFileError, match=message):
        load_model(p)


def _edit(p, fn):
    j = json.loads((p / "model.json").read_text())
    fn(j)
    (p / "model.json").write_text(json.dumps(j))


def test_refuses_to_overwrite_a_non_model_folder(model_and_data, tmp_path):
    m, _ = model_and_data
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "precious.txt").write_text("x")
    with pytest.raises(KizuError, match="not a kizu model folder"):
        save_model(m, tmp_path / "stuff")


def test_rgb_and_resize(tmp_path):
    rng = np.random.default_rng(0)
    imgs = [rng.random((3, 20, 24), dtype=np.float32) * 0.2 + np.array([0.5, 0.2, 0.1], np.float32)[:, None, None]
            for _ in range(20)]
    m = fit_model(imgs, TrainConfig(detector="autoencoder", options=FAST_AE, resize=(16, 16)))
    assert m.preprocessor.channels == 3
    big = rng.random((3, 40, 30), dtype=np.float32)
    v = m.inspect([big])[0]
    assert v.anomaly_map.shape == (40, 30)  # maps come back at the input's resolution


def test_auto_calibration_is_cross_for_small_sets_only():
    d = synth.make_shapes(30, 2, 2, seed=1)
    m = fit_model(d.train, TrainConfig(detector="mt", seed=0))
    assert m.summary["calibration"] == "cross" and m.summary["n_calibration"] == 30
    few = fit_model(d.train[:8], TrainConfig(detector="mt", seed=0, alpha=0.2))  # 8 images: 4 folds, not an error
    assert few.summary["calibration"] == "cross" and few.summary["folds"] == 4 and few.summary["n_calibration"] == 8
    big = synth.make_shapes(320, 2, 2, seed=1)
    m = fit_model(big.train, TrainConfig(detector="mt", seed=0))
    assert m.summary["calibration"] == "holdout" and m.summary["n_calibration"] == 64


def test_cross_conformal_uses_every_image():
    d = synth.make_shapes(30, 6, 6, seed=1)
    m = fit_model(d.train, TrainConfig(detector="autoencoder", options=FAST_AE, calibration="cross", folds=3, seed=0))
    assert m.summary["n_fit"] == 30 and m.summary["n_calibration"] == 30
    assert len(m.calibration.scores) == 30
    vs = m.inspect(d.test)
    assert all(v.p_value >= 1 / 31 for v in vs)
    with pytest.raises(KizuError, match="folds"):
        fit_model(d.train, TrainConfig(detector="autoencoder", options=FAST_AE, calibration="cross", folds=40))


def test_saved_model_is_readable_like_a_normal_folder(model_and_data, tmp_path):
    import os
    import stat

    m, _ = model_and_data
    p = save_model(m, tmp_path / "model")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(p.stat().st_mode) == 0o777 & ~umask
    for f in ("model.json", "weights.safetensors"):
        assert stat.S_IMODE((p / f).stat().st_mode) == 0o666 & ~umask
