"""What the benchmark scripts share: training through the public API, timing, seeds, writing
results; and the detector benchmark (every kizu detector and classic peers on every built-in task,
used by ``bench/detectors.py``), which prints a table and returns rows as dicts.
kizu detectors go through ``kizu.fit_model`` (cross-conformal calibration by default);
peers (PyOD, scikit-learn; the ``bench`` extra) see flattened pixels of all good images and use
their own training-score threshold (contamination = alpha), as their users would.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from sklearn.metrics import roc_auc_score

from kizu import InspectionModel, TrainConfig, fit_model
from kizu.evaluation.metrics import pixel_auroc
from kizu.io import atomic_write_text
from kizu.synth import SynthDataset, make_shapes


def train(images, detector: str | None = None, options: dict | None = None, *, device: str = "auto",
          **config) -> InspectionModel:
    """``fit_model`` with a ``TrainConfig`` of ``detector`` (default: kizu's), its ``options`` and
    ``config`` fields."""
    if detector is not None:
        config["detector"] = detector
    config["options"] = dict(options or config.get("options") or {})
    return fit_model(images, TrainConfig(**config), device=device)


def time_inspect(model: InspectionModel, images: np.ndarray, runs: int, sync: Callable[[], None] = lambda: None
                 ) -> tuple[np.ndarray, float]:
    """Latency of ``model.inspect`` on one image at a time (``runs`` calls cycling through
    ``images``, after a warm-up) in ms, and the images/s of one call on all of ``images``.
    ``sync`` waits for an accelerator (e.g. ``torch.cuda.synchronize``) around each timing."""
    model.inspect(images[:2])  # warm-up
    lat = []
    for i in range(runs):
        sync()
        t0 = time.perf_counter()
        model.inspect(images[i % len(images)][None])
        sync()
        lat.append(time.perf_counter() - t0)
    sync()
    t0 = time.perf_counter()
    model.inspect(images)
    sync()
    return np.array(lat) * 1000, len(images) / (time.perf_counter() - t0)


def _int_arg(text: str, what: str, minimum: int) -> int:
    """An argparse integer of at least ``minimum``, checked before any training starts (not deep
    inside a generator, after results were half written)."""
    import argparse

    kind = "non-negative" if minimum == 0 else "positive"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} must be {kind} integers, not {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{what} must be {kind} integers, not {value}")
    return value


def seed_arg(text: str) -> int:
    """argparse type for the bench scripts' ``--seeds``: a non-negative integer."""
    return _int_arg(text, "seeds", 0)


def size_arg(text: str) -> int:
    """argparse type for training-set sizes: a positive integer."""
    return _int_arg(text, "sizes", 1)


def save_results(path, results) -> None:
    """Write benchmark results as JSON atomically and say where."""
    import json

    atomic_write_text(path, json.dumps(results, indent=2, default=float))
    print(f"\nwrote {path}")


@dataclass
class Task:
    name: str
    make: Callable[[int], SynthDataset]  # seed → data set


def default_tasks(sizes=(100, 1000), fine: bool = True) -> list[Task]:
    tasks = []
    for n in sizes:
        for jitter in ("seed", "intended"):
            tasks.append(Task(f"shapes-{jitter}-n{n}", lambda s, n=n, j=jitter: make_shapes(n, 500, 500, seed=s, jitter=j)))
    if fine:
        from kizu.synth.fine import make_fine

        tasks.append(Task("fine-parts-n100", lambda s: make_fine(100, 100, 25, size=64, seed=s, mode="parts")))
        tasks.append(Task("fine-texture-n100", lambda s: make_fine(100, 100, 25, size=64, seed=s, mode="texture")))
        from kizu.synth.photo import PHOTOS, make_photo_textures

        for photo in PHOTOS:
            tasks.append(Task(f"photo-{photo}-n100", lambda s, p=photo: make_photo_textures(p, 100, 50, 25, seed=s)))
    return tasks


#: (label, detector name, options)
KIZU_DETECTORS: list[tuple[str, str, dict[str, Any]]] = [
    ("autoencoder (seed)", "autoencoder", {"preset": "seed"}),
    ("autoencoder", "autoencoder", {"preset": "default"}),
    ("mt", "mt", {}),
    ("patch-gaussian", "patch-gaussian", {}),
    ("patch-knn (pixels)", "patch-knn", {"preset": "pixels"}),
    ("patch-knn (lite0)", "patch-knn", {}),
]


def _peers(alpha: float) -> dict[str, Callable[[], Any]]:
    from pyod.models.auto_encoder import AutoEncoder
    from pyod.models.iforest import IForest
    from pyod.models.knn import KNN
    from pyod.models.mcd import MCD
    from pyod.models.pca import PCA

    return {
        "pyod PCA": lambda: PCA(contamination=alpha, random_state=0),
        "pyod KNN": lambda: KNN(contamination=alpha),
        "pyod IForest": lambda: IForest(contamination=alpha, random_state=0),
        "pyod MCD": lambda: MCD(contamination=alpha, random_state=0),
        "pyod AutoEncoder": lambda: AutoEncoder(contamination=alpha, verbose=0, random_state=0, epoch_num=30),
        "sklearn LedoitWolf": lambda: _LedoitWolfPeer(alpha),
    }


class _LedoitWolfPeer:
    """Mahalanobis distance with a Ledoit–Wolf covariance on flattened pixels (PyOD-like API)."""

    def __init__(self, alpha: float):
        self.alpha = alpha

    def fit(self, x):
        from sklearn.covariance import LedoitWolf

        self.lw = LedoitWolf().fit(x)
        self.threshold_ = np.quantile(self.lw.mahalanobis(x), 1 - self.alpha)
        return self

    def decision_function(self, x):
        return self.lw.mahalanobis(x)

    def predict(self, x):
        return (self.decision_function(x) > self.threshold_).astype(int)


def _auroc(y, s) -> float:
    return float(roc_auc_score(y, s)) if len(np.unique(y)) == 2 else float("nan")


def run_kizu(label: str, name: str, options: dict, data: SynthDataset, seed: int, alpha: float) -> dict:
    t0 = time.perf_counter()
    model = train(data.train, name, options, seed=seed, alpha=alpha)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    verdicts = model.inspect(data.test)
    infer_s = time.perf_counter() - t0
    scores = np.array([v.score for v in verdicts])
    flagged = np.array([v.defective for v in verdicts])
    good = data.test_labels == 0
    row = {"detector": label, "image_auroc": _auroc(data.test_labels, scores),
           "far": float(flagged[good].mean()), "recall": float(flagged[~good].mean()) if (~good).any() else float("nan"),
           "fit_seconds": fit_s, "images_per_second": len(scores) / infer_s}
    if data.test_masks is not None:
        row["pixel_auroc"] = pixel_auroc(data.test_masks, [v.anomaly_map for v in verdicts])
        types = np.asarray(data.test_types)
        row["per_type_auroc"] = {t: _auroc(np.r_[np.zeros(good.sum()), np.ones((types == t).sum())],
                                           np.r_[scores[good], scores[types == t]])
                                 for t in sorted(set(data.test_types) - {"good"})}
    return row


#: MCD's robust covariance costs O(d³) per iteration: it does not finish on 64×64 images here
MCD_MAX_DIM = 1024


def run_peer(label: str, factory, data: SynthDataset) -> dict:
    x = data.train.reshape(len(data.train), -1).astype(np.float64)
    t = data.test.reshape(len(data.test), -1).astype(np.float64)
    if label == "pyod MCD" and x.shape[1] > MCD_MAX_DIM:
        raise RuntimeError(f"skipped: {x.shape[1]} pixels > {MCD_MAX_DIM} (MCD does not finish in minutes)")
    t0 = time.perf_counter()
    det = factory().fit(x)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    scores = np.nan_to_num(det.decision_function(t), nan=np.inf, posinf=1e300)
    pred = det.predict(t).astype(bool)
    infer_s = time.perf_counter() - t0
    good = data.test_labels == 0
    return {"detector": label, "image_auroc": _auroc(data.test_labels, scores), "far": float(pred[good].mean()),
            "recall": float(pred[~good].mean()), "fit_seconds": fit_s, "images_per_second": len(t) / infer_s}


def run_benchmark(tasks: list[Task], detectors=KIZU_DETECTORS, *, seeds=(0,), peers: bool = True, alpha: float = 0.05,
                  log: Callable[[str], None] = print) -> list[dict]:
    rows = []
    header = f"{'task':<22} {'detector':<22} {'AUROC':>7} {'pixAUROC':>8} {'FAR':>6} {'recall':>6} {'fit s':>7} {'img/s':>8}"
    log(header)
    log("-" * len(header))
    for task in tasks:
        for seed in seeds:
            data = task.make(seed)
            entries = [("kizu", d) for d in detectors]
            if peers:
                try:
                    entries += [("peer", p) for p in _peers(alpha).items()]
                except ImportError as err:
                    log(f"(peers skipped: {err}; install the bench extra: pip install -e '.[bench]')")
                    peers = False
            for kind, entry in entries:
                try:
                    row = run_kizu(*entry, data, seed, alpha) if kind == "kizu" else run_peer(*entry, data)
                except Exception as err:  # a failing peer must not hide the other results
                    row = {"detector": entry[0], "error": f"{type(err).__name__}: {err}"}
                row.update(task=task.name, seed=seed, kind=kind)
                rows.append(row)
                if "error" in row:
                    log(f"{task.name:<22} {row['detector']:<22} failed: {row['error'][:80]}")
                    continue
                pa = row.get("pixel_auroc")
                log(f"{task.name:<22} {row['detector']:<22} {row['image_auroc']:>7.4f} "
                    f"{'' if pa is None else f'{pa:.4f}':>8} {row['far']:>6.3f} {row['recall']:>6.3f} "
                    f"{row['fit_seconds']:>7.2f} {row['images_per_second']:>8.1f}")
    return rows
