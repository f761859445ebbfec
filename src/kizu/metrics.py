"""Detection metrics: confusion matrix, AUROC/AUPR, F1, pixel AUROC, AUPRO (scikit-learn underneath)."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import label as cc_label
from sklearn.metrics import auc, average_precision_score, confusion_matrix, roc_auc_score, roc_curve


def confusion_counts(labels: np.ndarray, predicted: np.ndarray) -> dict[str, int]:
    """TP/FP/FN/TN with 1 = defective (the seed's ``confusion_matrix`` layout, named)."""
    (tn, fp), (fn, tp) = confusion_matrix(np.asarray(labels, int), np.asarray(predicted, int), labels=[0, 1])
    return {"tp": int(tp), "fp": int(fp), "fn": int(fn), "tn": int(tn)}


def _safe_div(a: float, b: float) -> float:
    return float(a / b) if b else 0.0


def image_metrics(labels: np.ndarray, scores: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Threshold-free AUROC/AUPR and, at the model's threshold, precision/recall/F1/false-alarm rate.

    AUROC and AUPR are NaN (JSON null) when the set holds only one class.
    """
    labels = np.asarray(labels, int)
    both = len(np.unique(labels)) == 2
    c = confusion_counts(labels, predicted)
    precision = _safe_div(c["tp"], c["tp"] + c["fp"])
    recall = _safe_div(c["tp"], c["tp"] + c["fn"])
    return {
        "image_auroc": float(roc_auc_score(labels, scores)) if both else float("nan"),
        "image_aupr": float(average_precision_score(labels, scores)) if both else float("nan"),
        **c,
        "precision": precision,
        "recall": recall,
        "f1": _safe_div(2 * precision * recall, precision + recall),
        "fpr": _safe_div(c["fp"], c["fp"] + c["tn"]),
    }


def pixel_auroc(masks: np.ndarray, maps: np.ndarray) -> float:
    """AUROC over all pixels of ``(N, H, W)`` bool masks vs ``(N, H, W)`` maps."""
    y = np.concatenate([np.asarray(m, bool).ravel() for m in masks])
    s = np.concatenate([np.asarray(m, np.float32).ravel() for m in maps])
    if y.all() or not y.any():
        return float("nan")
    return float(roc_auc_score(y, s))


def aupro(masks: np.ndarray, maps: np.ndarray, max_fpr: float = 0.3, n_thresholds: int = 200) -> float:
    """Area under the per-region-overlap curve up to ``max_fpr``, normalised to [0, 1] (MVTec AD).

    PRO at a threshold = mean over ground-truth connected components of the fraction of the
    component's pixels above the threshold; FPR over the good pixels of all images.
    """
    masks = [np.asarray(m, bool) for m in masks]
    maps = [np.asarray(m, np.float32) for m in maps]
    comps = []  # (image index, flat pixel indices) per defect region
    for i, m in enumerate(masks):
        lab, n = cc_label(m, structure=np.ones((3, 3)))
        comps += [(i, np.flatnonzero(lab == k)) for k in range(1, n + 1)]
    if not comps:
        return float("nan")
    neg = np.concatenate([mp[~m] for mp, m in zip(maps, masks)])
    if neg.size == 0:
        return float("nan")
    # thresholds spaced by quantiles of the good pixels, so the FPR axis is well sampled up to max_fpr
    qs = np.linspace(0, max_fpr, n_thresholds)
    thresholds = np.unique(np.quantile(neg, 1 - qs))[::-1]
    neg_sorted = np.sort(neg)
    fprs, pros = [], []
    comp_vals = [np.sort(maps[i].ravel()[idx]) for i, idx in comps]
    for t in thresholds:
        fprs.append(1 - np.searchsorted(neg_sorted, t, side="right") / neg.size)
        pros.append(np.mean([1 - np.searchsorted(v, t, side="right") / v.size for v in comp_vals]))
    fprs, pros = np.array(fprs), np.array(pros)
    order = np.argsort(fprs)
    fprs, pros = fprs[order], pros[order]
    keep = fprs <= max_fpr
    fprs, pros = fprs[keep], pros[keep]
    if fprs.size == 0 or fprs[-1] < max_fpr:  # close the curve at max_fpr with the last PRO value
        fprs = np.append(fprs, max_fpr)
        pros = np.append(pros, pros[-1] if pros.size else 0.0)
    if fprs[0] > 0:
        fprs, pros = np.insert(fprs, 0, 0.0), np.insert(pros, 0, 0.0)
    return float(auc(fprs, pros) / max_fpr)


def roc_points(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false-positive rate, true-positive rate) for the ROC figure."""
    fpr, tpr, _ = roc_curve(np.asarray(labels, int), scores)
    return fpr, tpr


def per_type_table(labels: np.ndarray, types: list[str], scores: np.ndarray, predicted: np.ndarray) -> list[dict]:
    """One row per defect type: count, detected (recall), AUROC of that type vs the good images."""
    labels, scores, predicted = np.asarray(labels), np.asarray(scores), np.asarray(predicted)
    types_arr = np.asarray(types)
    good = labels == 0
    rows = []
    for t in sorted(set(types) - {"good"}):
        sel = types_arr == t
        y = np.r_[np.zeros(good.sum()), np.ones(sel.sum())]
        s = np.r_[scores[good], scores[sel]]
        rows.append({"type": t, "n": int(sel.sum()), "detected": int(predicted[sel].sum()),
                     "recall": _safe_div(predicted[sel].sum(), sel.sum()),
                     "auroc": float(roc_auc_score(y, s)) if good.any() else float("nan")})
    return rows
