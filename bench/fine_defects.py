"""Fine defects: image AUROC per defect type, pixel AUROC and AUPRO of a detector on `synth fine`
(parts and textured mode) and on real-texture photo crops, 100 good training images.

    .venv/bin/python bench/fine_defects.py [--detector NAME] [-O key=value ...] [--seeds 0 1] [--overlays DIR]

Prints a table and writes bench/results/fine_defects.json. With --overlays, writes a few overlays
(good and defective, fixed colour scale) as PNGs and each task's row of them as TASK-overview.png;
the README's figure is `--tasks fine-parts --seeds 0 --overlays DIR` → fine-parts-overview.png.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _runner import save_results, seed_arg, train  # noqa: E402
from kizu.cli.common import parse_options  # noqa: E402
from kizu.detectors import DEFAULT_DETECTOR  # noqa: E402
from kizu.evaluation import plots  # noqa: E402
from kizu.evaluation.metrics import aupro, pixel_auroc  # noqa: E402
from kizu.synth.fine import make_fine  # noqa: E402
from kizu.synth.photo import PHOTOS, make_photo_textures  # noqa: E402

TASKS = {
    "fine-parts": lambda s: make_fine(100, 100, 25, size=64, seed=s, mode="parts"),
    "fine-texture": lambda s: make_fine(100, 100, 25, size=64, seed=s, mode="texture"),
    **{f"fine-texture-{k}": (lambda s, k=k: make_fine(100, 100, 25, size=64, seed=s, mode="texture", texture=k))
       for k in ("regular", "stochastic")},
    **{f"photo-{p}": (lambda s, p=p: make_photo_textures(p, 100, 50, 25, seed=s)) for p in PHOTOS},
}


def _side_by_side(paths: list[Path], out: Path) -> None:
    """The README's overview strip: the overlay PNGs in a row."""
    from PIL import Image

    images = [Image.open(p).convert("RGB") for p in paths]
    strip = Image.new("RGB", (sum(i.width for i in images), max(i.height for i in images)), "white")
    x = 0
    for im in images:
        strip.paste(im, (x, 0))
        x += im.width
    strip.save(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--detector", default=DEFAULT_DETECTOR)
    ap.add_argument("-O", "--option", action="append", default=[])
    ap.add_argument("--seeds", type=seed_arg, nargs="+", default=[0, 1])
    ap.add_argument("--tasks", nargs="+", default=[t for t in TASKS if not t.startswith("fine-texture-")],
                    help="default: all but the single-texture variants of fine-texture")
    ap.add_argument("--overlays", type=Path)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "fine_defects.json")
    args = ap.parse_args(argv)
    options = parse_options(args.option)
    rows = []
    print(f"detector {args.detector} {options}")
    print(f"{'task':<16} {'seed':>4} {'AUROC':>6} {'pixAUROC':>8} {'AUPRO':>6} {'FAR':>6} {'fit s':>6}  per-type AUROC")
    for task in args.tasks:
        for seed in args.seeds:
            d = TASKS[task](seed)
            t0 = time.perf_counter()
            model = train(d.train, args.detector, dict(options), seed=seed)
            fit_s = time.perf_counter() - t0
            vs = model.inspect(d.test)
            s = np.array([v.score for v in vs])
            flagged = np.array([v.defective for v in vs])
            maps = [v.anomaly_map for v in vs]
            types = np.array(d.test_types)
            good = types == "good"
            per = {t: float(roc_auc_score(np.r_[np.zeros(good.sum()), np.ones((types == t).sum())],
                                          np.r_[s[good], s[types == t]])) for t in sorted(set(types) - {"good"})}
            row = {"task": task, "seed": seed, "image_auroc": float(roc_auc_score(d.test_labels, s)),
                   "pixel_auroc": pixel_auroc(d.test_masks, maps), "aupro": aupro(d.test_masks, maps),
                   "far": float(flagged[good].mean()), "fit_seconds": fit_s, "per_type_auroc": per,
                   "template": model.summary.get("template"), "template_explained": model.summary.get("template_explained")}
            rows.append(row)
            print(f"{task:<16} {seed:>4} {row['image_auroc']:>6.3f} {row['pixel_auroc']:>8.3f} {row['aupro']:>6.3f} "
                  f"{row['far']:>6.3f} {fit_s:>6.1f}  " + " ".join(f"{k}={v:.3f}" for k, v in per.items())
                  + ("  (golden template)" if row["template"] else ""), flush=True)
            if args.overlays is not None and seed == args.seeds[0]:
                args.overlays.mkdir(parents=True, exist_ok=True)
                picks = [int(np.flatnonzero(good)[0])] + [int(np.flatnonzero(types == t)[0]) for t in per]
                for i in picks:
                    v = vs[i]
                    fig = plots.overlay_figure(d.test[i][None], v.anomaly_map, model.calibration.pixel_threshold,
                                               v.regions, f"{types[i]}: {'DEFECTIVE' if v.defective else 'good'}"
                                               f" (p={v.p_value:.2g})")
                    plots.save_figure(fig, args.overlays / f"{task}-{types[i]}.png", dpi=80)
                _side_by_side([args.overlays / f"{task}-{types[i]}.png" for i in picks],
                              args.overlays / f"{task}-overview.png")
    save_results(args.out, {"detector": args.detector, "options": options, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
