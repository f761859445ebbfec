import json

import numpy as np
import pytest
import torch
from scipy import ndimage

from kizu import TrainConfig, fit_model, load_model, save_model
from kizu.io.model_file import MODEL_JSON
from kizu.scoring.reference import SPECTRUM_BANDS, ScoreReference, image_descriptors, neighbour_weight
from kizu.synth.fine import make_fine
from tests.helpers import term


def _surfaces(n, kind, size=24, seed=0):
    """``(n, 1, size, size)``: smooth blotches (``"smooth"``) or fine grain (``"fine"``) about 0.5."""
    rng = np.random.default_rng([seed, kind == "fine"])
    sigma = 4.0 if kind == "smooth" else 0.5
    out = [ndimage.gaussian_filter(rng.standard_normal((size, size)), sigma, mode="wrap") for _ in range(n)]
    return np.stack([0.5 + 0.1 * f / f.std() for f in out])[:, None].astype(np.float32)


def test_descriptors_shape_and_spectrum():
    smooth, fine = _surfaces(4, "smooth"), _surfaces(4, "fine")
    d = image_descriptors(np.concatenate([smooth, fine]))
    assert d.shape == (8, 2 + SPECTRUM_BANDS)
    spectrum = d[:, 2:]
    assert np.all(spectrum >= 0) and np.all(spectrum.sum(axis=1) <= 1 + 1e-9)
    # the smooth surface has its power in the low bands, the fine grain in the high ones
    assert spectrum[:4, :3].sum(axis=1).min() > spectrum[4:, :3].sum(axis=1).max()
    assert image_descriptors(np.random.default_rng(0).random((2, 3, 16, 20))).shape == (2, 6 + SPECTRUM_BANDS)
    with pytest.raises(ValueError, match="must be"):
        image_descriptors(np.zeros((2, 16, 16)))


def test_neighbour_weight_is_explained_variance_clipped():
    s = np.array([1.0, 2.0, 3.0, 4.0])
    assert neighbour_weight(s, s) == 1.0
    assert neighbour_weight(s, np.full(4, s.mean())) == 0.0
    assert neighbour_weight(s, s[::-1]) == 0.0  # worse than the mean: clipped
    assert neighbour_weight(s, s + 0.5) == pytest.approx(1 - 4 * 0.25 / 5)
    assert neighbour_weight(np.ones(4), np.ones(4)) == 0.0


def test_one_kind_of_image_leaves_scores_exactly_alone():
    rng = np.random.default_rng(1)
    ref = ScoreReference.fit(image_descriptors(_surfaces(32, "smooth", seed=1)), rng.gamma(20, 0.1, 32))
    assert ref.weight == 0.0
    scores = rng.random(5)
    assert np.array_equal(ref.adjust(scores, image_descriptors(_surfaces(5, "fine", seed=2))), scores)


def test_two_kinds_are_put_on_one_scale():
    rng = np.random.default_rng(2)
    desc = image_descriptors(np.concatenate([_surfaces(16, "smooth", seed=3), _surfaces(16, "fine", seed=3)]))
    # the fine grain scores three times as high as the smooth surface on good images
    scores = np.r_[rng.normal(1.0, 0.05, 16), rng.normal(3.0, 0.15, 16)]
    ref = ScoreReference.fit(desc, scores)
    assert ref.weight > 0.9
    new_smooth, new_fine = image_descriptors(_surfaces(6, "smooth", seed=4)), image_descriptors(_surfaces(6, "fine", seed=4))
    good_smooth, good_fine = ref.adjust(np.full(6, 1.0), new_smooth), ref.adjust(np.full(6, 3.0), new_fine)
    np.testing.assert_allclose(good_smooth, good_fine, rtol=0.1)
    # a defect on the smooth surface (score 2) now outranks every good fine-grained image (3)
    assert ref.adjust(np.full(6, 2.0), new_smooth).min() > good_fine.max()


def test_json_round_trip_and_validation():
    rng = np.random.default_rng(3)
    desc = image_descriptors(np.concatenate([_surfaces(8, "smooth"), _surfaces(8, "fine")]))
    ref = ScoreReference.fit(desc, np.r_[rng.normal(1, 0.1, 8), rng.normal(2, 0.1, 8)], k=4)
    back = ScoreReference.from_json(json.loads(json.dumps(ref.to_json())))
    q = image_descriptors(_surfaces(3, "fine", seed=9))
    np.testing.assert_array_equal(back.adjust(np.ones(3), q), ref.adjust(np.ones(3), q))
    bad = ref.to_json() | {"weight": 1.5}
    with pytest.raises(ValueError, match="invalid reference"):
        ScoreReference.from_json(bad)
    with pytest.raises(ValueError, match="do not fit"):
        ScoreReference.from_json(ref.to_json() | {"scores": [1.0, 2.0]})
    with pytest.raises(ValueError, match="must be"):
        ScoreReference.fit(desc, np.ones(3))


