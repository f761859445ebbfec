"""False-alarm rate of the conformal threshold over many random splits of good images, per
calibration scheme: ``cross`` (fold models score the images they did not fit) and ``loo`` (the final
model scores each image without its own memory rows; the default for patch-knn), plus the bias
behind it: median calibration score over median score of unseen good images.

    .venv/bin/python bench/calibration_splits.py [--tasks elpv-mono fine-parts ...]
        [--splits 10] [--n-test 150] [--calibrations cross loo] [--alpha 0.05]

A split: 100 good training images and ``--n-test`` unseen good images, exchangeable (elpv: a seeded
random split of the type's good cells, ``bench/real_data.py``; synthetic tasks: a fresh draw per
split). Prints one line per split and scheme and a summary (mean FAR, its standard deviation over
splits and standard error); writes bench/results/calibration_splits.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from _runner import save_results, train
from kizu.cli.common import parse_options

TASKS = ("elpv-mono", "elpv-poly", "fine-parts", "fine-texture", "photo-brick", "photo-gravel", "photo-grass")
N_TRAIN = 100


def good_split(task: str, split: int, n_test: int) -> tuple[np.ndarray, np.ndarray]:
    """(``N_TRAIN`` training images, ``n_test`` unseen good images) of one split, float in [0, 1]."""
    if task.startswith("elpv-"):
        import real_data

        kind = task.split("-", 1)[1]
        images, probs, types = real_data.elpv()
        good = np.flatnonzero((types == kind) & (probs == 0.0))
        perm = np.random.default_rng([10_000 + split, real_data.TYPES.index(kind)]).permutation(good)
        pick = lambda idx: images[idx].astype(np.float32) / 255.0  # noqa: E731
        return pick(perm[:N_TRAIN]), pick(perm[N_TRAIN:N_TRAIN + n_test])
    if task.startswith("fine-"):
        from kizu.synth import make_fine

        d = make_fine(N_TRAIN, n_test, 0, size=64, seed=10_000 + split, mode=task.split("-", 1)[1])
    else:
        from kizu.synth.photo import make_photo_textures

        d = make_photo_textures(task.split("-", 1)[1], N_TRAIN, min(n_test, 150), 0, seed=10_000 + split)
    return np.asarray(d.train), np.asarray(d.test)


def split_row(task: str, split: int, calibration: str, train_images, test_images, options: dict, alpha: float):
    t0 = time.perf_counter()
    model = train(train_images, None, options, seed=split, alpha=alpha, calibration=calibration)
    fit_s = time.perf_counter() - t0
    scores = model.predict(test_images).scores
    return {"task": task, "split": split, "calibration": model.summary["calibration"],
            "far": float(model.calibration.is_defective(scores).mean()), "n_test": len(test_images),
            "cal_median": float(np.median(model.calibration.scores)), "new_median": float(np.median(scores)),
            "threshold": model.calibration.threshold, "fit_seconds": fit_s}


def summarise(rows: list[dict], tasks, calibrations) -> list[dict]:
    out = []
    for task in tasks:
        for cal in calibrations:
            rs = [r for r in rows if r["task"] == task and r["calibration"] == cal]
            if not rs:
                continue
            far = np.array([r["far"] for r in rs])
            sd = float(far.std(ddof=1)) if len(far) > 1 else 0.0
            out.append({"task": task, "calibration": cal, "splits": len(rs), "mean_far": float(far.mean()),
                        "sd_far": sd, "se_far": sd / np.sqrt(len(far)), "min_far": float(far.min()),
                        "max_far": float(far.max()),
                        "cal_over_new_median": float(np.median([r["cal_median"] / r["new_median"] for r in rs]))})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=["fine-parts", "photo-brick", "elpv-mono", "elpv-poly"],
                    choices=TASKS)
    ap.add_argument("--splits", type=int, default=10)
    ap.add_argument("--n-test", type=int, default=150)
    ap.add_argument("--calibrations", nargs="+", default=["cross", "loo"])
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("-O", "--option", action="append", default=[], help="detector option key=value")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "calibration_splits.json")
    args = ap.parse_args(argv)
    options = parse_options(args.option)
    print(f"alpha {args.alpha}, {args.splits} splits, {args.n_test} unseen good images each, options {options}")
    print(f"{'task':<12} {'split':>5} {'scheme':<6} {'FAR':>6} {'cal med':>8} {'new med':>8} {'fit s':>6}")
    rows = []
    for task in args.tasks:
        for split in range(args.splits):
            train_images, test_images = good_split(task, split, args.n_test)
            for cal in args.calibrations:
                r = split_row(task, split, cal, train_images, test_images, options, args.alpha)
                rows.append(r)
                print(f"{task:<12} {split:>5} {cal:<6} {r['far']:>6.3f} {r['cal_median']:>8.4f} "
                      f"{r['new_median']:>8.4f} {r['fit_seconds']:>6.1f}", flush=True)
    summary = summarise(rows, args.tasks, args.calibrations)
    print(f"\n{'task':<12} {'scheme':<6} {'splits':>6} {'mean FAR':>8} {'sd':>6} {'se':>6} {'max':>6} {'cal/new':>8}")
    for s in summary:
        print(f"{s['task']:<12} {s['calibration']:<6} {s['splits']:>6} {s['mean_far']:>8.4f} {s['sd_far']:>6.3f} "
              f"{s['se_far']:>6.3f} {s['max_far']:>6.3f} {s['cal_over_new_median']:>8.4f}")
    save_results(args.out, {"alpha": args.alpha, "options": options, "rows": rows, "summary": summary})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
