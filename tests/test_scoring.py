import json

import numpy as np
import pytest

from kizu import InspectionModel, synth
from kizu.scoring import ScoreRule, reduce_maps


def _maps(n=6, seed=0):
    return np.random.default_rng(seed).random((n, 12, 12)).astype(np.float32)


def test_reducers_on_a_known_map():
    m = np.zeros((1, 10, 10), np.float32)
    m[0, 2, 3] = 5.0
    assert reduce_maps(m, "mean")[0] == pytest.approx(0.05)
    assert reduce_maps(m, "max")[0] == pytest.approx(5.0)
    assert reduce_maps(m, "topk", topk=0.02)[0] == pytest.approx(2.5)  # top 2 of 100 pixels: 5 and 0
    assert reduce_maps(m, "max", sigma=1.0)[0] < 5.0  # smoothing spreads the peak


def test_max_plus_mean_is_each_term_over_its_training_median():
    train = _maps(7, seed=1)
    rule = ScoreRule("max+mean", sigma=1.0).fit(train)
    med_max = np.median(reduce_maps(train, "max", sigma=1.0))
    med_mean = np.median(reduce_maps(train, "mean"))
    assert rule.scale == pytest.approx((med_max, med_mean))
    test = _maps(5, seed=2)
    expected = reduce_maps(test, "max", sigma=1.0) / med_max + reduce_maps(test, "mean") / med_mean
    np.testing.assert_allclose(rule(test), expected, rtol=1e-6)
    # on the training maps themselves the median of each term is 1, so the median score is about 2
    assert np.median(rule(train)) == pytest.approx(2.0, abs=0.3)


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
    m = InspectionModel.train(d.train, detector="patch-knn", detector_options=opts, seed=0, folds=3)
    assert m.score_rule.reducer == "max+mean" and m.score_rule.scale is not None  # patch-knn's default rule
    other = InspectionModel.train(d.train, detector="patch-knn", detector_options=opts, seed=0, folds=3, reducer="max")
    assert other.score_rule.reducer == "max" and other.score_rule.scale is None
    # each fold fitted its own scales, so the out-of-fold scores of good images sit near 2 (1 + 1)
    assert 1.0 < np.median(m.calibration.scores) < 4.0
    a = m.inspect(d.test)
    m.save(tmp_path / "model")
    b = InspectionModel.load(tmp_path / "model").inspect(d.test)
    assert [v.score for v in a] == [v.score for v in b]
    again = InspectionModel.train(d.train, detector="patch-knn", detector_options=opts, reducer="max+mean", seed=0,
                                  folds=3).inspect(d.test)
    assert [v.score for v in a] == [v.score for v in again]


def test_scales_come_from_evenly_spaced_fitted_images():
    from kizu.model import SCORE_SCALE_IMAGES, scale_subset, split_calibration

    assert list(scale_subset(5)) == [0, 1, 2, 3, 4]
    idx = scale_subset(100)
    assert len(idx) == SCORE_SCALE_IMAGES and idx[0] == 0 and idx[-1] == 99
    d = synth.make_shapes(50, 2, 2, seed=1)
    m = InspectionModel.train(d.train, detector="patch-knn", detector_options={"backbone": "pixels"}, seed=0,
                              calibration="holdout", calibration_fraction=0.2)
    fit_idx, _ = split_calibration(50, 0.2, seed=0)
    fit_images = d.train[:, None][fit_idx]  # 40 fitted images, of which 32 set the scales
    expected = ScoreRule("max+mean", sigma=m.score_rule.sigma).fit(m.detector.anomaly_maps(fit_images[scale_subset(40)]))
    all_fitted = ScoreRule("max+mean", sigma=m.score_rule.sigma).fit(m.detector.anomaly_maps(fit_images))
    assert m.score_rule.scale == pytest.approx(expected.scale)
    assert m.score_rule.scale != pytest.approx(all_fitted.scale, rel=1e-9)
