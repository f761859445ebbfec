"""Training: learn "normal" from good images and calibrate the threshold on images a model did not fit.

``fit_model(images, config)`` runs these steps, each a function below:

1. ``_preprocess``: choose channels and working size from the training images (``Preprocessor``).
2. ``_held_out_template``: the golden template and its comparisons of held-out images (if wanted).
3. ``_side_fits``: the calibration scheme's extra fits (cross-conformal folds) score the images
   they did not see.
4. ``_fit_final``: the final detector on the fitted images, then the score rule's scales.
5. ``_final_held``: the final model scores its held-out images (hold-out calibration).
6. ``_fit_terms``: the score reference and the golden template, fitted on the held-out images.
7. ``_calibrate``: conformal threshold and the regions' pixel threshold.

Calibration images go through the same score terms as new images (``kizu.scoring.terms``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import defaults
from ..calibration.conformal import Calibration, conformal_threshold
from ..calibration.guarantees import min_calibration_size
from ..calibration.strategies import CalibrationPlan, choose_strategy
from ..detectors import create, detector_class
from ..detectors.base import Detector
from ..errors import KizuError
from ..ops.maps import map_peaks
from ..runtime.torch_runtime import TorchRuntime
from ..scoring.reference import ReferenceTerm
from ..scoring.rule import RuleTerm, ScoreRule
from ..scoring.template import HeldOutTemplate, TemplateTerm, held_out_template
from ..scoring.terms import HeldOut, Scored, ScoreTerm, apply_terms
from .config import TrainConfig
from .inspection import InspectionModel, as_image_list
from .preprocess import Preprocessor

#: a fitted score rule (``max+mean``) takes its scales from at most this many fitted images: a
#: mean of 32 is stable, and it keeps the cross-calibration folds cheap on large images
SCORE_SCALE_IMAGES = 32
#: display maps of at most this many images are held at once while scoring training images
CHUNK = 64
#: good calibration images kept in a model for checking an export
CHECK_IMAGES = 4


@dataclass(frozen=True)
class TrainingStep:
    """Where training is, for progress displays: ``stage`` names it ("fold 2/5", "final fit", ...),
    ``fit`` of ``fits`` counts the detector fits, ``step`` of ``steps`` the current fit's own progress
    (``info``: e.g. its loss)."""

    stage: str
    fit: int
    fits: int
    step: int = 0
    steps: int = 0
    info: dict[str, float] = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        """Share of the whole training done, in [0, 1]."""
        within = self.step / self.steps if self.steps else 0.0
        return min(1.0, (self.fit - 1 + within) / max(self.fits, 1))


ProgressCallback = Callable[[TrainingStep], None]


def fit_model(images: Sequence[np.ndarray] | np.ndarray, config: TrainConfig | None = None, *,
              paths: list | None = None, progress: ProgressCallback | None = None,
              defective_images: list[np.ndarray] | None = None, device: str = "auto") -> InspectionModel:
    """Learn "normal" from good ``images`` and calibrate: a ready ``InspectionModel``.

    ``images``: ``(C, H, W)`` arrays in [0, 1] (or ``(N, C, H, W)`` / ``(N, H, W)``), or any sequence
    that reads them on demand (``kizu.io.ImageFiles``: each file is read twice, never all held).
    ``paths`` name the images in errors. ``defective_images``: known defects for Taguchi variable
    selection (``mt``). ``device``: where the detector runs ("auto", "cpu", "cuda").
    """
    config = config or TrainConfig()
    pre, x = _preprocess(images, paths, config)
    detector = create(config.detector, device=device, **config.options)
    plan = calibration_plan(len(x), config)
    rule = _rule_term(detector, pre, config)
    report = _Reporter(progress, len(plan.side_fits) + 1)
    template = _held_out_template(x, plan, pre, rule, config, report)
    t_start = time.perf_counter()
    side = _side_fits(detector, pre, rule, x, plan, config.seed, template.template is not None, report)
    x_fit = x if len(plan.final_fit) == len(x) else x[plan.final_fit]  # no copy when every image is fitted
    rule, train_maps = _fit_final(detector, pre, rule, x_fit, config.seed, defective_images, report)
    fit_seconds = time.perf_counter() - t_start
    runtime = TorchRuntime(detector, pre.tile, pre.tile_stride)
    held = side if side is not None else _final_held(runtime, rule, x, plan, template.template is not None)
    terms, held = _fit_terms(rule, held, x[plan.held_out], config, template)
    model = InspectionModel(pre, runtime, terms, Calibration([], config.alpha), detector_name=detector.name,
                            detector_config=detector.config(), config=config,
                            check_images=check_images(x[plan.held_out]))
    model.calibration = _calibrate(model, held, x_fit, train_maps, config)
    model.summary = _summary(model, plan, config, len(x), fit_seconds, template, detector)
    return model


def calibration_plan(n: int, config: TrainConfig) -> CalibrationPlan:
    """Which of ``n`` good images the calibration scheme fits and holds out; refuses (before any
    work) a set too small to calibrate at ``config.alpha`` (``check_enough_images``)."""
    own_out = detector_class(config.detector).leaves_own_out and config.tile is None
    plan = choose_strategy(config.calibration, n, fraction=config.calibration_fraction, folds=config.folds,
                           threshold_rule=config.threshold_rule, own_out=own_out).plan(n, config.seed)
    check_enough_images(n, len(plan.held_out), config)
    return plan


def check_enough_images(n: int, n_calibration: int, config: TrainConfig) -> None:
    """Refuse, before any fitting, a training set whose calibration images are too few for the
    threshold rule to ever flag anything at ``config.alpha`` (conformal p-values are at least
    1/(n_cal + 1)); say how many good images would do, and which alpha these would allow."""
    rule = config.threshold_rule
    if rule == "train-quantile":
        return
    delta = config.delta if rule == "conditional" else None
    need = min_calibration_size(config.alpha, delta)
    if n_calibration >= need:
        return
    share = n_calibration / n if n else 1.0
    images = math.ceil(need / share) if share > 0 else need
    if rule == "conformal" and n_calibration:
        other = f"--alpha {math.ceil(1000 / (n_calibration + 1)) / 1000:g} (or larger) with these"
    else:
        other = "a larger --alpha or --delta"
    raise KizuError(
        f"{n} good images give {n_calibration} calibration scores, too few for the {rule} rule to flag anything at "
        f"alpha={config.alpha:g} (it needs {need}): use at least {images} good images, or {other}")


class _Reporter:
    """Turns detector progress into ``TrainingStep`` events for the caller's callback."""

    def __init__(self, callback: ProgressCallback | None, fits: int):
        self.callback, self.fits, self.fit = callback, fits, 0

    def stage(self, name: str, fit: bool = False) -> Callable[[int, int, dict], None] | None:
        """Announce a stage; ``fit``: a detector fit starts (returns its progress function)."""
        if fit:
            self.fit += 1
        if self.callback is None:
            return None
        fit_no = max(self.fit, 1)
        done = 0 if fit or self.fit == 0 else 1  # a stage after a fit: that fit is complete
        self.callback(TrainingStep(name, fit_no, self.fits, done, done))

        def detector_progress(step: int, total: int, info: dict) -> None:
            self.callback(TrainingStep(name, fit_no, self.fits, step, total, dict(info)))

        return detector_progress if fit else None


