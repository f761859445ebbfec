"""Figures for people (matplotlib, no display needed). Each function returns a Figure."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import LinearSegmentedColormap  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ..io.atomic import atomic_write_bytes  # noqa: E402

GOOD_COLOUR, BAD_COLOUR, THRESHOLD_COLOUR = "#2b7bba", "#d7301f", "#222222"


def figure_png(fig: Figure, dpi: int = 110) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def save_figure(fig: Figure, path: str | Path, dpi: int = 110) -> bytes:
    """Write the figure as PNG atomically; returns the PNG bytes (for embedding in the report)."""
    png = figure_png(fig, dpi)
    atomic_write_bytes(path, png)
    return png


def _show(ax, image: np.ndarray, title: str, **kw):
    """Show a ``(C, H, W)`` or ``(H, W)`` image on ``ax`` without axes."""
    a = np.asarray(image)
    if a.ndim == 3:
        a = a[0] if a.shape[0] == 1 else np.clip(a.transpose(1, 2, 0), 0, 1)
    kw.setdefault("cmap", "gray")
    if a.ndim == 3:
        kw.pop("cmap")
    im = ax.imshow(a, interpolation="nearest", **kw)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    return im


def example_images(good: list[np.ndarray], defective: list[np.ndarray], n: int = 4) -> Figure:
    """The seed's first figure: a row of good and a row of defective examples."""
    n = max(1, min(n, max(len(good), len(defective))))
    fig, axes = plt.subplots(2, n, figsize=(2.2 * n, 4.6), squeeze=False)
    for row, (imgs, label) in enumerate([(good, "Good"), (defective, "Defective")]):
        for i in range(n):
            ax = axes[row, i]
            if i < len(imgs):
                _show(ax, imgs[i], label, vmin=0, vmax=1)
            else:
                ax.axis("off")
    fig.suptitle("Example images (good vs defective)", fontsize=13)
    fig.tight_layout()
    return fig


def loss_curve(history: dict[str, list[float]]) -> Figure:
    """Training and validation loss per epoch (the seed's second figure)."""
    fig, ax = plt.subplots(figsize=(6.4, 4))
    loss = history.get("loss", [])
    val = [v for v in history.get("val_loss", []) if v == v]
    if loss:
        ax.plot(np.arange(1, len(loss) + 1), loss, label="Training loss")
    if val:
        ax.plot(np.arange(1, len(val) + 1), val, label="Validation loss")
    if not loss:
        ax.text(0.5, 0.5, "this detector has no training loss\n(fitted in closed form)", ha="center",
                va="center", transform=ax.transAxes)
    ax.set_xlabel("Epoch")
    ax.set_ylabel("Loss")
    if loss and min(loss) > 0 and max(loss) / max(min(loss), 1e-12) > 20:
        ax.set_yscale("log")
    ax.set_title("Training and validation loss")
    ax.grid(True, alpha=0.3)
    if loss:
        ax.legend()
    fig.tight_layout()
    return fig


def reconstruction_grid(originals: list[np.ndarray], reconstructions: list[np.ndarray] | None,
                        maps: list[np.ndarray], titles: list[str], vmax: float | None = None,
                        map_label: str | None = None) -> Figure:
    """Original / reconstruction / squared-error heat map (with colour bar) per column.

    Without reconstructions (non-reconstruction detectors) the middle row is left out.
    ``vmax`` fixes one colour scale for all heat maps so good and defective images compare fairly.
    """
    n = len(originals)
    rows = 3 if reconstructions is not None else 2
    fig, axes = plt.subplots(rows, n, figsize=(2.5 * n, 2.5 * rows + 0.6), squeeze=False)
    vmax = vmax if vmax is not None else float(max(np.max(m) for m in maps)) or 1.0
    for i in range(n):
        _show(axes[0, i], originals[i], f"Original\n{titles[i]}", vmin=0, vmax=1)
        if reconstructions is not None:
            _show(axes[1, i], np.clip(reconstructions[i], 0, 1), "Reconstructed", vmin=0, vmax=1)
        im = _show(axes[rows - 1, i], maps[i], map_label or ("Anomaly map" if reconstructions is None else "Error"),
                   cmap="hot", vmin=0, vmax=vmax)
        fig.colorbar(im, ax=axes[rows - 1, i], fraction=0.046, pad=0.04)
    what = "Reconstruction error" if reconstructions is not None else "Anomaly maps"
    fig.suptitle(f"{what}: original vs reconstructed vs error", fontsize=13)
    fig.tight_layout()
    return fig


def confusion_heatmap(counts: dict[str, int], threshold: float) -> Figure:
    """The seed's confusion matrix (rows actual, columns predicted), annotated with counts."""
    cm = np.array([[counts["tn"], counts["fp"]], [counts["fn"], counts["tp"]]])
    fig, ax = plt.subplots(figsize=(5.6, 4.4))
    ax.imshow(cm, cmap="Blues")
    for (r, c), v in np.ndenumerate(cm):
        ax.text(c, r, str(v), ha="center", va="center", fontsize=16,
                color="white" if v > cm.max() / 2 else "black")
    ax.set_xticks([0, 1], ["Predicted good", "Predicted defective"])
    ax.set_yticks([0, 1], ["Actually good", "Actually defective"])
    ax.set_xlabel("Predicted")
    ax.set_ylabel("Actual")
    ax.set_title(f"Confusion matrix (threshold {threshold:.4g})")
    fig.tight_layout()
    return fig


