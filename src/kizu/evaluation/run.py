"""Evaluate a model on a labelled test set: metrics, the per-defect-type table, the images to look
at (every miss and every false alarm) and the figures that apply to the model."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..calibration.operating_points import f1_optimal, far_miss_curve, threshold_table
from ..errors import InputError
from ..files import inspect_files
from ..io.atomic import atomic_write_bytes, atomic_write_text
from ..io.images import ImageFiles, image_size
from ..io.layouts import LabelledSet, read_mask
from ..model.inspection import InspectionModel
from ..model.prediction import Verdict
from . import plots
from .metrics import aupro, image_metrics, per_type_table, pixel_auroc, roc_points
from .report import render_report

#: test images read and inspected at once
EVAL_BATCH = 64
#: misses and false alarms shown in the report, each (worst first)
REVIEW_LIMIT = 12


@dataclass
class Evaluation:
    """Metrics, per-type table and verdicts of a test set; ``names``: each image's path relative to
    the test set's folder; ``review``: the misses and false alarms to look at, worst first."""

    metrics: dict
    per_type: list[dict]
    verdicts: list[Verdict]
    labels: np.ndarray
    types: list[str]
    names: list[str] = field(default_factory=list)
    review: list[dict] = field(default_factory=list)
    figures: dict[str, bytes] = field(default_factory=dict)  # name → PNG


def evaluate(model: InspectionModel, test: LabelledSet, *, review_limit: int = REVIEW_LIMIT) -> Evaluation:
    """Inspect every test image through ``model.inspect`` and compute the metrics.

    metrics keys: image_auroc, image_aupr, threshold, tp, fp, fn, tn, precision, recall, f1, fpr,
    and pixel_auroc, aupro when ground-truth masks exist (on the good images and the defective ones
    that have a mask; ``pixel_metrics_left_out`` lists defective images without one). Masks are
    checked against their images' sizes before anything is inspected.
    """
    check_masks(test)
    # batch by batch: a large test set of big images is never all in memory (only its maps)
    verdicts = inspect_files(model, test.paths, batch_size=EVAL_BATCH)
    scores = np.array([v.score for v in verdicts])
    predicted = np.array([v.defective for v in verdicts])
    m = image_metrics(test.labels, scores, predicted)
    thr = model.calibration.threshold
    m["threshold"] = thr if math.isfinite(thr) else None
    m["alpha"] = model.calibration.alpha
    m["threshold_rule"] = model.calibration.rule
    m["n_test"], m["n_good"], m["n_defective"] = len(scores), int((test.labels == 0).sum()), int(test.labels.sum())
    if test.has_masks:
        m.update(_pixel_metrics(test, verdicts))
    names = _names(test)
    ev = Evaluation(m, per_type_table(test.labels, test.defect_types, scores, predicted), verdicts,
                    test.labels, test.defect_types, names)
    images = ImageFiles(test.paths)  # the few images shown are read again
    ev.review = _review(model, ev, images, review_limit)
    ev.figures = make_figures(model, ev, images)
    return ev


def check_masks(test: LabelledSet) -> None:
    """Every mask has its image's size (read from the file headers, before any work)."""
    for image, mask in zip(test.paths, test.mask_paths):
        if mask is not None and image_size(mask) != image_size(image):
            (mw, mh), (w, h) = image_size(mask), image_size(image)
            raise InputError(mask, f"mask is {mw}x{mh} px but its image {image.name} is {w}x{h} px")


def _pixel_metrics(test: LabelledSet, verdicts: list[Verdict]) -> dict:
    """Pixel AUROC and AUPRO over the good images and the defective ones with a mask (maps are at
    each input's resolution, so masks are read at the maps' size)."""
    # a good image's mask is empty; a defective image without one has unknown pixels: left out
    unmasked = [i for i, (label, mp) in enumerate(zip(test.labels, test.mask_paths)) if label == 1 and mp is None]
    known = [i for i in range(len(verdicts)) if i not in set(unmasked)]
    maps = [verdicts[i].anomaly_map for i in known]
    masks = [read_mask(test.mask_paths[i], mp.shape) if test.mask_paths[i] is not None else np.zeros(mp.shape, bool)
             for i, mp in zip(known, maps)]
    out = {"pixel_auroc": pixel_auroc(masks, maps), "aupro": aupro(masks, maps)}
    if unmasked:
        out["pixel_metrics_left_out"] = [str(test.paths[i]) for i in unmasked]
    return out


def _names(test: LabelledSet) -> list[str]:
    """Each test image's path relative to the test folder (``good/003.png``, ``stain/011.png``)."""
    return [f"{t}/{p.name}" for p, t in zip(test.paths, test.defect_types)]


