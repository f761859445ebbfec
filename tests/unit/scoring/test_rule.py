import json

import numpy as np
import pytest

from kizu import TrainConfig, fit_model, load_model, save_model, synth
from kizu.scoring.rule import ScoreRule, reduce_maps
from tests.helpers import PIXELS


def _maps(n=6, seed=0):
    return np.random.default_rng(seed).random((n, 12, 12)).astype(np.float32)


def test_reducers_on_a_known_map():
    m = np.zeros((1, 10, 10), np.float32)
    m[0, 2, 3] = 5.0
    assert reduce_maps(m, "mean")[0] == pytest.approx(0.05)
    assert reduce_maps(m, "max")[0] == pytest.approx(5.0)
    assert reduce_maps(m, "topk", topk=0.02)[0] == pytest.approx(2.5)  # top 2 of 100 pixels: 5 and 0
    assert reduce_maps(m, "max", sigma=1.0)[0] < 5.0  # smoothing spreads the peak


def test_max_plus_mean_is_each_term_over_its_training_mean():
    train = _maps(7, seed=1)
    rule = ScoreRule("max+mean", sigma=1.0).fit(train)
    mean_max = np.mean(reduce_maps(train, "max", sigma=1.0))
    mean_mean = np.mean(reduce_maps(train, "mean"))
    assert rule.scale == pytest.approx((mean_max, mean_mean))
    test = _maps(5, seed=2)
    expected = reduce_maps(test, "max", sigma=1.0) / mean_max + reduce_maps(test, "mean") / mean_mean
    np.testing.assert_allclose(rule(test), expected, rtol=1e-6)
    # on the training maps themselves each term averages 1, so the scores average 2
    assert np.mean(rule(train)) == pytest.approx(2.0)


def test_scales_do_not_jump_between_two_kinds_of_surface():
    # 17 low and 15 high images, or 15 and 17: a median would jump from one kind to the other
    low, high = np.full((17, 4, 4), 1.0, np.float32), np.full((17, 4, 4), 3.0, np.float32)
    a = ScoreRule("max+mean").fit(np.concatenate([low, high[:15]]))
    b = ScoreRule("max+mean").fit(np.concatenate([low[:15], high]))
    assert a.scale[1] == pytest.approx(1.94, abs=0.01) and b.scale[1] == pytest.approx(2.06, abs=0.01)


def test_max_plus_mean_sees_both_a_peak_and_a_diffuse_change():
    train = 1.0 + 0.1 * np.random.default_rng(3).random((8, 16, 16)).astype(np.float32)
    rule = ScoreRule("max+mean", sigma=0.0).fit(train)
    base = train[:1].copy()
    peak, diffuse = base.copy(), base.copy()
    peak[0, 5, 5] += 1.0  # one hot pixel: raises the max, barely the mean
    diffuse[0] *= 1.3  # everything 30 % higher: the mean moves as much as the max
    s = rule(np.concatenate([base, peak, diffuse]))
    assert s[1] > s[0] + 0.5 and s[2] > s[0] + 0.5
    assert reduce_maps(peak, "mean")[0] - reduce_maps(base, "mean")[0] < 0.01


def test_max_plus_mean_needs_scales_and_checks_them():
    with pytest.raises(ValueError, match="needs its scales"):
        ScoreRule("max+mean")(_maps())
    with pytest.raises(ValueError, match="positive"):
        ScoreRule("max+mean", scale=(1.0, 0.0))
    with pytest.raises(ValueError, match="unknown reducer"):
        ScoreRule("median")
    # rules without scales are returned unchanged by fit
    assert ScoreRule("max", sigma=2.0).fit(_maps()) == ScoreRule("max", sigma=2.0)


def test_zero_training_maps_give_a_usable_scale():
    rule = ScoreRule("max+mean").fit(np.zeros((4, 8, 8), np.float32))
    assert rule.scale == (1.0, 1.0)


def test_rule_round_trips_through_json():
    rule = ScoreRule("max+mean", sigma=1.0).fit(_maps())
    again = ScoreRule(**json.loads(json.dumps(rule.to_json())))
    assert again == rule