def roc_figure(fpr: np.ndarray, tpr: np.ndarray, auroc: float, operating_point: tuple[float, float] | None) -> Figure:
    fig, ax = plt.subplots(figsize=(5, 4.6))
    ax.plot(fpr, tpr, color=BAD_COLOUR, lw=2, label=f"ROC (AUROC = {auroc:.4f})")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance")
    if operating_point is not None:
        ax.plot(*operating_point, "o", color=THRESHOLD_COLOUR, label="at the threshold")
    ax.set_xlabel("False-alarm rate (good images flagged)")
    ax.set_ylabel("Detection rate (defects caught)")
    ax.set_title("ROC curve")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def score_histogram(good: np.ndarray, defective: np.ndarray, threshold: float) -> Figure:
    """Histogram of good vs defective scores with the threshold line."""
    fig, ax = plt.subplots(figsize=(6.4, 4))
    allv = np.concatenate([good, defective])
    pos = allv[allv > 0]
    log = pos.size == allv.size and allv.size > 0 and allv.max() / max(pos.min(), 1e-300) > 100
    bins = np.geomspace(pos.min(), allv.max(), 50) if log else 50
    ax.hist(good, bins=bins, alpha=0.6, color=GOOD_COLOUR, label=f"good (n={len(good)})")
    if len(defective):
        ax.hist(defective, bins=bins, alpha=0.6, color=BAD_COLOUR, label=f"defective (n={len(defective)})")
    if np.isfinite(threshold):
        ax.axvline(threshold, color=THRESHOLD_COLOUR, ls="--", lw=2, label=f"threshold = {threshold:.4g}")
    if log:
        ax.set_xscale("log")
    ax.set_xlabel("Anomaly score")
    ax.set_ylabel("Number of images")
    ax.set_title("Scores of good vs defective images")
    ax.legend()
    fig.tight_layout()
    return fig


def threshold_explorer(thresholds: np.ndarray, far: np.ndarray, miss: np.ndarray, current: float,
                       candidates: list[dict] | None = None) -> Figure:
    """False-alarm rate and miss rate against the threshold, the current threshold marked."""
    fig, ax = plt.subplots(figsize=(6.8, 4.2))
    ax.plot(thresholds, far, color=GOOD_COLOUR, lw=2, label="false-alarm rate (good flagged)")
    ax.plot(thresholds, miss, color=BAD_COLOUR, lw=2, label="miss rate (defects passed)")
    if np.isfinite(current):
        ax.axvline(current, color=THRESHOLD_COLOUR, ls="--", lw=2, label=f"current threshold {current:.4g}")
    for c in candidates or []:
        ax.axvline(c["threshold"], color="grey", ls=":", lw=1)
    pos = thresholds[thresholds > 0]
    if pos.size == thresholds.size and pos.size and thresholds.max() / pos.min() > 100:
        ax.set_xscale("log")
    ax.set_xlabel("Threshold on the anomaly score")
    ax.set_ylabel("Rate")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Threshold explorer")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


#: transparent below the threshold's half, yellow → red above: the threshold is always the same orange
_OVERLAY_CMAP = LinearSegmentedColormap.from_list(
    "kizu_overlay", [(0.0, (0.2, 0.2, 1.0, 0.0)), (0.25, (0.2, 0.6, 1.0, 0.25)), (0.5, (1.0, 0.6, 0.0, 0.75)),
                     (1.0, (0.85, 0.0, 0.0, 0.9))])


def overlay_figure(image: np.ndarray, anomaly_map: np.ndarray, pixel_threshold: float, regions: list[dict],
                   title: str) -> Figure:
    """Image with a heat map on a scale fixed by calibration (0 → clear, threshold → orange,
    2 × threshold → red) and defect regions boxed — never stretched per image."""
    h, w = anomaly_map.shape
    finite = np.isfinite(pixel_threshold) and pixel_threshold > 0
    scale = 2 * pixel_threshold if finite else float(anomaly_map.max() or 1)
    fig, ax = plt.subplots(figsize=(4.2 * w / max(h, w) + 1.2, 4.2 * h / max(h, w)))
    _show(ax, image, title, vmin=0, vmax=1)
    im = ax.imshow(np.clip(anomaly_map / scale, 0, 1), cmap=_OVERLAY_CMAP, vmin=0, vmax=1, interpolation="bilinear")
    if np.isfinite(pixel_threshold):
        ax.contour(anomaly_map, levels=[pixel_threshold], colors=["#ff2200"], linewidths=1.2)
    for r in regions:
        ax.add_patch(plt.Rectangle((r["x"] - 0.5, r["y"] - 0.5), r["width"], r["height"], fill=False,
                                   ec="#00ff66", lw=1.5))
    cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, ticks=[0, 0.5, 1])
    cb.ax.set_yticklabels(["0", "threshold", "2× thr."])
    fig.tight_layout()
    return fig
