"""Which stains does the default detector miss on fine parts? Image AUROC of stains by depth and size.

Each stain of ``synth fine``'s parts mode is scored by the default model (100 good training images,
the whole pipeline) and compared with the good test images: its share of goods scoring below it is
its AUROC contribution. Depth is the stain's darkening at its centre, measured against the same
image without the stain (``fine_example`` returns both); size is the radius of its mask.

    .venv/bin/python bench/stain_depth.py [--seeds 2 3 4 5 6 7] [--template]

Without ``--template`` the model leaves the golden template out (``template=False``), as in
``bench/results/stain_depth.*``, which were measured before it existed; ``--template`` uses the
default (on for these parts).

Prints a table; writes bench/results/stain_depth.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _runner import save_results, seed_arg, train  # noqa: E402
from kizu.detectors import DEFAULT_DETECTOR  # noqa: E402
from kizu.synth.fine import fine_example, make_fine  # noqa: E402

DEPTH_BINS = (0.10, 0.13, 0.16, 0.20, 0.26)
RADIUS_BINS = (0.0, 6.0, 8.0, 20.0)


def stain_rows(seed: int, template: bool = False) -> list[dict]:
    """One row per test stain: depth at its centre, mask radius (px), share of goods scoring below."""
    d = make_fine(100, 100, 25, size=64, seed=seed, mode="parts")
    model = train(d.train, DEFAULT_DETECTOR, {}, seed=seed, template=None if template else False)
    types = np.asarray(d.test_types)
    scores = np.array([v.score for v in model.inspect(d.test)])
    good = scores[types == "good"]
    rows = []
    for j, i in enumerate(np.flatnonzero(types == "stain")):
        clean, img, mask = fine_example("stain", index=j, split="test", size=64, seed=seed, mode="parts")
        if not np.array_equal(img, d.test[i]):
            raise RuntimeError(f"seed {seed}: stain {j} is not test image {i}; make_fine's order changed")
        depth = float((1.0 - img / np.maximum(clean, 1e-3))[mask].max())
        rows.append({"seed": seed, "depth": depth, "radius_px": float(np.sqrt(mask.sum() / np.pi)),
                     "goods_below": float((good < scores[i]).mean())})
    return rows


def binned(rows: list[dict], key: str, edges) -> list[dict]:
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = [r["goods_below"] for r in rows if lo <= r[key] < hi]
        out.append({key: [lo, hi], "n": len(sel), "auroc": float(np.mean(sel)) if sel else None})
    return out



def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=seed_arg, nargs="+", default=[2, 3, 4, 5, 6, 7])
    ap.add_argument("--template", action="store_true", help="with the golden template (the default model)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "stain_depth.json")
    args = ap.parse_args(argv)
    rows = [r for seed in args.seeds for r in stain_rows(seed, args.template)]
    by_depth, by_radius = binned(rows, "depth", DEPTH_BINS), binned(rows, "radius_px", RADIUS_BINS)
    print(f"fine parts, default detector{' with' if args.template else ' without'} the golden template, "
          f"seeds {args.seeds}: {len(rows)} stains")
    for b in by_depth:
        print(f"depth  {b['depth'][0]:.2f}-{b['depth'][1]:.2f}   n {b['n']:>3}   AUROC {b['auroc']:.3f}")
    for b in by_radius:
        print(f"radius {b['radius_px'][0]:>4.0f}-{b['radius_px'][1]:<4.0f} px n {b['n']:>3}   AUROC {b['auroc']:.3f}")
    print(f"all stains: AUROC {np.mean([r['goods_below'] for r in rows]):.3f}")
    save_results(args.out, {"detector": DEFAULT_DETECTOR, "template": args.template, "seeds": args.seeds, "by_depth": by_depth,
                            "by_radius": by_radius, "stains": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