def _preprocess(images, paths: list | None, config: TrainConfig) -> tuple[Preprocessor, np.ndarray]:
    """The working size and channels for these images, and the images through it ``(N, C, h, w)``."""
    if isinstance(images, (np.ndarray, list, tuple)):  # other sequences (files read on demand) stay lazy
        images = as_image_list(images)
    paths = [Path(p) for p in paths] if paths is not None else [Path(f"image[{i}]") for i in range(len(images))]
    pre = Preprocessor.for_training(images, paths, resize_to=config.resize, tile=config.tile,
                                    tile_stride=config.tile_stride, max_side=config.max_side)
    return pre, pre.apply_all(images, paths)


def _rule_term(detector: Detector, pre: Preprocessor, config: TrainConfig) -> RuleTerm:
    """The score rule before its scales are fitted: the detector's default reduction and
    ``defaults.SIGMA`` px of smoothing, unless the config says otherwise."""
    sigma = defaults.SIGMA if config.sigma is None else config.sigma
    rule = ScoreRule(config.score or detector.default_reducer, sigma, config.topk)
    return RuleTerm(rule, own_score=detector.has_own_image_score and pre.tile is None)


def _held_out_template(x: np.ndarray, plan: CalibrationPlan, pre: Preprocessor, rule: RuleTerm,
                       config: TrainConfig, report: _Reporter) -> HeldOutTemplate:
    """The golden template when asked for, or (automatic) where the score rule is fitted and images
    are not tiled and held-out good images are explained well enough (``held_out_template``)."""
    wanted = config.template is not False and (config.template or (rule.rule.needs_fit and pre.tile is None))
    if not wanted:
        return HeldOutTemplate.OFF
    report.stage("golden template")
    return held_out_template(x, list(plan.template_splits or ()), plan.final_fit, plan.final_held,
                             bool(config.template))


