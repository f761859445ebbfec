"""Training and inference speed on a compute device (CPU or CUDA GPU), and whether a GPU gives the
CPU's results: the default detector on 64 px and 256 px `synth fine` images and the seed's
autoencoder on its shapes, 100 (autoencoder: 1000) good training images each.

    .venv/bin/python bench/device_speed.py --devices cuda cpu [--threads 16] [--runs 50]

For each device and task: training time (whole `InspectionModel.train`, cross-calibration
included), single-image latency of `InspectionModel.inspect` (p50/p90), batch throughput, image
AUROC; on the first device each model is trained twice with the same seed (identical scores?).
With two devices it compares their image scores: of models trained on each (largest difference
relative to the spread of the scores, verdict agreement), and of the second device's model
scored on the first (largest relative difference: the arithmetic alone). Prints a table and writes
bench/results/device_speed.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _runner import save_results, time_inspect, train  # noqa: E402
from kizu import InspectionModel  # noqa: E402
from kizu.detectors import DEFAULT_DETECTOR  # noqa: E402
from kizu.synth import make_shapes  # noqa: E402
from kizu.synth.fine import make_fine  # noqa: E402

TASKS = {
    # name: (data set, detector, options)
    "fine-texture-64": (lambda: make_fine(100, 50, 10, size=64, seed=0, mode="texture"), DEFAULT_DETECTOR,
                        {}),
    "fine-parts-256": (lambda: make_fine(100, 50, 10, size=256, seed=0, mode="parts"), DEFAULT_DETECTOR,
                       {}),
    "shapes-seed-autoencoder": (lambda: make_shapes(1000, 250, 250, seed=0), "autoencoder", {"preset": "seed"}),
}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _train(ds, detector: str, options: dict, device: str) -> tuple[InspectionModel, float]:
    _sync(device)
    t0 = time.perf_counter()
    model = train(ds.train, detector, options, seed=0, device=device)
    _sync(device)
    return model, time.perf_counter() - t0


def _scores(model: InspectionModel, images: np.ndarray) -> np.ndarray:
    return np.array([v.score for v in model.inspect(images)])


def run_task(name: str, device: str, runs: int, twice: bool):
    """One task on one device → (table row, test scores, verdicts, model, data set)."""
    make, detector, options = TASKS[name]
    ds = make()
    model, train_s = _train(ds, detector, options, device)
    verdicts = model.inspect(ds.test)
    scores = np.array([v.score for v in verdicts])
    flagged = np.array([v.defective for v in verdicts])
    same_seed_identical = None
    if twice:
        again, _ = _train(ds, detector, options, device)
        same_seed_identical = bool(np.array_equal(_scores(again, ds.test), scores))
    lat_ms, batch_ips = time_inspect(model, ds.test, runs, lambda: _sync(device))
    row = {"task": name, "device": device, "detector": detector, "image_size": int(ds.train.shape[-1]),
           "n_train": len(ds.train), "train_seconds": train_s,
           "latency_ms_p50": float(np.percentile(lat_ms, 50)), "latency_ms_p90": float(np.percentile(lat_ms, 90)),
           "batch_images_per_second": batch_ips, "image_auroc": float(roc_auc_score(ds.test_labels, scores)),
           "same_seed_identical": same_seed_identical}
    return row, scores, flagged, model, ds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", nargs="+", default=["cuda" if torch.cuda.is_available() else "cpu"])
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "device_speed.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    env = {"torch": torch.__version__, "cpu_threads": args.threads,
           "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    print(env, flush=True)
    rows, agreement = [], []
    for task in args.tasks:
        first = None
        for j, device in enumerate(args.devices):
            row, scores, verdicts, model, ds = run_task(task, device, args.runs, twice=j == 0)
            rows.append(row)
            print(row, flush=True)
            if first is None:
                first = (device, scores, verdicts)
                continue
            spread = float(np.ptp(first[1])) or 1.0
            # the same fitted model scored on the first device: only the arithmetic differs
            model.detector.to(first[0])
            moved = _scores(model, ds.test)
            model.detector.to(device)
            agreement.append({"task": task, "devices": [first[0], device],
                              "max_score_difference_over_range": float(np.abs(scores - first[1]).max() / spread),
                              "verdict_agreement": float((verdicts == first[2]).mean()),
                              "same_model_max_relative_difference": float(np.abs(moved - scores).max()
                                                                          / (np.abs(scores).max() or 1.0))})
            print(agreement[-1], flush=True)
    print(f"\n{'task':<25} {'device':<6} {'train s':>8} {'p50 ms':>7} {'p90 ms':>7} {'img/s':>8} {'AUROC':>7} "
          f"{'same seed = same scores':>24}")
    for r in rows:
        same = "" if r["same_seed_identical"] is None else str(r["same_seed_identical"])
        print(f"{r['task']:<25} {r['device']:<6} {r['train_seconds']:>8.1f} {r['latency_ms_p50']:>7.1f} "
              f"{r['latency_ms_p90']:>7.1f} {r['batch_images_per_second']:>8.1f} {r['image_auroc']:>7.4f} {same:>24}")
    for a in agreement:
        print(f"{a['task']}: trained on {a['devices'][0]} vs on {a['devices'][1]}: largest score difference "
              f"{a['max_score_difference_over_range']:.2e} of the score range, verdicts agree on "
              f"{100 * a['verdict_agreement']:.1f} %; the {a['devices'][1]} model scored on {a['devices'][0]}: "
              f"largest relative difference {a['same_model_max_relative_difference']:.1e}")
    save_results(args.out, {"environment": env, "rows": rows, "agreement": agreement})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
