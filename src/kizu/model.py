"""InspectionModel: preprocess + detector + scoring + calibration — the one path for every score.

The Python API, the CLI, the service and the exported-model check all go through ``inspect``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from . import __version__
from .calibration import Calibration, conformal_threshold, cross_folds
from .detectors import DEFAULT_DETECTOR, DEFAULT_OPTIONS, create, detector_class
from .detectors.base import Detector, ProgressFn
from .errors import KizuError, ModelFileError
from .images import ImageFiles, default_mode, read_image
from .preprocess import MAX_SIDE, Preprocessor, resize_maps
from .reference import ScoreReference, image_descriptors
from .regions import find_regions
from .scoring import ScoreRule, map_peaks, smooth_maps
from .template import (MIN_EXPLAINED, MIN_HELD_OUT, GoldenTemplate, MapTerm, TemplateTerm, grey, held_out_fit_grey,
                       reduction)
from .tiling import extract_tiles, stitch_maps
from .torch_utils import resolve_device

FORMAT_VERSION = 1
#: a model with a golden template is written as version 2, so a kizu that cannot use the template
#: refuses the model instead of scoring without it; version 1 is still written without one
FORMAT_VERSION_TEMPLATE = 2
READ_VERSIONS = (FORMAT_VERSION, FORMAT_VERSION_TEMPLATE)
#: safetensors keys of the golden template (beside the detector's own)
TEMPLATE_PREFIX = "template."
#: ``calibration="auto"`` uses cross-conformal calibration up to this many good images
CROSS_UP_TO = 300
#: a fitted score rule (``max+mean``) takes its scales from at most this many fitted images: a
#: mean of 32 is stable, and it keeps the cross-calibration folds cheap on large images
SCORE_SCALE_IMAGES = 32
MODEL_JSON, WEIGHTS = "model.json", "weights.safetensors"


@dataclass
class Verdict:
    """The inspection result for one image."""

    score: float  #: raw anomaly score (higher = more anomalous; units depend on the detector)
    p_value: float  #: conformal p-value against the calibration good images, in (0, 1]
    defective: bool  #: score above the threshold (⟺ p <= alpha under the conformal rule)
    normalized: float  #: 0–1 score for people, 0.5 at the threshold (never replaces the p-value)
    anomaly_map: np.ndarray = field(repr=False)  #: (H, W) float32 at the input's resolution
    regions: list[dict] = field(default_factory=list)  #: bounding boxes where the map exceeds the pixel threshold
    path: str | None = None


def _default_score_rule(detector: Detector) -> ScoreRule:
    """The detector's own default rule if it names one; else the seed-compatible mean for
    reconstruction error and the max of the smoothed map for local detectors."""
    reducer = detector.default_reducer or ("mean" if detector.name == "autoencoder" else "max")
    return ScoreRule(reducer=reducer, sigma=float(getattr(detector, "default_sigma", 1.0)))


def scale_subset(n: int) -> np.ndarray:
    """Sorted indices of the (at most ``SCORE_SCALE_IMAGES``) fitted images whose maps set a score
    rule's scales: a fixed pseudo-random draw, not every k-th image, which could fall in step with
    a periodic order of the files (say, two cameras taking turns)."""
    if n <= SCORE_SCALE_IMAGES:
        return np.arange(n)
    return np.sort(np.random.default_rng(n).choice(n, SCORE_SCALE_IMAGES, replace=False))


def split_calibration(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (fit, calibration): a seeded random ``fraction`` of ``n`` images is held out."""
    if not 0 <= fraction < 1:
        raise KizuError(f"calibration fraction must be in [0, 1), not {fraction}")
    n_cal = int(round(n * fraction)) if fraction > 0 else 0
    if fraction > 0:
        n_cal = max(1, n_cal)
    if n - n_cal < 2:
        raise KizuError(f"only {n} good images: too few to train and calibrate (need at least {n_cal + 2})")
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_cal:]), np.sort(perm[:n_cal])