def _side_fits(detector: Detector, pre: Preprocessor, rule: RuleTerm, x: np.ndarray, plan: CalibrationPlan,
               seed: int, keep_display: bool, report: _Reporter) -> HeldOut | None:
    """Held-out scores from the scheme's extra fits (cross-conformal folds; None without any): each
    a fresh detector of the same configuration, its own score-rule scales, scoring its held images."""
    if not plan.side_fits:
        return None
    n = len(x)
    scores, peaks, scales = np.empty(n), np.empty(n), np.empty(n)
    display = np.empty((n, *pre.size), np.float32) if keep_display else None
    peak_scaled = False
    for k, split in enumerate(plan.side_fits):
        fold_progress = report.stage(f"fold {k + 1}/{len(plan.side_fits)}", fit=True)
        fold = type(detector).from_config(detector.config(), device=detector.device)
        fold.fit(pre.fit_view(x[split.fit]), seed=seed + 1000 * (k + 1), progress=fold_progress)
        fold_rule = _fit_rule(rule, fold, pre, x[split.fit])
        x_held = x[split.held]
        held = fold_rule.apply(Scored(*TorchRuntime(fold, pre.tile, pre.tile_stride).maps(x_held)), x_held)
        scores[split.held], peaks[split.held], scales[split.held] = held.scores, map_peaks(held.display), held.map_scale
        peak_scaled = held.peak_scale is not None
        if display is not None:
            display[split.held] = held.display
    return HeldOut(scores, display, peaks, scales, peak_scaled)


def _fit_final(detector: Detector, pre: Preprocessor, rule: RuleTerm, x_fit: np.ndarray, seed: int,
               defective_images: list[np.ndarray] | None, report: _Reporter) -> tuple[RuleTerm, np.ndarray]:
    """Fit the final detector (and Taguchi variable selection), then the score rule's scales; returns
    the rule and the fitted images' in-sample maps."""
    progress = report.stage("final fit", fit=True)
    detector.fit(pre.fit_view(x_fit), seed=seed, progress=progress)
    if defective_images:
        if not hasattr(detector, "select_variables"):
            raise KizuError(f"detector {detector.name!r} has no variable selection from defective images")
        x_bad = pre.apply_all(as_image_list(defective_images))
        detector.select_variables(pre.fit_view(x_fit), pre.fit_view(x_bad), seed=seed)
    report.stage("calibration")
    train_maps = TorchRuntime(detector, pre.tile, pre.tile_stride).maps(x_fit)[0]
    return _fit_rule(rule, detector, pre, x_fit), train_maps


def _fit_rule(rule: RuleTerm, detector: Detector, pre: Preprocessor, x_fit: np.ndarray) -> RuleTerm:
    """The rule's scales from at most ``SCORE_SCALE_IMAGES`` of the fitted images, mapped as the
    detector would map unseen good images (``Detector.training_maps``): in-sample maps are lower,
    and by how much depends on how many images were fitted, so a cross-calibration fold (fewer
    images) would otherwise get other scales than the final model and a threshold that does not fit."""
    if not rule.rule.needs_fit or len(x_fit) == 0:
        return rule
    idx = scale_subset(len(x_fit))
    if pre.tile is None:
        maps = detector.training_maps(x_fit[idx], idx)
    else:  # the detector was fitted on tiles, not on these images: in-sample maps
        maps = TorchRuntime(detector, pre.tile, pre.tile_stride).maps(x_fit[idx])[0]
    return rule.fit(maps)


def scale_subset(n: int) -> np.ndarray:
    """Sorted indices of the (at most ``SCORE_SCALE_IMAGES``) fitted images whose maps set a score
    rule's scales: a fixed pseudo-random draw, not every k-th image, which could fall in step with
    a periodic order of the files (say, two cameras taking turns)."""
    if n <= SCORE_SCALE_IMAGES:
        return np.arange(n)
    return np.sort(np.random.default_rng(n).choice(n, SCORE_SCALE_IMAGES, replace=False))