def test_model_with_max_plus_mean_calibrates_saves_and_loads(tmp_path):
    d = synth.make_shapes(30, 6, 6, seed=0)
    opts = {"backbone": "pixels", "max_memory": 200}
    m = fit_model(d.train, TrainConfig(detector="patch-knn", options=opts, seed=0, folds=3))
    assert m.score_rule.reducer == "max+mean" and m.score_rule.scale is not None  # patch-knn's default rule
    other = fit_model(d.train, TrainConfig(detector="patch-knn", options=opts, seed=0, folds=3, score="max"))
    assert other.score_rule.reducer == "max" and other.score_rule.scale is None
    # each fold fitted its own scales, so the out-of-fold scores of good images sit near 2 (1 + 1)
    assert 1.0 < np.median(m.calibration.scores) < 4.0
    a = m.inspect(d.test)
    save_model(m, tmp_path / "model")
    b = load_model(tmp_path / "model").inspect(d.test)
    assert [v.score for v in a] == [v.score for v in b]
    again = fit_model(d.train, TrainConfig(detector="patch-knn", options=opts, score="max+mean", seed=0, folds=3)).inspect(d.test)
    assert [v.score for v in a] == [v.score for v in again]


def test_scale_subset_is_a_fixed_spread_draw():
    from kizu.model.training import SCORE_SCALE_IMAGES, scale_subset

    assert list(scale_subset(5)) == [0, 1, 2, 3, 4]
    idx = scale_subset(100)
    assert len(idx) == SCORE_SCALE_IMAGES == len(set(idx)) and list(idx) == sorted(idx)
    assert 0 <= idx[0] and idx[-1] < 100 and list(idx) == list(scale_subset(100))
    # not every k-th image: on files from two cameras taking turns both are represented
    assert 0.3 < np.mean(idx % 2) < 0.7 and len(set(np.diff(idx))) > 2


def test_scales_come_from_fitted_images_mapped_as_unseen_ones(tmp_path):
    from kizu.calibration.strategies import HoldOut
    from kizu.model.training import scale_subset

    d = synth.make_shapes(50, 2, 2, seed=1)
    m = fit_model(d.train, TrainConfig(detector="patch-knn", options=PIXELS, seed=0, calibration="holdout", calibration_fraction=0.2, alpha=0.1))
    fit_idx = HoldOut(0.2).plan(50, 0).final_fit
    fit_images = d.train[:, None][fit_idx]  # 40 fitted images, of which 32 set the scales
    sub = scale_subset(40)
    left_out = m.detector.training_maps(fit_images[sub], sub)
    in_sample = m.detector.anomaly_maps(fit_images[sub])
    assert m.score_rule.scale == pytest.approx(ScoreRule("max+mean", sigma=m.score_rule.sigma).fit(left_out).scale)
    # searched without their own memory rows, fitted images are never nearer than in-sample
    assert (left_out >= in_sample - 1e-5).all() and left_out.mean() > in_sample.mean()
    # a loaded model no longer knows which rows came from which image: in-sample maps
    save_model(m, tmp_path / "m")
    loaded = load_model(tmp_path / "m").detector
    np.testing.assert_allclose(loaded.training_maps(fit_images[sub], sub), loaded.anomaly_maps(fit_images[sub]))


def test_a_memory_of_every_patch_still_gives_honest_scales():
    from kizu.detectors import create

    x = synth.make_shapes(12, 0, 0, seed=2, jitter="intended").train[:, None]  # no two images alike
    det = create("patch-knn", preset="pixels", coreset_fraction=1.0, edge_cells=0).fit(x, seed=0)
    # every training vector is in the memory: in-sample maps are 0; left out, each image's shape
    # (drawn with its own jitter) is new again, its empty background is not
    assert det.anomaly_maps(x).max() < 1e-2
    assert (det.training_maps(x, np.arange(12)).reshape(12, -1).max(axis=1) > 0.05).all()
