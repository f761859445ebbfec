"""False-alarm rate of the calibrated threshold on many unseen good images of `synth fine`.

A single benchmark run has 50-100 good test images, so its false-alarm rate scatters by several
points around the truth. Here each seed trains (100 good images, the default calibration for the
detector — leave-own-out for patch-knn — alpha = 0.05) and then inspects ``--n-good`` unseen good images.

    .venv/bin/python bench/false_alarms.py [--tasks fine-parts fine-texture] [--seeds 0 1 2 3] [--n-good 600]
        [--training-draws K]

``--training-draws K`` also trains on K other draws of 100 good images of each seed (the good
images after the ``--n-good`` test images) and tests them on the same unseen images: a rate far
from alpha on every draw is the model's; on one draw only, that training sample's.

Prints a table and writes bench/results/false_alarms.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _runner import save_results, seed_arg, train  # noqa: E402
from kizu.cli.common import parse_options  # noqa: E402
from kizu.detectors import DEFAULT_DETECTOR  # noqa: E402
from kizu.synth.fine import make_fine  # noqa: E402

MODES = {"fine-parts": {"mode": "parts"}, "fine-texture": {"mode": "texture"},
         "fine-texture-regular": {"mode": "texture", "texture": "regular"},
         "fine-texture-stochastic": {"mode": "texture", "texture": "stochastic"}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=["fine-parts", "fine-texture"], choices=sorted(MODES))
    ap.add_argument("--seeds", type=seed_arg, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--n-good", type=_positive, default=600)
    ap.add_argument("--training-draws", type=_non_negative, default=0)
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--detector", default=DEFAULT_DETECTOR)
    ap.add_argument("-O", "--option", action="append", default=[])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "false_alarms.json")
    args = ap.parse_args(argv)
    options = parse_options(args.option)
    rows = []
    print(f"detector {args.detector} {options}, alpha {args.alpha}, {args.n_good} unseen good images per seed")
    print(f"{'task':<24} {'seed':>4} {'FAR':>7}  training draw")
    for task in args.tasks:
        rates = []
        for seed in args.seeds:
            d = make_fine(100, args.n_good + 100 * args.training_draws, 0, size=64, seed=seed, **MODES[task])
            test = d.test[:args.n_good]
            draws = [("training images", d.train)] + [
                (f"good images {a}-{a + 99}", d.test[a:a + 100])
                for a in range(args.n_good, args.n_good + 100 * args.training_draws, 100)]
            for draw, images in draws:
                model = train(images, args.detector, dict(options), seed=seed, alpha=args.alpha)
                far = float(np.mean([v.defective for v in model.inspect(test)]))
                if draw == draws[0][0]:
                    rates.append(far)
                rows.append({"task": task, "seed": seed, "n_good": args.n_good, "far": far, "training_draw": draw})
                print(f"{task:<24} {seed:>4} {far:>7.3f}  {draw}", flush=True)
        print(f"{task:<24} {'mean':>4} {np.mean(rates):>7.3f}  (training images)")
    save_results(args.out, {"detector": args.detector, "options": options, "alpha": args.alpha, "rows": rows})
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, not {value}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, not {value}")
    return value


if __name__ == "__main__":
    raise SystemExit(main())