def _final_held(runtime: TorchRuntime, rule: RuleTerm, x: np.ndarray, plan: CalibrationPlan,
                keep_display: bool) -> HeldOut:
    """The final model's rule scores of its calibration images: images it did not fit (hold-out),
    or every fitted image without what the detector learnt from it (leave-own-out)."""
    x_held = x[plan.final_held]
    if plan.own_out:
        maps = np.concatenate([runtime.detector.training_maps(x_held[i:i + CHUNK], plan.final_held[i:i + CHUNK])
                               for i in range(0, len(x_held), CHUNK)])
        held = rule.apply(Scored(maps), x_held)
    else:
        held = rule.apply(Scored(*runtime.maps(x_held)), x_held)
    peaks = map_peaks(held.display)
    return HeldOut(held.scores, held.display if keep_display else None, peaks, np.full(len(x_held), held.map_scale),
                   held.peak_scale is not None)


def _fit_terms(rule: RuleTerm, held: HeldOut, x_held: np.ndarray, config: TrainConfig,
               template: HeldOutTemplate) -> tuple[list[ScoreTerm], HeldOut]:
    """The score terms after the rule, each fitted on the held-out images as scored so far: the
    score reference (by default where the rule is fitted) and the golden template (where on)."""
    terms: list[ScoreTerm] = [rule]
    use_reference = rule.rule.needs_fit if config.reference is None else bool(config.reference)
    if use_reference and len(held.scores) >= ReferenceTerm.MIN_IMAGES:
        reference, held = ReferenceTerm.fit(held, x_held)
        terms.append(reference)
    if template.template is not None:
        term, held = TemplateTerm.fit(held, template)
        terms.append(term)
    return terms, held


def _calibrate(model: InspectionModel, held: HeldOut, x_fit: np.ndarray, train_maps: np.ndarray,
               config: TrainConfig) -> Calibration:
    """The threshold from the held-out scores (the seed's ``train-quantile`` rule uses the fitted
    images' in-sample scores) and the regions' pixel threshold: the conformal threshold of good
    images' display-map peaks, in the final model's scale, so a good image shows a region with
    probability <= alpha."""
    train_scores, train_peaks = _scores_and_peaks(model, x_fit, train_maps)
    cal = Calibration.fit(held.scores, config.alpha, config.threshold_rule, train_scores, delta=config.delta)
    peaks = held.peaks_in_scale(model.terms[0].map_scale) if len(held.peaks) else train_peaks
    cal.pixel_threshold = _pixel_threshold(peaks, config.alpha)
    return cal


def _scores_and_peaks(model: InspectionModel, x: np.ndarray, maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(N,)`` image scores and display-map peaks of preprocessed images with their maps, ``CHUNK``
    images at a time (no N display maps at once)."""
    parts = [apply_terms(model.terms, Scored(maps[i:i + CHUNK], model.runtime.own_scores(x[i:i + CHUNK])),
                         x[i:i + CHUNK]) for i in range(0, len(x), CHUNK)]
    if not parts:
        return np.zeros(0), np.zeros(0)
    return np.concatenate([p.scores for p in parts]), np.concatenate([map_peaks(p.display) for p in parts])


def check_images(x_held: np.ndarray, count: int = CHECK_IMAGES) -> np.ndarray:
    """Up to ``count`` good calibration images spread over ``x_held`` ``(N, C, h, w)``, as uint8: kept in
    the model so an exported runtime can be checked against it on real good images."""
    idx = np.unique(np.linspace(0, len(x_held) - 1, min(count, len(x_held))).round().astype(int))
    return np.clip(np.rint(x_held[idx] * 255.0), 0, 255).astype(np.uint8)


def _pixel_threshold(peaks: np.ndarray, alpha: float) -> float:
    if len(peaks) == 0:
        return math.inf
    t = conformal_threshold(peaks, alpha)
    return t if math.isfinite(t) else float(np.max(peaks))


def _summary(model: InspectionModel, plan: CalibrationPlan, config: TrainConfig, n: int, fit_seconds: float,
             template: HeldOutTemplate, detector: Detector) -> dict[str, Any]:
    strategy = "cross" if plan.side_fits else "loo" if plan.own_out else "holdout"
    reference = model.reference
    return {
        "n_images": n, "n_fit": int(len(plan.final_fit)), "n_calibration": int(len(model.calibration.scores)),
        "calibration": strategy, "folds": len(plan.side_fits) if plan.side_fits else None,
        "calibration_fraction": config.calibration_fraction if strategy == "holdout" else 0.0, "seed": config.seed,
        "fit_seconds": round(fit_seconds, 3),
        "reference_weight": None if reference is None else round(reference.weight, 4),
        "template": model.template is not None,
        "template_explained": None if template.explained is None else round(template.explained, 5),
        "history": {k: [float(v) for v in vs] for k, vs in detector.history.items()},
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