def _review(model: InspectionModel, ev: Evaluation, images, limit: int) -> list[dict]:
    """The misses (least anomalous first: the most confidently passed defects) and the false alarms
    (most anomalous first), ``limit`` of each, with their overlays."""
    scores = np.array([v.score for v in ev.verdicts])
    flagged = np.array([v.defective for v in ev.verdicts])
    misses = np.flatnonzero((ev.labels == 1) & ~flagged)
    alarms = np.flatnonzero((ev.labels == 0) & flagged)
    picked = [("missed defect", i) for i in misses[np.argsort(scores[misses], kind="stable")][:limit]]
    picked += [("false alarm", i) for i in alarms[np.argsort(-scores[alarms], kind="stable")][:limit]]
    out = []
    for kind, i in picked:
        v = ev.verdicts[i]
        title = f"{ev.names[i]} · {'DEFECTIVE' if v.defective else 'good'} · p={v.p_value:.3g}"
        png = plots.figure_png(plots.overlay_figure(images[i], v.anomaly_map, model.calibration.pixel_threshold,
                                                    v.regions, title))
        out.append({"kind": kind, "name": ev.names[i], "path": str(images.paths[i]), "score": v.score,
                    "p_value": v.p_value, "overlay": png, "counts": {"missed defect": len(misses),
                                                                       "false alarm": len(alarms)}[kind]})
    return out


def make_figures(model: InspectionModel, ev: Evaluation, images) -> dict[str, bytes]:
    """The report's figures as PNG bytes, keyed by file stem (``images``: the test images,
    indexable, e.g. ``ImageFiles``; only the few shown are read). Figures that do not apply to the
    model are left out: the loss curve for detectors fitted without a training loss, the
    reconstruction figure for detectors without reconstructions."""
    labels = ev.labels
    scores = np.array([v.score for v in ev.verdicts])
    good_idx, bad_idx = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    figs = {"examples": plots.example_images([images[i] for i in good_idx[:4]], [images[i] for i in bad_idx[:4]])}
    history = model.summary.get("history", {})
    if history.get("loss"):
        figs["loss_curve"] = plots.loss_curve(history)
    # highest-scoring defects, typical defects and typical good images, on one fixed colour scale
    show = list(dict.fromkeys(int(i) for i in [*bad_idx[np.argsort(-scores[bad_idx])][:2], *bad_idx[:2],
                                                 *good_idx[:2]]))
    originals = model.preprocessor.apply_all([images[i] for i in show])
    recon = model.reconstruct(originals) if show else None
    if recon is not None:
        err = ((originals - recon) ** 2).mean(axis=1)  # the seed's figure: squared error of the reconstruction
        figs["reconstruction"] = plots.reconstruction_grid(
            list(originals), list(recon), list(err), [f"{ev.names[i]} · score {scores[i]:.3g}" for i in show],
            vmax=float(np.percentile(err, 99.9)) or None, map_label="Squared error")
    c = ev.metrics
    figs["confusion_matrix"] = plots.confusion_heatmap(c, model.calibration.threshold)
    if len(bad_idx) and len(good_idx):
        fpr, tpr = roc_points(labels, scores)
        figs["roc"] = plots.roc_figure(fpr, tpr, c["image_auroc"], (c["fpr"], c["recall"]))
        t, far, miss = far_miss_curve(scores, labels)
        figs["threshold_explorer"] = plots.threshold_explorer(t, far, miss, model.calibration.threshold)
    figs["score_histogram"] = plots.score_histogram(scores[good_idx], scores[bad_idx], model.calibration.threshold)
    return {k: plots.figure_png(f) for k, f in figs.items()}


def candidate_table(model: InspectionModel, ev: Evaluation) -> list[dict]:
    """Confusion counts at the current threshold and a few alternatives (threshold explorer)."""
    scores = np.array([v.score for v in ev.verdicts])
    cands = [("current", model.calibration.threshold)]
    if ev.labels.min() == 0 and ev.labels.max() == 1:
        cands.append(("F1-optimal on this set", f1_optimal(scores, ev.labels).threshold))
    cal = np.asarray(model.calibration.scores or model.calibration.train_scores)
    if cal.size:
        for q in (0.9, 0.99):
            cands.append((f"{int(q * 100)}th pct. of good calibration scores", float(np.quantile(cal, q))))
    rows = threshold_table(scores, ev.labels, [t for _, t in cands])
    for (name, _), row in zip(cands, rows):
        row["name"] = name
    return rows


def write_outputs(model: InspectionModel, ev: Evaluation, out: str | Path, *,
                  title: str = "kizu inspection report") -> Path:
    """Write ``out/metrics.json``, ``out/figures/*.png`` (and the review overlays under
    ``out/figures/review/``) and ``out/report.html``."""
    out = Path(out)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    for name, png in ev.figures.items():
        atomic_write_bytes(out / "figures" / f"{name}.png", png)
    for k, item in enumerate(ev.review):
        atomic_write_bytes(out / "figures" / "review" / f"{k:02d}.png", item["overlay"])
    payload = dict(ev.metrics)
    payload["per_defect_type"] = ev.per_type
    payload["review"] = [{k: v for k, v in item.items() if k != "overlay"} for item in ev.review]
    atomic_write_text(out / "metrics.json", json.dumps(_json_safe(payload), indent=2, allow_nan=False))
    atomic_write_text(out / "report.html", render_report(model, ev, candidate_table(model, ev), title=title))
    return out


def _json_safe(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        return _json_safe(obj.item())
    return obj
