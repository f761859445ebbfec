"""Golden-template comparison (kizu.template) and its place in a model's image score."""

import json

import numpy as np
import pytest
from scipy import ndimage

from kizu import TrainConfig, fit_model, load_model, save_model
from kizu.calibration.strategies import cross_folds
from kizu.errors import KizuError, ModelFileError
from kizu.scoring.template import (
    DEPARTURE_SD_FLOOR,
    MIN_EXPLAINED,
    GoldenTemplate,
    MapTerm,
    TemplateTerm,
    grey,
    held_out_fit,
    reduction,
    register_images,
    template_to_display,
)
from kizu.scoring.terms import Scored, apply_terms
from kizu.synth import make_shapes
from tests.helpers import term

PATCH_KNN_PIXELS = {"detector": "patch-knn", "options": {"preset": "pixels"}}


def _fixtured_parts(n: int, seed: int, size: int = 32) -> np.ndarray:
    """``(n, 1, size, size)``: one bright disc, shifted by up to ±1.5 px, its own brightness and noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    out = []
    for _ in range(n):
        cy, cx = size / 2 + rng.uniform(-1.5, 1.5, 2)
        disc = 1.0 / (1.0 + np.exp((np.hypot(yy - cy, xx - cx) - size / 3) * 2.0))
        img = (0.15 + 0.55 * disc) * rng.uniform(0.95, 1.05) + rng.normal(0, 0.01, (size, size))
        out.append(img)
    return np.clip(np.stack(out), 0, 1)[:, None].astype(np.float32)


def _stained(images: np.ndarray, depth: float = 0.15, at: tuple[float, float] = (0.45, 0.55)) -> np.ndarray:
    h, size = images.shape[-2:]
    yy, xx = np.mgrid[0:h, 0:size]
    blob = np.exp(-((yy - size * at[0]) ** 2 + (xx - size * at[1]) ** 2) / (2 * (size / 10) ** 2))
    return (images * (1.0 - depth * blob)).astype(np.float32)


def test_registration_undoes_a_shift():
    ref = _fixtured_parts(1, 0)[0, 0].astype(np.float64)
    moved = ndimage.shift(ref, (1.3, -0.7), order=1, mode="nearest")
    back = register_images(moved[None], ref)[0]
    inner = (slice(4, -4), slice(4, -4))
    # what is left is the noise, smoothed by two bilinear resamplings
    assert np.abs(back - ref)[inner].max() < 0.25 * np.abs(moved - ref)[inner].max()


def test_template_explains_fixtured_parts_not_textures_and_finds_a_faint_stain():
    train, test = _fixtured_parts(40, 0), _fixtured_parts(10, 1)
    tpl = GoldenTemplate.fit(train)
    assert np.median(tpl.explained_variance(test)) >= MIN_EXPLAINED
    texture = np.random.default_rng(2).random((20, 1, 32, 32)).astype(np.float32)
    assert np.median(GoldenTemplate.fit(texture[:10]).explained_variance(texture[10:])) < 0.5
    good, bad = tpl.scores(test), tpl.scores(_stained(test))
    assert bad.min() > good.max()
    # the largest departure lies in the stain, and it is darker than the template
    z = tpl.departures(_stained(test[:1]))[0]
    peak = np.unravel_index(np.abs(z).argmax(), z.shape)
    assert abs(peak[0] - 32 * 0.45) <= 3 and abs(peak[1] - 32 * 0.55) <= 3 and z[peak] < 0


def test_departure_maps_are_in_each_images_own_frame():
    train = _fixtured_parts(40, 0, size=48)
    tpl = GoldenTemplate.fit(train)
    moved = ndimage.shift(train[:1, 0], (0, 4, -3), order=1, mode="nearest")[:, None]  # part 4 px down, 3 left
    stained = _stained(moved, 0.2, at=(0.3, 0.4))  # stain at row 14.4, column 19.2 of the image
    scores, maps = tpl.scores_and_maps(stained)
    assert maps.shape == (1, 48, 48) and maps.dtype == np.float32 and (maps >= 0).all()
    peak = np.unravel_index(maps[0].argmax(), maps[0].shape)
    assert abs(peak[0] - 48 * 0.3) <= 2 and abs(peak[1] - 48 * 0.4) <= 2
    # in the template's frame the same departure lies where the part was moved from
    z = np.abs(tpl.departures(stained)[0])
    at = np.unravel_index(z.argmax(), z.shape)
    assert abs(at[0] - (48 * 0.3 - 4)) <= 2 and abs(at[1] - (48 * 0.4 + 3)) <= 2
    np.testing.assert_allclose(scores, tpl.scores(stained))


def test_map_term_adds_template_departures_in_the_display_maps_units():
    rng = np.random.default_rng(1)
    display, t = rng.gamma(2.0, 0.5, (10, 16, 16)).astype(np.float32), rng.random((10, 8, 8)).astype(np.float32)
    scales = rng.uniform(1, 3, 10)
    term, peaks = MapTerm.fit(display, t, scales, factor=2)
    rel = display / scales[:, None, None]
    up = np.repeat(np.repeat(t, 2, axis=1), 2, axis=2)  # bilinear upsampling keeps the mean, not the spread
    assert term.rel_sd == pytest.approx(rel.std(), rel=1e-6) and term.t_mean == pytest.approx(up.mean(), rel=1e-3)
    # a model whose maps are c times larger (its scale too) adds c times as much: folds and final
    # model, fitted on different numbers of images, add the template alike
    np.testing.assert_allclose(term.combine(3 * display[:2], t[:2], 3 * 1.7, 2),
                               3 * term.combine(display[:2], t[:2], 1.7, 2), rtol=1e-5, atol=1e-5)
    # a calibration image's own peak uses the other images' statistics
    others = MapTerm.fit(display[1:], t[1:], scales[1:], factor=2)[0]
    assert peaks[0] == pytest.approx(float(others.combine(display[:1], t[:1], scales[0], 2).max()), rel=1e-5)
    assert MapTerm.from_json(json.loads(json.dumps(term.to_json()))) == term
    for damaged in ({"t_sd": 0.0}, {"t_sd": 1e-300}, {"weight": True}, {"rel_sd": "1"}, {"weight": None}):
        with pytest.raises(ValueError, match="map term"):
            MapTerm.from_json({**term.to_json(), **damaged})
    with pytest.raises(ValueError, match="map term"):
        MapTerm.from_json({"t_mean": 0.0})


def test_template_maps_cover_the_pixels_their_blocks_averaged():
    # 32 x 31 px block-averaged by 3: 10 x 10 blocks cover 30 x 30 px, the remainder is dropped
    t = np.zeros((1, 10, 10), np.float32)
    t[0, 9, 4] = 1.0  # the block of rows 27-29, columns 12-14
    up = template_to_display(t, (32, 31), factor=3)
    assert up.shape == (1, 32, 31)
    assert np.unravel_index(up[0].argmax(), up[0].shape) == (28, 13)
    np.testing.assert_array_equal(up[0, 30:], np.repeat(up[0, 29:30], 2, axis=0))  # the edge repeated


def test_large_images_are_block_averaged_first():
    small = _fixtured_parts(12, 10, size=100)
    large = np.repeat(np.repeat(small, 3, axis=2), 3, axis=3)[:, :, :299, :290]  # 299 x 290 px
    assert grey(large, reduction(299, 290)).shape == (12, 99, 96) and reduction(2, 1000) == 2 and reduction(64, 64) == 1
    tpl = GoldenTemplate.fit(large[:10])
    assert tpl.factor == 3 and tpl.mean.shape == (99, 96) and tpl.sigma == pytest.approx(96 / 32)
    assert tpl.scores(_stained(large[10:])).min() > tpl.scores(large[10:]).max()


def test_held_out_scores_come_from_templates_that_did_not_see_the_image():
    x = _fixtured_parts(30, 3)
    scores, explained = held_out_fit(x, cross_folds(len(x), 3, 0))
    perm = np.random.default_rng(0).permutation(30)
    held = np.array_split(perm, 3)[1]
    expected = GoldenTemplate.fit(x[np.setdiff1d(perm, held)]).scores(x[held])
    np.testing.assert_allclose(scores[held], expected)
    assert scores.mean() > GoldenTemplate.fit(x).scores(x).mean()  # in-sample images depart less
    # stopping early leaves the other folds unscored
    stopped, _ = held_out_fit(x, cross_folds(len(x), 3, 0), stop_below=1.1)
    assert np.isnan(stopped).sum() == 20


def test_term_round_trips_and_rejects_damaged_state():
    x = _fixtured_parts(20, 4)
    tpl = GoldenTemplate.fit(x[:15])
    term = TemplateTerm.fit_statistics(tpl, tpl.scores(x[15:]), np.linspace(1, 2, 5), 0.995)
    again = TemplateTerm.from_json(json.loads(json.dumps(term.to_json())), tpl.state_dict())
    scored = Scored(np.zeros((5, 32, 32), np.float32), np.ones(5))
    assert np.array_equal(again.apply(scored, x[15:]).scores, term.apply(scored, x[15:]).scores)
    bad_state = {**tpl.state_dict(), "spread": np.zeros((32, 32), np.float32)}
    with pytest.raises(ValueError, match="do not fit"):
        TemplateTerm.from_json(term.to_json(), bad_state)
    with pytest.raises(ValueError, match="images give"):
        tpl.scores(np.zeros((1, 1, 16, 16), np.float32))


def test_model_turns_it_on_for_fixtured_parts_and_it_finds_faint_stains(tmp_path):
    train, test = _fixtured_parts(60, 5), _fixtured_parts(20, 6)
    on = fit_model(train, TrainConfig(seed=0, **PATCH_KNN_PIXELS))
    off = fit_model(train, TrainConfig(seed=0, template=False, **PATCH_KNN_PIXELS))
    assert on.template is not None and on.summary["template"] and off.template is None
    assert on.summary["template_explained"] >= MIN_EXPLAINED
    stained = _stained(test, 0.04)  # 4 % darker at its centre: the patches hardly see it

    def separation(m):
        good = np.array([v.score for v in m.inspect(test)])
        bad = np.array([v.score for v in m.inspect(stained)])
        return (bad[:, None] > good[None, :]).mean()

    assert separation(on) > 0.95 and separation(off) < 0.9
    # calibration scores carry the term: the threshold is in the combined score's units
    assert len(on.calibration.scores) == 60 and on.calibration.threshold != off.calibration.threshold
    # saved and loaded: the same scores; the same seed: the same model
    save_model(on, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    s = [v.score for v in on.inspect(stained)]
    assert [v.score for v in loaded.inspect(stained)] == s
    assert [v.score for v in fit_model(train, TrainConfig(seed=0, **PATCH_KNN_PIXELS)).inspect(stained)] == s
    assert all(np.array_equal(a.anomaly_map, b.anomaly_map) for a, b in zip(on.inspect(stained), loaded.inspect(stained)))


def test_the_map_shows_the_stain_the_template_finds():
    train, test = _fixtured_parts(60, 5), _fixtured_parts(20, 6)
    on = fit_model(train, TrainConfig(seed=0, **PATCH_KNN_PIXELS))
    off = fit_model(train, TrainConfig(seed=0, template=False, **PATCH_KNN_PIXELS))
    assert on.template.map is not None
    stained = _stained(test, 0.05, at=(0.4, 0.6))
    centre = (round(32 * 0.4), round(32 * 0.6))

    def stain_contrast(m):  # how much higher the map is at the stain than at the same place on good images
        good = np.stack([v.anomaly_map for v in m.inspect(test)])
        bad = np.stack([v.anomaly_map for v in m.inspect(stained)])
        return float(np.median(bad[:, centre[0], centre[1]] - good[:, centre[0], centre[1]]) / good.std())

    assert stain_contrast(on) > 4.0 and stain_contrast(off) < 2.0
    # flagged stains get a region over the stain, not the fallback around the map's peak
    flagged = [v for v in on.inspect(stained) if v.defective]
    assert len(flagged) >= 5
    inside = [any(r["peak"] > on.calibration.pixel_threshold and r["x"] <= centre[1] < r["x"] + r["width"]
                  and r["y"] <= centre[0] < r["y"] + r["height"] for r in v.regions) for v in flagged]
    assert np.mean(inside) >= 0.8
    # good images show a region no more often than the pixel threshold promises (alpha 5 %, loosely)
    assert np.mean([bool(v.regions) for v in on.inspect(test)]) <= 0.25


def test_model_leaves_it_off_where_the_template_does_not_explain_the_images():
    d = make_shapes(40, 2, 2, seed=1, jitter="intended")  # radii vary: R² about 0.96
    m = fit_model(d.train, TrainConfig(seed=0, **PATCH_KNN_PIXELS))
    assert m.template is None and m.summary["template_explained"] < MIN_EXPLAINED
    texture = np.random.default_rng(0).random((30, 1, 24, 24)).astype(np.float32)
    m = fit_model(texture, TrainConfig(seed=0, **PATCH_KNN_PIXELS))
    assert m.template is None and m.summary["template_explained"] < 0.5
    # detectors without a fitted score rule (the seed's autoencoder stays exact) leave it off
    m = fit_model(_fixtured_parts(30, 7), TrainConfig(detector="mt", seed=0))
    assert m.template is None and m.summary["template_explained"] is None


def test_forcing_it_needs_enough_calibration_images():
    with pytest.raises(KizuError, match="at least 8 calibration images"):
        fit_model(_fixtured_parts(20, 8), TrainConfig(seed=0, template=True, calibration="holdout", alpha=0.25,
                                                      calibration_fraction=0.2, **PATCH_KNN_PIXELS))
    m = fit_model(_fixtured_parts(20, 8), TrainConfig(seed=0, template=True, **PATCH_KNN_PIXELS))
    assert m.template is not None


def test_forced_on_a_detectors_own_image_score_it_joins_as_a_soft_maximum():
    # mt scores images itself (MD / k): the map's peak is not its score, so the template's score
    # joins as a soft maximum; the map still shows the template's departures
    train, test = _fixtured_parts(40, 11), _fixtured_parts(10, 12)
    m = fit_model(train, TrainConfig(detector="mt", score="max+mean", seed=0, template=True))
    assert m.terms[0].peak_scale is None and m.template.map is not None
    x = m.preprocessor.apply_all(list(_stained(test, 0.1)))
    own = apply_terms(m.terms[:-1], Scored(*m.runtime.maps(x)), x).scores  # MD / k (times the reference's factor)
    expected = m.template.combine(own, m.template.template.scores(x))
    np.testing.assert_allclose([v.score for v in m.inspect(_stained(test, 0.1))], expected)


def _saved(tmp_path):
    m = fit_model(_fixtured_parts(30, 9), TrainConfig(seed=0, **PATCH_KNN_PIXELS))
    assert m.template is not None
    save_model(m, tmp_path / "m")
    return tmp_path / "m"


def test_a_model_with_a_template_saves_it_as_its_last_score_term(tmp_path):
    from safetensors.numpy import load_file

    path = _saved(tmp_path)
    meta = json.loads((path / "model.json").read_text())
    assert [t["kind"] for t in meta["score_terms"]] == ["rule", "reference", "template"]
    assert {"template.mean", "template.spread", "template.reference"} <= set(load_file(str(path / "weights.safetensors")))


@pytest.mark.parametrize("damage, names", [
    (lambda meta, arrays: term(meta, "template").update(sd=-1.0), "model.json"),
    (lambda meta, arrays: term(meta, "template").update(sigma=float("inf")), "model.json"),
    (lambda meta, arrays: term(meta, "template").update(factor=2), "weights.safetensors"),
    (lambda meta, arrays: term(meta, "template")["map"].update(rel_sd=-1.0), "model.json"),
    (lambda meta, arrays: arrays["template.mean"].__setitem__((3, 3), np.nan), "weights.safetensors"),
])
def test_a_damaged_template_is_a_clear_error_naming_the_file(tmp_path, damage, names):
    from safetensors.numpy import load_file, save_file

    path = _saved(tmp_path)
    meta = json.loads((path / "model.json").read_text())
    arrays = load_file(str(path / "weights.safetensors"))
    damage(meta, arrays)
    (path / "model.json").write_text(json.dumps(meta))
    save_file(arrays, str(path / "weights.safetensors"))
    with pytest.raises(ModelFileError, match="template") as err:
        load_model(path)
    assert names in str(err.value)


def test_a_model_saved_without_a_map_term_loads_and_scores_with_the_soft_maximum(tmp_path):
    path = _saved(tmp_path)
    meta = json.loads((path / "model.json").read_text())
    del term(meta, "template")["map"]  # as the previous version wrote it
    (path / "model.json").write_text(json.dumps(meta))
    m = load_model(path)
    assert m.template.map is None
    test = _stained(_fixtured_parts(4, 13), 0.1)
    x = m.preprocessor.apply_all(list(test))
    before = apply_terms(m.terms[:-1], Scored(*m.runtime.maps(x)), x)  # the rule and the reference
    expected = m.template.combine(before.scores, m.template.template.scores(x))
    verdicts = m.inspect(test)
    np.testing.assert_allclose([v.score for v in verdicts], expected)
    np.testing.assert_allclose(verdicts[0].anomaly_map, before.display[0], rtol=1e-6)  # the detector's map alone


def test_holdout_calibration_scores_are_what_the_model_gives_those_images():
    # hold-out calibration images are scored by the final model itself; with the map term their
    # stored scores differ only by the leave-one-out statistics
    x = _fixtured_parts(60, 14)
    m = fit_model(x, TrainConfig(seed=0, calibration="holdout", calibration_fraction=0.3, alpha=0.1, **PATCH_KNN_PIXELS))
    assert m.template is not None and m.template.map is not None
    from kizu.calibration.strategies import HoldOut
    cal_idx = HoldOut(0.3).plan(60, 0).final_held
    again = np.array([v.score for v in m.inspect(x[cal_idx])])
    stored = np.asarray(m.calibration.scores)
    assert np.abs(again - stored).max() < 0.05 * np.ptp(stored)


def test_forced_on_tiles_it_joins_the_stitched_maps(tmp_path):
    x = np.repeat(_fixtured_parts(24, 15, size=48), 3, axis=1)  # colour
    m = fit_model(x, TrainConfig(seed=0, tile=32, tile_stride=16, template=True, **PATCH_KNN_PIXELS))
    assert m.template.map is not None
    v = m.inspect(_stained(x[:3], 0.2))
    assert v[0].anomaly_map.shape == (48, 48)
    save_model(m, tmp_path / "m")
    again = load_model(tmp_path / "m").inspect(_stained(x[:3], 0.2))
    assert [a.score for a in again] == [a.score for a in v]


def test_calibration_scores_are_combined_with_the_others_statistics():
    # new images are standardised by statistics they are not part of; so must each calibration
    # image be, or a small calibration set's threshold flags more new good images than alpha
    from kizu.calibration import conformal_threshold

    rng = np.random.default_rng(0)
    n, alpha, trials = 12, 0.1, 4000
    far_own, far_naive = [], []
    for _ in range(trials):
        s, t = rng.lognormal(size=n + 200), rng.gumbel(size=n + 200)
        term = TemplateTerm.fit_statistics(GoldenTemplate(np.zeros((2, 2)), np.ones((2, 2)), np.ones((2, 2)), 1.0),
                                t[:n], s[:n], 1.0)
        new = term.combine(s[n:], t[n:])
        far_own.append((new > conformal_threshold(TemplateTerm.own_combined(s[:n], t[:n]), alpha)).mean())
        far_naive.append((new > conformal_threshold(term.combine(s[:n], t[:n]), alpha)).mean())
    assert np.mean(far_own) <= alpha + 0.005 < np.mean(far_naive)


def test_noise_free_identical_good_images_give_a_defect_a_finite_score(tmp_path):
    """Identical renders depart from their template by ~0; without a floor on that spread a small
    defect's score was ~1e11 (and its map covered the image)."""
    base = np.full((1, 32, 32), 0.5, np.float32)
    base[:, 8:16, 6:22] = 0.8
    bad = base.copy()
    bad[:, 22:25, 20:23] = 0.0
    model = fit_model([base.copy() for _ in range(20)], TrainConfig(seed=0, **PATCH_KNN_PIXELS))
    assert model.template is not None
    assert model.template.sd >= DEPARTURE_SD_FLOOR and model.template.map.t_sd >= DEPARTURE_SD_FLOOR
    copy, verdict = model.inspect([base, bad])
    assert np.isfinite(verdict.score) and 10 * copy.score < verdict.score < 1e4
    save_model(model, tmp_path / "m")
    assert load_model(tmp_path / "m").inspect([bad])[0].score == pytest.approx(verdict.score, rel=1e-6)


