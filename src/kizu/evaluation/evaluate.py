"""Evaluate a model on a labelled test set: metrics, per-defect-type table and all figures."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..calibration.operating_points import f1_optimal, far_miss_curve, threshold_table
from ..files import inspect_files
from ..io.atomic import atomic_write_bytes, atomic_write_text
from ..io.images import ImageFiles
from ..io.layouts import LabelledSet, read_mask
from ..model.inspection import InspectionModel
from ..model.prediction import Verdict
from . import plots
from .metrics import aupro, image_metrics, per_type_table, pixel_auroc, roc_points
from .report import render_report


#: test images read and inspected at once
EVAL_BATCH = 64


@dataclass
class Evaluation:
    metrics: dict
    per_type: list[dict]
    verdicts: list[Verdict]
    labels: np.ndarray
    types: list[str]
    figures: dict[str, bytes] = field(default_factory=dict)  # name → PNG


def evaluate(model: InspectionModel, test: LabelledSet) -> Evaluation:
    """Inspect every test image through ``model.inspect`` and compute the metrics.

    metrics keys: image_auroc, image_aupr, threshold, tp, fp, fn, tn, precision, recall, f1, fpr,
    and pixel_auroc, aupro when ground-truth masks exist (on the good images and the defective ones
    that have a mask; ``pixel_metrics_left_out`` lists defective images without one).
    """
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
    if test.has_masks:  # maps are at each input's resolution, so masks are read at the maps' size
        # a good image's mask is empty; a defective image without one has unknown pixels: left out
        unmasked = [i for i, (label, mp) in enumerate(zip(test.labels, test.mask_paths)) if label == 1 and mp is None]
        left_out = set(unmasked)
        known = [i for i in range(len(verdicts)) if i not in left_out]
        maps = [verdicts[i].anomaly_map for i in known]
        masks = [read_mask(test.mask_paths[i], mp.shape) if test.mask_paths[i] is not None else np.zeros(mp.shape, bool)
                 for i, mp in zip(known, maps)]
        m["pixel_auroc"] = pixel_auroc(masks, maps)
        m["aupro"] = aupro(masks, maps)
        if unmasked:
            m["pixel_metrics_left_out"] = [str(test.paths[i]) for i in unmasked]
    ev = Evaluation(m, per_type_table(test.labels, test.defect_types, scores, predicted), verdicts,
                    test.labels, test.defect_types)
    ev.figures = make_figures(model, ev, ImageFiles(test.paths))  # the few images shown are read again
    return ev


def make_figures(model: InspectionModel, ev: Evaluation, images) -> dict[str, bytes]:
    """All report figures as PNG bytes, keyed by file stem (``images``: the test images, indexable,
    e.g. ``ImageFiles``; only the few shown are used)."""
    labels = ev.labels
    scores = np.array([v.score for v in ev.verdicts])
    good_idx, bad_idx = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    figs = {}
    figs["examples"] = plots.example_images([images[i] for i in good_idx[:4]], [images[i] for i in bad_idx[:4]])
    figs["loss_curve"] = plots.loss_curve(model.summary.get("history", {}))
    # highest-scoring defects and goods, plus typical ones, on one fixed colour scale
    show = list(bad_idx[np.argsort(-scores[bad_idx])][:2]) + list(bad_idx[:2]) + list(good_idx[:2])
    show = list(dict.fromkeys(int(i) for i in show))
    originals = model.preprocessor.apply_all([images[i] for i in show])
    recon = model.detector.reconstruct(originals)
    titles = [f"{ev.types[i]} · score {scores[i]:.3g}" for i in show]
    # the seed's figure: squared error of the reconstruction (whatever map the detector scores with)
    err = ((originals - recon) ** 2).mean(axis=1) if recon is not None else model.score(originals).maps
    figs["reconstruction"] = plots.reconstruction_grid(
        list(originals), None if recon is None else list(recon), list(err), titles,
        vmax=float(np.percentile(err, 99.9)) or None, map_label="Squared error" if recon is not None else None)
    c = ev.metrics
    figs["confusion_matrix"] = plots.confusion_heatmap(c, model.calibration.threshold)
    if len(bad_idx) and len(good_idx):
        fpr, tpr = roc_points(labels, scores)
        figs["roc"] = plots.roc_figure(fpr, tpr, c["image_auroc"], (c["fpr"], c["recall"]))
        t, far, miss = far_miss_curve(scores, labels)
        figs["threshold_explorer"] = plots.threshold_explorer(t, far, miss, model.calibration.threshold)
    figs["score_histogram"] = plots.score_histogram(scores[good_idx], scores[bad_idx], model.calibration.threshold)
    for k, i in enumerate(show[:4]):
        v = ev.verdicts[i]
        figs[f"overlay_{k}"] = plots.overlay_figure(images[i], v.anomaly_map, model.calibration.pixel_threshold,
                                                    v.regions, f"{ev.types[i]} · {'DEFECTIVE' if v.defective else 'good'}"
                                                    f" · p={v.p_value:.3g}")
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


def write_outputs(model: InspectionModel, ev: Evaluation, out: str | Path, *, title: str = "kizu inspection report") -> Path:
    """Write ``out/metrics.json``, ``out/figures/*.png`` and ``out/report.html``."""
    out = Path(out)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    for name, png in ev.figures.items():
        atomic_write_bytes(out / "figures" / f"{name}.png", png)
    payload = dict(ev.metrics)
    payload["per_defect_type"] = ev.per_type
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
