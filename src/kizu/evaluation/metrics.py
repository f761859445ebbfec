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


#: above this many pixels in all, the pixel metrics count pixels in fine score bins instead of
#: sorting every pixel (160 test images of 1024 px: 12 GB of memory when sorted)
EXACT_PIXELS = 20_000_000
#: score bins of the binned pixel metrics; edges at quantiles of a sample of the pixels
PIXEL_BINS = 65_536
#: pixels sampled (at most, spread over the images) to place the bin edges
EDGE_SAMPLE = 2_000_000


def _sample(values: list[np.ndarray], n: int, seed: int = 0) -> np.ndarray:
    """About ``n`` values drawn evenly from the flat arrays ``values`` (all of them if fewer)."""
    rng = np.random.default_rng(seed)
    total = sum(v.size for v in values)
    if total <= n:
        return np.concatenate(values)
    return np.concatenate([v[rng.integers(0, v.size, max(1, round(n * v.size / total)))] for v in values if v.size])


def _binned_counts(masks, maps, edges: np.ndarray, side: str = "right") -> tuple[np.ndarray, np.ndarray]:
    """Defect and good pixel counts per score bin, image by image. Bin j holds
    edges[j-1] <= score < edges[j] (``side="right"``) or edges[j-1] < score <= edges[j] (``"left"``)."""
    pos = np.zeros(len(edges) + 1, np.int64)
    neg = np.zeros(len(edges) + 1, np.int64)
    for m, mp in zip(masks, maps):
        m = np.asarray(m, bool).ravel()
        b = np.searchsorted(edges, np.asarray(mp, np.float32).ravel(), side=side)
        pos += np.bincount(b[m], minlength=len(pos))
        neg += np.bincount(b[~m], minlength=len(neg))
    return pos, neg


def pixel_auroc(masks: np.ndarray, maps: np.ndarray) -> float:
    """AUROC over all pixels of ``(N, H, W)`` bool masks vs ``(N, H, W)`` maps (lists of ``(H, W)``
    arrays of different sizes work too). Above ``EXACT_PIXELS`` pixels it counts pixels in
    ``PIXEL_BINS`` score bins: pairs in one bin count as ties (half), as equal scores do exactly,
    which moves the result by at most about 1 / ``PIXEL_BINS``."""
    if sum(np.asarray(m).size for m in masks) <= EXACT_PIXELS:
        y = np.concatenate([np.asarray(m, bool).ravel() for m in masks])
        s = np.concatenate([np.asarray(m, np.float32).ravel() for m in maps])
        if y.all() or not y.any():
            return float("nan")
        return float(roc_auc_score(y, s))
    sample = _sample([np.asarray(mp, np.float32).ravel() for mp in maps], EDGE_SAMPLE)
    edges = np.unique(np.quantile(sample, np.linspace(0, 1, PIXEL_BINS + 1)[1:-1]).astype(np.float32))
    pos, neg = _binned_counts(masks, maps, edges)
    n_pos, n_neg = int(pos.sum()), int(neg.sum())
    if not n_pos or not n_neg:
        return float("nan")
    neg_below = np.cumsum(neg) - neg
    return float(((pos * neg_below).sum() + 0.5 * (pos * neg).sum()) / (n_pos * n_neg))


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
    qs = np.linspace(0, max_fpr, n_thresholds)
    if sum(m.size for m in masks) <= EXACT_PIXELS:
        neg = np.concatenate([mp[~m] for mp, m in zip(maps, masks)])
        if neg.size == 0:
            return float("nan")
        # thresholds spaced by quantiles of the good pixels, so the FPR axis is well sampled up to max_fpr
        thresholds = np.unique(np.quantile(neg, 1 - qs))[::-1]
        neg_sorted = np.sort(neg)
        fpr_at = [1 - np.searchsorted(neg_sorted, t, side="right") / neg.size for t in thresholds]
    else:  # large sets: thresholds from a sample of the good pixels, FPRs counted exactly image by image
        sample = _sample([mp[~m] for mp, m in zip(maps, masks)], EDGE_SAMPLE)
        if sample.size == 0:
            return float("nan")
        edges = np.unique(np.quantile(sample, 1 - qs).astype(np.float32))  # ascending
        _, neg = _binned_counts(masks, maps, edges, side="left")
        above = neg[::-1].cumsum()[::-1]  # above[j + 1]: good pixels scoring > edges[j]
        thresholds = edges[::-1]
        fpr_at = [above[j + 1] / neg.sum() for j in range(len(edges))][::-1]
    fprs, pros = [], []
    comp_vals = [np.sort(maps[i].ravel()[idx]) for i, idx in comps]
    for t, f in zip(thresholds, fpr_at):
        fprs.append(f)
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
