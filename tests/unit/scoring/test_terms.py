"""Score terms: calibration images and new images go through the same code."""

import numpy as np

from kizu import TrainConfig, fit_model
from kizu.calibration.strategies import HoldOut
from kizu.scoring import ReferenceTerm, RuleTerm, TemplateTerm
from kizu.synth.fine import make_fine
from tests.helpers import PIXELS


def test_without_leave_one_out_terms_calibration_scores_are_the_models_own_scores():
    # hold-out calibration and only the score rule: each calibration score is exactly what the
    # final model gives the same image as a new one
    data = make_fine(40, 0, 0, size=32, seed=2, mode="texture")
    config = TrainConfig(detector="patch-knn", options=PIXELS, seed=0, calibration="holdout",
                         calibration_fraction=0.5, reference=False, template=False)
    model = fit_model(data.train, config)
    assert [type(t) for t in model.terms] == [RuleTerm]
    held = HoldOut(0.5).plan(40, 0).final_held
    np.testing.assert_array_equal(model.predict(data.train[held]).scores, model.calibration.scores)


def test_terms_are_in_order_and_the_display_map_is_smoothed_once():
    data = make_fine(30, 4, 1, size=32, seed=3, mode="parts")
    model = fit_model(data.train, TrainConfig(detector="patch-knn", options=PIXELS, seed=0, template=True))
    assert [type(t) for t in model.terms] == [RuleTerm, ReferenceTerm, TemplateTerm]
    x = model.preprocessor.apply_all(list(data.test[:, None]))
    scored = model.score(x)
    rule_only = model.terms[0].apply(type(scored)(*model.runtime.maps(x)), x)
    # the rule's max part is the peak of the display map it made (one smoothing for both)
    peaks = rule_only.display.reshape(len(x), -1).max(axis=1).astype(np.float64)
    mean = rule_only.maps.reshape(len(x), -1).mean(axis=1, dtype=np.float64)
    s = model.score_rule.scale
    np.testing.assert_allclose(rule_only.scores, peaks / s[0] + mean / s[1], rtol=1e-12)
    assert scored.display.shape == rule_only.display.shape
