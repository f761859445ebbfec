"""Seed parity: the seed's set-up (1000 good images to train, 500 + 500 to test) and the same with
100 good images, both jitter modes, 3 seeds — the seed's exact network and rule vs kizu's default.

Prints a table (image AUROC, confusion matrix at the threshold, false-alarm rate on unseen good
images) and writes bench/results/seed_parity.json.

    .venv/bin/python bench/seed_parity.py [--seeds 0 1 2] [--sizes 1000 100] [--extra-good 2000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _runner import save_results, seed_arg, train  # noqa: E402
from kizu import synth  # noqa: E402
from kizu.evaluation.metrics import image_metrics  # noqa: E402

CONFIGS = {
    # the seed's Keras code as written: its network, 50 epochs, threshold = 95th pct. of training errors,
    # trained on all images (no hold-out)
    "seed (as written)": dict(detector="autoencoder", options={"preset": "seed"}, threshold_rule="train-quantile",
                              calibration_fraction=0.0),
    # kizu's default autoencoder: conformal threshold on 20 % held-out good images
    "kizu default AE": dict(detector="autoencoder", options={"preset": "default"}, calibration="holdout"),
}


def run_one(name: str, cfg: dict, n: int, jitter: str, seed: int, extra_good: int) -> dict:
    d = synth.make_shapes(n, 500, 500, seed=seed, jitter=jitter)
    extra = synth.make_shapes(0, extra_good, 0, seed=10_000 + seed, jitter=jitter).test
    t0 = time.perf_counter()
    model = train(d.train, seed=seed, **cfg)
    fit_s = time.perf_counter() - t0
    v = model.inspect(d.test)
    scores = np.array([x.score for x in v])
    pred = np.array([x.defective for x in v])
    m = image_metrics(d.test_labels, scores, pred)
    far_extra = float(np.mean([x.defective for x in model.inspect(extra)])) if extra_good else float("nan")
    return {"config": name, "n_train": n, "jitter": jitter, "seed": seed, "image_auroc": m["image_auroc"],
            "tp": m["tp"], "fp": m["fp"], "fn": m["fn"], "tn": m["tn"], "fpr_test": m["fpr"],
            "far_unseen_good": far_extra, "n_unseen_good": extra_good + 500 * 0, "fit_seconds": round(fit_s, 2),
            "threshold": model.calibration.threshold}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=seed_arg, nargs="+", default=[0, 1, 2])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 100])
    ap.add_argument("--jitters", nargs="+", default=["seed", "intended"])
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS))
    ap.add_argument("--extra-good", type=int, default=2000, help="extra unseen good images for the false-alarm rate")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "seed_parity.json")
    args = ap.parse_args(argv)
    rows = []
    print(f"{'config':<18} {'n':>5} {'jitter':<9} {'seed':>4} {'AUROC':>7} {'TP':>4} {'FP':>4} {'FN':>4} {'TN':>4} "
          f"{'FAR':>6} {'fit s':>6}")
    for n in args.sizes:
        for jitter in args.jitters:
            for name in args.configs:
                for seed in args.seeds:
                    r = run_one(name, CONFIGS[name], n, jitter, seed, args.extra_good)
                    rows.append(r)
                    print(f"{name:<18} {n:>5} {jitter:<9} {seed:>4} {r['image_auroc']:>7.4f} {r['tp']:>4} {r['fp']:>4} "
                          f"{r['fn']:>4} {r['tn']:>4} {r['far_unseen_good']:>6.3f} {r['fit_seconds']:>6.1f}", flush=True)
    print("\nsummary (min–max over seeds; FAR = false-alarm rate on unseen good images, target alpha = 0.05)")
    summary = []
    for n in args.sizes:
        for jitter in args.jitters:
            for name in args.configs:
                sel = [r for r in rows if r["n_train"] == n and r["jitter"] == jitter and r["config"] == name]
                a = [r["image_auroc"] for r in sel]
                f = [r["far_unseen_good"] for r in sel]
                s = {"config": name, "n_train": n, "jitter": jitter, "auroc_min": min(a), "auroc_max": max(a),
                     "auroc_mean": float(np.mean(a)), "far_min": min(f), "far_max": max(f), "far_mean": float(np.mean(f))}
                summary.append(s)
                print(f"{name:<18} n={n:<5} {jitter:<9} AUROC {min(a):.3f}–{max(a):.3f}  FAR {min(f):.3f}–{max(f):.3f}"
                      f" (mean {np.mean(f):.3f})")
    save_results(args.out, {"rows": rows, "summary": summary})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