def test_the_departure_floor_holds_for_calibration_images_as_for_new_ones():
    """Identical template scores: each calibration image's own combined score (with the others'
    statistics) must be what a term fitted on the others gives it, floor included."""
    tpl = GoldenTemplate(np.zeros((2, 2)), np.ones((2, 2)), np.ones((2, 2)), 1.0)
    s, t = np.random.default_rng(0).lognormal(size=10), np.full(10, 0.3)
    t[0] = 0.3 + 1e-9
    own = TemplateTerm.own_combined(s, t)
    for i in range(10):
        rest = np.arange(10) != i
        others = TemplateTerm.fit_statistics(tpl, t[rest], s[rest], 1.0)
        assert others.sd == DEPARTURE_SD_FLOOR
        assert own[i] == pytest.approx(float(others.combine(s[i:i + 1], t[i:i + 1])[0]), rel=1e-9)
    display = np.random.default_rng(1).random((6, 8, 8)).astype(np.float32)
    flat = np.full((6, 8, 8), 0.2, np.float32)
    flat[0, 3, 3] += 1e-4  # departures that barely vary: their spread is the floor's
    term, peaks = MapTerm.fit(display, flat, np.ones(6))
    assert term.t_sd == DEPARTURE_SD_FLOOR
    for i in range(6):
        rest = np.arange(6) != i
        others = MapTerm.fit(display[rest], flat[rest], np.ones(5))[0]
        assert peaks[i] == pytest.approx(float(others.combine(display[i:i + 1], flat[i:i + 1]).max()), rel=1e-5)