@pytest.fixture(scope="module")
def two_surface_model():
    data = make_fine(40, 0, 0, size=32, seed=0, mode="texture")  # weave and sand, alternating
    opts = {"backbone": "pixels", "max_memory": 500}
    model = fit_model(data.train, TrainConfig(detector="patch-knn", options=opts, seed=0, folds=4))
    return model, data


def test_model_learns_the_reference_on_two_surfaces(two_surface_model, tmp_path):
    model, data = two_surface_model
    assert model.reference is not None and model.reference.weight > 0.5
    assert model.summary["reference_weight"] == pytest.approx(model.reference.weight, abs=1e-4)
    test = make_fine(0, 6, 0, size=32, seed=0, mode="texture").test
    scores = [v.score for v in model.inspect(test)]
    loaded = load_model(save_model(model, tmp_path / "m"))
    assert loaded.reference is not None
    assert [v.score for v in loaded.inspect(test)] == scores
    # without it the scores are the score rule's own
    meta = json.loads((tmp_path / "m" / MODEL_JSON).read_text())
    meta["score_terms"] = [t for t in meta["score_terms"] if t["kind"] != "reference"]
    (tmp_path / "m" / MODEL_JSON).write_text(json.dumps(meta))
    raw = load_model(tmp_path / "m")
    assert raw.reference is None
    factors = model.reference.factors(image_descriptors(raw.preprocessor.apply_all(list(test[:, None]))))
    np.testing.assert_allclose(np.array(scores), np.array([v.score for v in raw.inspect(test)]) * factors, rtol=1e-9)


def test_reference_can_be_switched(two_surface_model, tmp_path):
    _, data = two_surface_model
    opts = {"backbone": "pixels", "max_memory": 500}
    off = fit_model(data.train, TrainConfig(detector="patch-knn", options=opts, seed=0, folds=4, reference=False))
    assert off.reference is None and off.summary["reference_weight"] is None
    # a format-1 model written before the reference existed (no key) loads without one
    meta_file = save_model(off, tmp_path / "old") / MODEL_JSON
    meta = json.loads(meta_file.read_text())
    rule = {k: v for k, v in meta.pop("score_terms")[0].items() if k not in ("kind", "own_score")}
    meta.update(format_version=1, scoring=rule)
    meta_file.write_text(json.dumps(meta))
    assert load_model(tmp_path / "old").reference is None
    # the seed's autoencoder keeps its exact MSE: no reference unless asked for
    ae = fit_model(data.train[:12], TrainConfig(detector="autoencoder", options={"preset": "seed", "epochs": 1}, seed=0, calibration="holdout", alpha=0.4))
    assert ae.reference is None


def test_cli_says_when_the_good_images_differ_and_can_switch_it_off(tmp_path):
    from typer.testing import CliRunner

    from kizu.cli import app
    from kizu.io.images import write_image

    data = make_fine(24, 0, 0, size=32, seed=1, mode="texture")
    for i, img in enumerate(data.train):
        write_image(tmp_path / "good" / f"{i:02d}.png", img)
    runner = CliRunner()
    base = ["train", str(tmp_path / "good"), "--backbone", "pixels", "--max_memory", "300", "--folds", "3", "--quiet"]
    on = runner.invoke(app, base + ["--out", str(tmp_path / "on")])
    assert on.exit_code == 0, on.output
    assert "not all alike" in on.output
    assert json.loads((tmp_path / "on" / MODEL_JSON).read_text())["score_terms"][1]["weight"] > 0
    off = runner.invoke(app, base + ["--out", str(tmp_path / "off"), "--no-reference"])
    assert off.exit_code == 0, off.output
    assert "not all alike" not in off.output
    assert term(json.loads((tmp_path / "off" / MODEL_JSON).read_text()), "reference") is None


def test_large_images_are_described_at_a_bounded_size():
    big = np.random.default_rng(5).random((1, 1, 600, 400))
    small = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(big), (256, 171)).numpy()
    np.testing.assert_allclose(image_descriptors(big), image_descriptors(small), rtol=1e-6)