class InspectionModel:
    """A trained inspection model. Build with ``InspectionModel.train`` or ``InspectionModel.load``."""

    def __init__(self, detector: Detector, preprocessor: Preprocessor, score_rule: ScoreRule,
                 calibration: Calibration, summary: dict[str, Any] | None = None,
                 reference: ScoreReference | None = None, template: TemplateTerm | None = None):
        self.detector = detector
        self.preprocessor = preprocessor
        self.score_rule = score_rule
        self.calibration = calibration
        self.summary = summary or {}
        #: scores relative to similar good images (``kizu.reference``); None = raw rule scores
        self.reference = reference
        #: golden-template comparison joined to the display maps and image scores (``kizu.template``); None = off
        self.template = template

    # -- training ------------------------------------------------------------------------------
    @classmethod
    def train(cls, images: list[np.ndarray] | np.ndarray, *, detector: str | Detector | None = None,
              detector_options: dict[str, Any] | None = None, paths: list | None = None,
              calibration_fraction: float = 0.2, alpha: float = 0.05, threshold_rule: str = "conformal",
              delta: float = 0.1,
              reducer: str | None = None, sigma: float | None = None, topk: float = 0.01, seed: int = 0,
              resize: tuple[int, int] | None = None, progress: ProgressFn | None = None,
              calibration: str = "auto", folds: int = 5, tile: int | None = None,
              tile_stride: int | None = None, defective_images: list[np.ndarray] | None = None,
              reference: bool | None = None, max_side: int | None = MAX_SIDE,
              template: bool | None = None) -> "InspectionModel":
        """Learn "normal" from good images and calibrate the threshold on images it did not fit.

        ``images``: a list of ``(C, H, W)`` arrays (or ``(N, C, H, W)`` / ``(N, H, W)``) in [0, 1].
        ``calibration="auto"`` (default): ``cross`` for up to ``CROSS_UP_TO`` images, else ``holdout``.
        ``calibration="holdout"``: ``calibration_fraction`` of them (seeded random) is never used for
        fitting; their scores give the conformal p-values. ``calibration="cross"`` (cross-conformal,
        no image wasted): ``folds`` models each score the fold they did not see; those out-of-fold
        scores calibrate, and the final model is fitted on all images (``folds + 1`` fits).
        ``threshold_rule="train-quantile"`` is the seed's rule instead. ``tile``: fit and inspect
        overlapping ``tile``-px tiles (large images with small defects); maps are stitched back.
        ``defective_images``: labelled defects for detectors with Taguchi-style variable selection
        (``mt``): after fitting, ``detector.select_variables`` picks feature groups by SN-ratio gain.
        ``reference``: score each image relative to the most similar good images (``kizu.reference``;
        the calibration images, scored as unseen, are the reference; it changes nothing on a training
        set of one kind). ``None``: on where the score rule is fitted (``max+mean``, the default
        detector's), off for the others (the seed's MSE stays exact). Needs >= 3 calibration images.
        ``max_side``: images longer than this (px) are inspected scaled down to it, unless tiled or
        ``resize`` is given; maps still come back at each input's resolution (None or 0: never).
        ``template``: add a golden-template comparison to the maps and image scores (``kizu.template``;
        for parts in a fixture). ``None``: on where the score rule is fitted and the images are not
        tiled, if held-out good images are explained by the template to a median R² >=
        ``MIN_EXPLAINED`` (cross-calibration: in every fold; ``_held_out_template``). Needs >= ``MIN_HELD_OUT`` calibration
        images. It joins the display maps and, with the ``max+mean`` score, the image score's max part
        (``TemplateTerm.apply``). A model with it is saved as format version 2.
        """
        if not isinstance(images, ImageFiles):
            images = _as_image_list(images)
        paths = [Path(p) for p in paths] if paths is not None else [Path(f"image[{i}]") for i in range(len(images))]
        pre = Preprocessor.for_training(images, paths, resize_to=resize, tile=tile, tile_stride=tile_stride,
                                        max_side=max_side)
        x = pre.apply_all(images, paths)  # ImageFiles: one file in memory at a time
        del images
        if detector is None:  # the benchmark's all-round choice (kizu.detectors.DEFAULT_DETECTOR)
            detector, detector_options = DEFAULT_DETECTOR, {**DEFAULT_OPTIONS, **(detector_options or {})}
        if isinstance(detector, str):
            det = create(detector, **(detector_options or {}))
        else:
            det = detector
        if calibration not in ("auto", "holdout", "cross"):
            raise KizuError(f"calibration must be 'auto', 'holdout' or 'cross', not {calibration!r}")
        if calibration == "auto":
            # small sets: hold-out wastes images and 20 calibration scores give a noisy threshold
            calibration = "cross" if 4 <= len(x) <= CROSS_UP_TO and calibration_fraction > 0 and \
                threshold_rule != "train-quantile" else "holdout"
            if calibration == "cross":  # a handful of images: fewer folds rather than an error
                folds = min(folds, len(x) // 2)
        rule = _default_score_rule(det)
        if reducer is not None or sigma is not None:
            rule = ScoreRule(reducer or rule.reducer, rule.sigma if sigma is None else sigma, topk)
        use_reference = rule.needs_fit if reference is None else bool(reference)
        if calibration == "cross":
            fit_idx, cal_idx = np.arange(len(x)), np.arange(0)
        else:
            fit_idx, cal_idx = split_calibration(len(x), calibration_fraction, seed)
        held_out = _HeldOutTemplate(None, None, np.zeros(0), np.zeros((0, 0, 0)))
        if template is not False and (template or (rule.needs_fit and pre.tile is None)):
            # first (grey images at most 128 px): the detector's display maps are kept only if it is on
            held_out = _held_out_template(x, fit_idx, cal_idx, calibration == "cross", folds, seed, bool(template))

        def map_term(display: np.ndarray, scales: np.ndarray) -> tuple[MapTerm | None, np.ndarray | None]:
            if held_out.template is None:
                return None, None
            return MapTerm.fit(display, held_out.maps, scales, held_out.template.factor)

        t0 = time.perf_counter()
        if calibration == "cross":
            cal_scores, cal_peaks, cal_display, cal_scales = _out_of_fold_scores(
                det, pre, rule, x, folds, seed, keep_display=held_out.template is not None)
            map_fit, joined_peaks = map_term(cal_display, cal_scales)
            del cal_display
        x_fit = x if len(fit_idx) == len(x) else x[fit_idx]  # no copy when every image is fitted
        det.fit(pre.fit_view(x_fit), seed=seed, progress=progress)
        if defective_images:
            if not hasattr(det, "select_variables"):
                raise KizuError(f"detector {det.name!r} has no variable selection from defective images")
            x_bad = pre.apply_all(_as_image_list(defective_images))
            det.select_variables(pre.fit_view(x_fit), pre.fit_view(x_bad), seed=seed)
        fit_seconds = time.perf_counter() - t0
        model = cls(det, pre, rule, Calibration([], alpha))
        train_maps = model._detector_maps(x_fit)
        model._fit_score_rule(x_fit)
        if calibration == "holdout":
            cal_scores, cal_display = model._scores_and_display(x[cal_idx])
            cal_peaks, cal_scales = map_peaks(cal_display), np.full(len(cal_idx), model._map_scale())
            map_fit, joined_peaks = map_term(cal_display, cal_scales)
            del cal_display
        if use_reference and len(cal_scores) >= 3:
            # the calibration images are good images scored as unseen ones: they are the reference
            cal_x = x if calibration == "cross" else x[cal_idx]
            model.reference = ScoreReference.fit(image_descriptors(cal_x), cal_scores)
            cal_scores = cal_scores * model.reference.own_factors()
        if held_out.template is not None:  # calibration as TemplateTerm.apply scores new images
            term = TemplateTerm.fit(held_out.template, held_out.scores, cal_scores, held_out.explained)
            model.template = replace(term, map=map_fit)
            if model._peak_scale() is None:
                cal_scores = TemplateTerm.own_combined(cal_scores, held_out.scores)
            else:
                cal_scores = cal_scores + (joined_peaks - cal_peaks) / cal_scales
            cal_peaks = joined_peaks
        train_scores, train_peaks = model._scores_and_peaks(x_fit, train_maps)
        model.calibration = Calibration.fit(cal_scores, alpha, threshold_rule, train_scores, delta=delta)
        # peaks of the folds' maps, in the final model's scale (a fold fitted on fewer images maps higher)
        model.calibration.pixel_threshold = _pixel_threshold(
            cal_peaks / cal_scales * model._map_scale() if len(cal_peaks) else train_peaks, alpha, model)
        model.summary = {
            "n_images": len(x), "n_fit": int(len(fit_idx)), "n_calibration": int(len(cal_scores)),
            "calibration": calibration, "folds": folds if calibration == "cross" else None,
            "calibration_fraction": calibration_fraction if calibration == "holdout" else 0.0, "seed": seed, "fit_seconds": round(fit_seconds, 3),
            "reference_weight": None if model.reference is None else round(model.reference.weight, 4),
            "template": model.template is not None,
            "template_explained": None if held_out.explained is None else round(held_out.explained, 5),
            "history": {k: [float(v) for v in vs] for k, vs in det.history.items()},
            "trained_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        return model

    @classmethod
    def train_files(cls, paths: list[str | Path], **options: Any) -> "InspectionModel":
        """``train`` on image files without holding them all in memory: each file is read twice, once
        to choose channels and size, once to preprocess it (``options``: those of ``train``)."""
        files = ImageFiles(paths)
        return cls.train(files, paths=files.paths, **options)

    # -- scoring ---------------------------------------------------------------------------------
    def _detector_maps(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """``(N, C, H, W)`` preprocessed → ``(N, H, W)`` maps at the detector's resolution."""
        if len(x) == 0:
            return np.zeros((0, *self.preprocessor.size), np.float32)
        pre = self.preprocessor
        if pre.tile is None:
            return np.concatenate([self.detector.anomaly_maps(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
        tiles = extract_tiles(x, pre.tile, pre.tile_stride)
        maps = np.concatenate([self.detector.anomaly_maps(tiles[i:i + batch_size]) for i in range(0, len(tiles), batch_size)])
        return stitch_maps(maps, pre.size, pre.tile, pre.tile_stride)

    def _image_scores(self, x: np.ndarray, maps: np.ndarray) -> np.ndarray:
        """``(N,)`` image scores of preprocessed images ``x`` with their detector maps."""
        return self._scores_and_display(x, maps)[0]

    def _uses_own_image_score(self) -> bool:
        # with tiles, a detector's own whole-image score does not exist: the stitched map is reduced
        return self.detector.has_own_image_score and self.preprocessor.tile is None

    def _map_scale(self) -> float:
        """``_peak_scale``, or 1: the scale ``MapTerm`` adds the template's departures in."""
        return self._peak_scale() or 1.0

    def _peak_scale(self) -> float | None:
        """The score rule's scale of display-map peaks when image scores are ``max+mean`` of the map;
        None otherwise (other rules, or a detector's own image score)."""
        rule = self.score_rule
        return rule.scale[0] if rule.reducer == "max+mean" and rule.scale and not self._uses_own_image_score() else None

    def _detector_scores(self, x: np.ndarray, maps: np.ndarray) -> np.ndarray:
        """Image scores before the golden-template term."""
        own = self.detector.image_scores(x) if self._uses_own_image_score() else None
        scores = np.asarray(own if own is not None else self.score_rule(maps), dtype=np.float64)
        if self.reference is not None and self.reference.weight > 0:
            scores = self.reference.adjust(scores, image_descriptors(x))
        return scores

    def _fit_score_rule(self, x_fit: np.ndarray) -> None:
        """Set the score rule's scales (if it has any) from at most ``SCORE_SCALE_IMAGES`` images of
        ``x_fit`` (``scale_subset``), those the detector was just fitted on, mapped as the detector
        would map unseen good images (``Detector.training_maps``): in-sample maps are lower, and by
        how much depends on how many images were fitted, so a cross-calibration fold (fewer images)
        would otherwise get other scales than the final model and a threshold that does not fit it."""
        if not self.score_rule.needs_fit or len(x_fit) == 0:
            return
        idx = scale_subset(len(x_fit))
        if self.preprocessor.tile is None:
            maps = self.detector.training_maps(x_fit[idx], idx)
        else:  # the detector was fitted on tiles, not on these images: in-sample maps
            maps = self._detector_maps(x_fit[idx])
        self.score_rule = self.score_rule.fit(maps)

    def _scores_and_peaks(self, x: np.ndarray, maps: np.ndarray, chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """``(N,)`` image scores and display-map peaks, ``chunk`` images at a time (no N display maps at once)."""
        parts = [self._scores_and_display(x[i:i + chunk], maps[i:i + chunk]) for i in range(0, len(x), chunk)]
        return (np.concatenate([s for s, _ in parts]) if parts else np.zeros(0),
                np.concatenate([map_peaks(d) for _, d in parts]) if parts else np.zeros(0))

    def _scores_and_display(self, x: np.ndarray, maps: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(N,)`` image scores and ``(N, H, W)`` display maps (at the detector's resolution): the
        smoothed detector maps, with the golden template's departures added where the model has them."""
        if len(x) == 0:
            return np.zeros(0), np.zeros((0, *self.preprocessor.size), np.float32)
        maps = self._detector_maps(x) if maps is None else maps
        scores, display = self._detector_scores(x, maps), smooth_maps(maps, self.score_rule.sigma)
        if self.template is not None:
            scores, display = self.template.apply(scores, display, x, self._peak_scale())
        return scores, display

    def inspect(self, images: list[np.ndarray] | np.ndarray, paths: list | None = None) -> list[Verdict]:
        """Images (``(C, H, W)`` arrays, any size if the model resizes) → one Verdict each."""
        images = _as_image_list(images)
        paths = list(paths) if paths is not None else [None] * len(images)
        x = self.preprocessor.apply_all(images, paths)
        scores, display = self._scores_and_display(x)
        p = self.calibration.p_values(scores)
        defective = self.calibration.is_defective(scores)
        norm = self.normalized_scores(scores)
        out = []
        for i, img in enumerate(images):
            m = resize_maps(display[i:i + 1], img.shape[1:])[0]
            regions = find_regions(m, self.calibration.pixel_threshold) if defective[i] else []
            if defective[i] and not regions:  # flagged by a whole-image score: show where the map peaks
                regions = find_regions(m, 0.5 * float(m.max()), max_regions=3)
            out.append(Verdict(float(scores[i]), float(p[i]), bool(defective[i]), float(norm[i]), m, regions,
                               None if paths[i] is None else str(paths[i])))
        return out

    def inspect_files(self, paths: list[str | Path], batch_size: int = 64) -> list[Verdict]:
        """Read image files and inspect them, ``batch_size`` at a time; a bad file raises an
        InputError naming it."""
        return [v for _, v in self.iter_inspect_files(paths, batch_size)]

    def iter_inspect_files(self, paths: list[str | Path], batch_size: int = 64) -> Iterator[tuple[np.ndarray, Verdict]]:
        """``(image, verdict)`` per file, in order, reading and inspecting ``batch_size`` files at a
        time, so only one batch of images is held at once."""
        paths = [Path(p) for p in paths]
        for start in range(0, len(paths), batch_size):
            chunk = paths[start:start + batch_size]
            images = [read_image(p) for p in chunk]
            yield from zip(images, self.inspect(images, chunk))

    def score_files(self, paths: list[str | Path], batch_size: int = 64) -> np.ndarray:
        """``(N,)`` image scores of files, ``batch_size`` at a time, keeping no maps beyond a batch: for
        checks over many images (drift, re-thresholding). ``calibration.p_values`` turns them into
        p-values."""
        paths = [Path(p) for p in paths]
        scores = [np.zeros(0)]
        for start in range(0, len(paths), batch_size):
            chunk = paths[start:start + batch_size]
            x = self.preprocessor.apply_all([read_image(p) for p in chunk], chunk)
            scores.append(self._image_scores(x, self._detector_maps(x)))
        return np.concatenate(scores)

    def normalized_scores(self, scores: np.ndarray) -> np.ndarray:
        """0–1 for people, exactly 0.5 at the threshold (see ``kizu.guarantees.normalised_score``)."""
        from .guarantees import normalised_score

        cal = np.asarray(self.calibration.scores or self.calibration.train_scores, dtype=np.float64)
        return np.asarray(normalised_score(np.asarray(scores, dtype=np.float64), self.calibration.threshold, cal))

    def reconstruct(self, images: list[np.ndarray] | np.ndarray) -> np.ndarray | None:
        """Reconstructions at the detector's resolution, for detectors that have them."""
        return self.detector.reconstruct(self.preprocessor.apply_all(_as_image_list(images)))

    # -- persistence -----------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "format": "kizu-model", "kizu_version": __version__,
            "format_version": FORMAT_VERSION if self.template is None else FORMAT_VERSION_TEMPLATE,
            "preprocess": self.preprocessor.to_json(),
            "detector": {"name": self.detector.name, "config": self.detector.config()},
            "scoring": self.score_rule.to_json(),
            "reference": None if self.reference is None else self.reference.to_json(),
            "template": None if self.template is None else self.template.to_json(),
            "calibration": self.calibration.to_json(),
            "training": self.summary,
        }

    def save(self, path: str | Path) -> Path:
        """Write ``path/model.json`` + ``path/weights.safetensors`` atomically (temp dir, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and not (path / MODEL_JSON).is_file() and any(path.iterdir()):
            raise KizuError(f"{path}: exists and is not a kizu model folder; refusing to overwrite it")
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
        tmp.chmod(default_mode(directory=True))
        try:
            state = dict(self.detector.state_dict())
            if self.template is not None:
                state.update({f"{TEMPLATE_PREFIX}{k}": v for k, v in self.template.template.state_dict().items()})
            state = {k: np.require(v, requirements="C") for k, v in state.items()}
            save_file(state, str(tmp / WEIGHTS))
            (tmp / WEIGHTS).chmod(default_mode())
            (tmp / MODEL_JSON).write_text(json.dumps(self.to_json(), indent=2, allow_nan=False), encoding="utf-8")
            old = None
            if path.exists():
                old = path.with_name(f".{path.name}.old-{os.getpid()}")
                path.rename(old)
            tmp.rename(path)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | Path, *, device: str | None = None) -> "InspectionModel":
        """Read a model folder; a damaged or incompatible one raises ModelFileError saying what is wrong."""
        path = Path(path)
        if device is not None:
            resolve_device(device)  # a bad --device is the caller's problem, not the model file's
        if path.is_file() and path.name == MODEL_JSON:
            path = path.parent
        if not path.is_dir():
            raise ModelFileError(path, "no such model folder")
        meta_file, weights_file = path / MODEL_JSON, path / WEIGHTS
        if not meta_file.is_file():
            raise ModelFileError(path, f"not a kizu model: {MODEL_JSON} is missing")
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ModelFileError(meta_file, f"damaged model description (invalid JSON: {err})") from None
        if not isinstance(meta, dict) or meta.get("format") != "kizu-model":
            raise ModelFileError(meta_file, "not a kizu model description")
        if meta.get("format_version") not in READ_VERSIONS:
            raise ModelFileError(meta_file, f"model format version {meta.get('format_version')} is not supported "
                                            f"by kizu {__version__} (it reads versions "
                                            f"{', '.join(map(str, READ_VERSIONS))})")
        try:
            det_cls = detector_class(meta["detector"]["name"])
            det = det_cls.from_config(meta["detector"]["config"])
            if device is not None:
                det.to(device)
            pre = Preprocessor.from_json(meta["preprocess"])
            rule = ScoreRule(**meta["scoring"])
            ref = meta.get("reference")  # absent in models saved before it existed
            ref = None if ref is None else ScoreReference.from_json(ref)
            if meta.get("template") is not None:  # absent in models saved before it existed
                TemplateTerm.check_json(meta["template"])
            cal = Calibration.from_json(meta["calibration"])
        except KizuError as err:
            raise ModelFileError(meta_file, str(err)) from None
        except (KeyError, TypeError, ValueError) as err:
            raise ModelFileError(meta_file, f"incomplete or invalid model description ({type(err).__name__}: {err})") from None
        if not weights_file.is_file():
            raise ModelFileError(path, f"{WEIGHTS} is missing")
        try:
            state = load_file(str(weights_file))
        except Exception as err:  # safetensors raises its own error types for damaged files
            raise ModelFileError(weights_file, f"damaged weights file ({err})") from None
        tpl_state = {k[len(TEMPLATE_PREFIX):]: state.pop(k) for k in list(state) if k.startswith(TEMPLATE_PREFIX)}
        try:
            det.load_state_dict(state)
        except (KeyError, RuntimeError, ValueError) as err:
            raise ModelFileError(weights_file, f"weights do not fit the detector ({err})") from None
        tpl = None
        if meta.get("template") is not None:
            try:
                tpl = TemplateTerm.from_json(meta["template"], tpl_state)
                f = tpl.template.factor
                if tpl.template.mean.shape != (pre.size[0] // f, pre.size[1] // f):
                    raise ValueError(f"template {tpl.template.mean.shape} does not fit images of {pre.size} / {f}")
            except (KeyError, TypeError, ValueError) as err:
                raise ModelFileError(weights_file, f"damaged golden template ({type(err).__name__}: {err})") from None
        return cls(det, pre, rule, cal, meta.get("training", {}), ref, tpl)

    def __repr__(self) -> str:
        c = self.calibration
        return (f"InspectionModel({self.detector!r}, size={self.preprocessor.size}, channels={self.preprocessor.channels}, "
                f"score={self.score_rule.reducer}, rule={c.rule}, alpha={c.alpha}, threshold={c.threshold:.6g})")


def _out_of_fold_scores(det: Detector, pre: Preprocessor, rule: ScoreRule, x: np.ndarray, folds: int,
                        seed: int, keep_display: bool = False
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """Cross-conformal calibration: image scores, display-map peaks, (``keep_display``) display
    maps ``(N, H, W)`` and the peak scales (``InspectionModel._peak_scale``, 1 without) of each
    fold from a fresh detector (same configuration) fitted on the other folds."""
    if not 2 <= folds <= len(x) // 2:
        raise KizuError(f"cross-conformal calibration needs 2 <= folds <= n/2 (n = {len(x)}), not {folds}")
    scores, peaks, scales = np.empty(len(x)), np.empty(len(x)), np.empty(len(x))
    display = np.empty((len(x), *pre.size), np.float32) if keep_display else None
    for k, (rest, held) in enumerate(cross_folds(len(x), folds, seed)):
        fold_det = type(det).from_config(det.config())
        fold_det.fit(pre.fit_view(x[rest]), seed=seed + 1000 * (k + 1))
        fold_model = InspectionModel(fold_det, pre, rule, Calibration([], 0.05))
        if rule.needs_fit:  # the fold's own training images set its scales, as for the final model
            fold_model._fit_score_rule(x[rest])
        scores[held], held_display = fold_model._scores_and_display(x[held])
        peaks[held], scales[held] = map_peaks(held_display), fold_model._map_scale()
        if display is not None:
            display[held] = held_display
    return scores, peaks, display, scales


@dataclass(frozen=True)
class _HeldOutTemplate:
    """``_held_out_template``'s result: the golden template (None: off), the held-out images' median
    R² (None: not measured), and the calibration images' template scores ``(N,)`` and departure maps
    ``(N, h, w)`` from templates that did not see them."""

    template: GoldenTemplate | None
    explained: float | None
    scores: np.ndarray
    maps: np.ndarray


def _held_out_template(x: np.ndarray, fit_idx: np.ndarray, cal_idx: np.ndarray, cross: bool, folds: int, seed: int,
                       forced: bool) -> _HeldOutTemplate:
    """The golden template of ``x[fit_idx]`` and the calibration images' held-out comparisons: from
    the other folds' templates (``cross``) or the fitted images' (holdout). Unless ``forced``, off
    (None) where the held-out images' median R² is below ``MIN_EXPLAINED`` — in cross-calibration
    in any fold (the folds after the first such fold are not computed)."""
    n_held = len(x) if cross else len(cal_idx)
    if n_held < MIN_HELD_OUT:
        if forced:
            raise KizuError(f"the golden template needs at least {MIN_HELD_OUT} calibration images, not {n_held}")
        return _HeldOutTemplate(None, None, np.zeros(0), np.zeros((0, 0, 0)))
    factor = reduction(*x.shape[-2:])
    g = grey(x, factor)  # once, small: (N, h, w) at most 128 px a side
    if cross:
        t_cal, r2, t_maps = held_out_fit_grey(g, factor, folds, seed, stop_below=None if forced else MIN_EXPLAINED)
        explained = float(np.nanmedian(r2))
        worst_fold = min(float(np.median(r2[held])) if not np.isnan(r2[held]).all() else -np.inf
                         for _, held in cross_folds(len(g), folds, seed))
        explains = worst_fold >= MIN_EXPLAINED
        template = GoldenTemplate.fit_grey(g, factor) if forced or explains else None
    else:
        template = GoldenTemplate.fit_grey(g[fit_idx], factor)
        t_cal, t_maps = template.scores_and_maps(g[cal_idx], is_grey=True)
        explained = float(np.median(template.explained_variance(g[cal_idx], is_grey=True)))
        template = template if forced or explained >= MIN_EXPLAINED else None
    return _HeldOutTemplate(template, explained, t_cal, t_maps)


def _pixel_threshold(peaks: np.ndarray, alpha: float, model: InspectionModel) -> float:
    """Pixel-level threshold for regions and overlays: the conformal threshold of good images'
    smoothed-map maxima, so a good image shows a region with probability <= alpha."""
    if len(peaks) == 0:
        return math.inf
    t = conformal_threshold(peaks, alpha)
    return t if math.isfinite(t) else float(np.max(peaks))


def _as_image_list(images) -> list[np.ndarray]:
    if isinstance(images, np.ndarray):
        if images.ndim == 3:
            images = images[:, None]
        if images.ndim != 4:
            raise KizuError(f"images must be (N, C, H, W) or (N, H, W), got shape {images.shape}")
        return [np.asarray(a, dtype=np.float32) for a in images]
    out = []
    for a in images:
        a = np.asarray(a, dtype=np.float32)
        out.append(a[None] if a.ndim == 2 else a)
    return out

