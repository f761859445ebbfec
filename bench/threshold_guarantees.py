"""Threshold guarantees over many random splits: does a stated alpha hold on unseen good images?

For each split: 100 good images (the seed task) train and calibrate a model; 1000 unseen good images
measure its false-alarm rate. Rules compared: conformal on a 20 % hold-out, conformal with
cross-conformal calibration (all 100 images calibrate), conformal with leave-own-out calibration
(one model; each image scored without its own memory rows: the default for patch-knn), the
calibration-conditional rule (FAR <= alpha with probability >= 1 - delta) on the cross-conformal
and leave-own-out scores, and the seed's train-quantile rule.

    .venv/bin/python bench/threshold_guarantees.py [--splits 50] [--jitter seed intended] [--detector NAME]

Prints a table and writes bench/results/threshold_guarantees.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _runner import save_results, train  # noqa: E402
from kizu import synth  # noqa: E402
from kizu.calibration import Calibration  # noqa: E402
from kizu.calibration.guarantees import conditional_threshold  # noqa: E402
from kizu.detectors import DEFAULT_DETECTOR, detector_class  # noqa: E402

#: the detectors issue's target band for the false-alarm rate: alpha ± 3 percentage points
BAND = 0.03


def split_rates(seed: int, jitter: str, detector: str, options: dict, alpha: float, delta: float) -> dict:
    d = synth.make_shapes(100, 1000, 0, seed=seed, jitter=jitter)
    unseen = d.test
    out = {}
    hold = train(d.train, detector, dict(options), seed=seed, alpha=alpha, calibration="holdout")
    s_hold = np.array([v.score for v in hold.inspect(unseen)])
    out["conformal, 20 % hold-out"] = float(np.mean(hold.calibration.is_defective(s_hold)))
    tq = Calibration.fit(hold.calibration.scores, alpha, "train-quantile", hold.calibration.train_scores)
    out["train-quantile (seed's rule)"] = float(np.mean(tq.is_defective(s_hold)))
    cross = train(d.train, detector, dict(options), seed=seed, alpha=alpha, calibration="cross", folds=5)
    s_cross = np.array([v.score for v in cross.inspect(unseen)])
    out["conformal, cross (5 folds)"] = float(np.mean(cross.calibration.is_defective(s_cross)))
    t = conditional_threshold(np.asarray(cross.calibration.scores), alpha, delta)
    out[f"conditional (delta={delta:g}), cross"] = float(np.mean(s_cross > t))
    if detector_class(detector).leaves_own_out:
        loo = train(d.train, detector, dict(options), seed=seed, alpha=alpha, calibration="loo")
        s_loo = np.array([v.score for v in loo.inspect(unseen)])
        out["conformal, leave-own-out"] = float(np.mean(loo.calibration.is_defective(s_loo)))
        t = conditional_threshold(np.asarray(loo.calibration.scores), alpha, delta)
        out[f"conditional (delta={delta:g}), loo"] = float(np.mean(s_loo > t))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splits", type=int, default=50)
    ap.add_argument("--jitter", nargs="+", default=["seed", "intended"])
    ap.add_argument("--detector", default=DEFAULT_DETECTOR)
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--delta", type=float, default=0.1)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "threshold_guarantees.json")
    args = ap.parse_args(argv)
    options = {}
    result = {"detector": args.detector, "options": options, "alpha": args.alpha, "delta": args.delta, "tasks": {}}
    for jitter in args.jitter:
        t0 = time.perf_counter()
        per_split = [split_rates(s, jitter, args.detector, options, args.alpha, args.delta) for s in range(args.splits)]
        rules = list(per_split[0])
        print(f"\nseed task, jitter={jitter}, {args.splits} splits, detector={args.detector}, alpha={args.alpha}"
              f" ({time.perf_counter() - t0:.0f} s)")
        print(f"{'rule':<34} {'mean FAR':>9} {'sd':>7} {'P(FAR<=alpha)':>14} {'P(|FAR-alpha|<=0.03)':>21} {'max FAR':>8}")
        summary = {}
        for r in rules:
            far = np.array([p[r] for p in per_split])
            summary[r] = {"mean_far": float(far.mean()), "sd_far": float(far.std()),
                          "share_far_le_alpha": float(np.mean(far <= args.alpha + 1e-12)),
                          "share_far_within_3pts": float(np.mean(np.abs(far - args.alpha) <= BAND + 1e-12)),
                          "max_far": float(far.max()),
                          "per_split": far.tolist()}
            print(f"{r:<34} {far.mean():>9.4f} {far.std():>7.4f} {np.mean(far <= args.alpha + 1e-12):>14.2f} "
                  f"{np.mean(np.abs(far - args.alpha) <= BAND + 1e-12):>21.2f} {far.max():>8.3f}")
        result["tasks"][jitter] = summary
    save_results(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
