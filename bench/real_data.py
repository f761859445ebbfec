"""Real line data: kizu on the ELPV solar-cell electroluminescence images.

The ``elpv-dataset`` package (``pip install elpv-dataset``; CC BY-NC-SA 4.0 data: a bench-only
dependency, never shipped, never downloaded by kizu) holds 2624 grey 300×300 px cells, each with a
type (``mono`` 1074, ``poly`` 1550) and a defect probability from experts (0, 1/3, 2/3, 1). Per type
and seed: 100 good training images, 150 other good and 150 defective (probability 1) test images,
a seeded random draw per seed. Trained as ``kizu train`` trains (``kizu.fit_model``, default
detector, alpha 0.05) once per calibration scheme (``--calibrations``).

    .venv/bin/python bench/real_data.py [--types mono poly] [--seeds 0 1 2] [--calibrations auto cross]
        [-O key=value ...] [--peers] [--out FILE]

Prints a table (image AUROC, false-alarm rate and recall at the threshold, fit seconds, images/s
through ``inspect``, the load average) and writes bench/results/real_data.json.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from _runner import _peers, run_peer, save_results, seed_arg, train
from kizu.cli.common import parse_options
from kizu.ops.resize import resize_image
from kizu.synth import SynthDataset

TYPES = ("mono", "poly")
N_TRAIN, N_GOOD_TEST, N_BAD_TEST = 100, 150, 150
#: side (px) of the flattened-pixel images the PyOD peers see
PEER_SIDE = 32


def elpv() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images (N, 300, 300) uint8, defect probabilities (N,), types (N,)) from the package."""
    try:
        from elpv_dataset.utils import load_dataset
    except ImportError:
        raise SystemExit("bench/real_data.py needs the elpv-dataset package (pip install elpv-dataset); "
                         "its images are CC BY-NC-SA 4.0: for benchmarking only") from None
    return load_dataset()


def split(data, kind: str, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices (training good, test good, test defective) of one type: a seeded random draw."""
    _, probs, types = data
    rng = np.random.default_rng([seed, TYPES.index(kind)])
    good = rng.permutation(np.flatnonzero((types == kind) & (probs == 0.0)))
    bad = rng.permutation(np.flatnonzero((types == kind) & (probs == 1.0)))
    return good[:N_TRAIN], good[N_TRAIN:N_TRAIN + N_GOOD_TEST], bad[:N_BAD_TEST]


def kizu_row(images, labels, train_images, seed: int, calibration: str, options: dict) -> dict:
    t0 = time.perf_counter()
    model = train(train_images, None, options, seed=seed, calibration=calibration)
    fit_s = time.perf_counter() - t0
    model.predict(images[:2])  # warm-up
    t0 = time.perf_counter()
    pred = model.predict(images)
    ips = len(images) / (time.perf_counter() - t0)
    good = labels == 0
    return {"detector": f"kizu ({calibration})", "calibration": model.summary["calibration"],
            "stages": model.detector_config.get("stages"), "image_auroc": float(roc_auc_score(labels, pred.scores)),
            "far": float(pred.defective[good].mean()), "recall": float(pred.defective[~good].mean()),
            "fit_seconds": fit_s, "images_per_second": ips, "threshold": model.calibration.threshold,
            "load": os.getloadavg()[0]}


def peer_rows(train_images, images, labels) -> list[dict]:
    small = lambda xs: np.stack([resize_image(a[None], (PEER_SIDE, PEER_SIDE))[0] for a in xs])  # noqa: E731
    data = SynthDataset(small(train_images), small(images), labels, ["good" if y == 0 else "defect" for y in labels])
    rows = []
    for label, factory in _peers(0.05).items():
        if label == "pyod MCD":  # minutes per fit on 1024 pixels
            continue
        try:
            rows.append(run_peer(label, factory, data))
        except Exception as err:  # a failing peer must not hide the other results
            rows.append({"detector": label, "error": f"{type(err).__name__}: {err}"})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--types", nargs="+", default=list(TYPES), choices=TYPES)
    ap.add_argument("--seeds", type=seed_arg, nargs="+", default=[0, 1, 2])
    ap.add_argument("--calibrations", nargs="+", default=["auto", "cross"])
    ap.add_argument("-O", "--option", action="append", default=[], help="detector option key=value")
    ap.add_argument("--peers", action="store_true", help="also PyOD / scikit-learn peers on 32×32 pixels")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "real_data.json")
    args = ap.parse_args(argv)
    options = parse_options(args.option)
    data = elpv()
    head = f"{'type':<5} {'seed':>4} {'detector':<20} {'AUROC':>6} {'FAR':>6} {'recall':>6} {'fit s':>6} {'img/s':>6}"
    print(f"ELPV, default detector + {options}\n{head}\n" + "-" * len(head))
    rows = []
    for kind in args.types:
        for seed in args.seeds:
            tr, gd, bd = split(data, kind, seed)
            as_float = lambda idx: data[0][idx].astype(np.float32) / 255.0  # noqa: E731
            train_images, images = as_float(tr), as_float(np.r_[gd, bd])
            labels = np.r_[np.zeros(len(gd), int), np.ones(len(bd), int)]
            entries = [kizu_row(images, labels, train_images, seed, c, options) for c in args.calibrations]
            entries += peer_rows(train_images, images, labels) if args.peers else []
            for r in entries:
                r.update(type=kind, seed=seed)
                rows.append(r)
                if "error" in r:
                    print(f"{kind:<5} {seed:>4} {r['detector']:<20} failed: {r['error'][:70]}")
                    continue
                print(f"{kind:<5} {seed:>4} {r['detector']:<20} {r['image_auroc']:>6.3f} {r['far']:>6.3f} "
                      f"{r['recall']:>6.3f} {r['fit_seconds']:>6.1f} {r['images_per_second']:>6.1f}", flush=True)
    for kind in args.types:
        for name in dict.fromkeys(r["detector"] for r in rows if "error" not in r):
            rs = [r for r in rows if r["type"] == kind and r["detector"] == name and "error" not in r]
            if rs:
                print(f"{kind:<5} {'mean':>4} {name:<20} " + " ".join(
                    f"{np.mean([r[k] for r in rs]):>6.3f}" for k in ("image_auroc", "far", "recall")))
    save_results(args.out, {"options": options, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
