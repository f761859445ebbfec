"""Where does the golden template turn itself on? R² of held-out good images per built-in task.

``InspectionModel.train`` (``template=None``) adds the golden-template comparison
(``kizu.template``) when good images it did not fit are explained by the registered mean image to a
median R² >= ``MIN_EXPLAINED``. This prints that median for each task (5 folds of the 100 good
training images, as cross-calibration does) and whether the template would be on.

    .venv/bin/python bench/template_gate.py [--seeds 0 1 2]

Prints a table; writes bench/results/template_gate.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _runner import save_results, seed_arg  # noqa: E402
from kizu.calibration.strategies import cross_folds  # noqa: E402
from kizu.scoring.template import MIN_EXPLAINED, held_out_fit  # noqa: E402
from kizu.synth import make_shapes  # noqa: E402
from kizu.synth.fine import make_fine  # noqa: E402
from kizu.synth.photo import PHOTOS, make_photo_textures  # noqa: E402

TASKS = {
    "shapes-seed": lambda s: make_shapes(100, 1, 1, seed=s, jitter="seed").train,
    "shapes-intended": lambda s: make_shapes(100, 1, 1, seed=s, jitter="intended").train,
    "fine-parts": lambda s: make_fine(100, 1, 1, seed=s, mode="parts").train,
    "fine-parts-256": lambda s: make_fine(100, 1, 1, size=256, seed=s, mode="parts").train,
    "fine-texture": lambda s: make_fine(100, 1, 1, seed=s, mode="texture").train,
    **{f"photo-{p}": (lambda s, p=p: make_photo_textures(p, 100, 1, 1, seed=s).train) for p in PHOTOS},
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=seed_arg, nargs="+", default=[0, 1, 2])
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "template_gate.json")
    args = ap.parse_args(argv)
    rows = []
    print(f"median R² of held-out good images (on at >= {MIN_EXPLAINED})")
    print(f"{'task':<18} " + " ".join(f"{'seed ' + str(s):>8}" for s in args.seeds) + "  template")
    for task in args.tasks:
        values = []
        for seed in args.seeds:
            x = TASKS[task](seed)[:, None]
            _, r2 = held_out_fit(x, cross_folds(len(x), 5, seed))
            values.append(float(np.median(r2)))
            rows.append({"task": task, "seed": seed, "median_r2": values[-1], "on": values[-1] >= MIN_EXPLAINED})
        on = sum(v >= MIN_EXPLAINED for v in values)
        print(f"{task:<18} " + " ".join(f"{v:>8.4f}" for v in values) + f"  on for {on} of {len(values)}", flush=True)
    save_results(args.out, {"min_explained": MIN_EXPLAINED, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
