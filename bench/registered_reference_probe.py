"""Probe of a registered reference image for faint stains on parts: the variants behind kizu's golden template.

The default detector misses faint, wide stains on ``synth fine``'s parts (see
``bench/stain_depth.py``). This probe asks whether a model of the part's own brightness finds them.
It works like this:
- register each image to the mean training image (phase correlation, sub-pixel shift);
- blur it (Gaussian, ``--sigma`` px) and divide by the blurred mean image times the image's own
  brightness factor (``--gain``: ratio of means over the part or the frame, or least squares);
- scale that residual by each pixel's spread over the training images;
- score an image by its largest such departure inside a mask: the darkest, or the largest either
  way; masks: the part (the mean image above a fixed level: this data set's own knowledge), the
  interiors of both Otsu classes of the mean image, or the whole frame; each also after taking out
  each image's own smooth (quadratic) brightness field.

Each variant is then summed with the default model's score, each as a z-score: the default's
against its own cross-calibration scores, the probe's against the training images. The training
images are in-sample for the probe: they built its template, so their scores are a little low.

It only makes sense for aligned images (one part, small shifts). The built version,
``kizu.template`` (on by default where held-out good images are explained to R² >= 0.99), uses
the least-squares factor, the absolute residual, the whole frame and both signs, and z-scores its
score against good images the template did not see.

    .venv/bin/python bench/registered_reference_probe.py [--seeds 0 1 2 3 4 5 6 7] [--sigma 2] [--gain part]

Prints image AUROC per defect type for the default and each variant's sum (means over the seeds
also for the probe alone); writes bench/results/registered_reference_probe.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _runner import save_results, seed_arg, train  # noqa: E402
from kizu.detectors import DEFAULT_DETECTOR  # noqa: E402
from kizu.scoring.template import register_images as register  # noqa: E402
from kizu.synth import make_shapes  # noqa: E402
from kizu.synth.fine import make_fine  # noqa: E402

#: the data sets the probe runs on (100 good training images each)
TASKS = {
    "fine-parts": lambda seed: make_fine(100, 100, 25, size=64, seed=seed, mode="parts"),
    "shapes-seed": lambda seed: make_shapes(100, 500, 500, seed=seed, jitter="seed"),
    "shapes-intended": lambda seed: make_shapes(100, 500, 500, seed=seed, jitter="intended"),
}

#: the mean image above this level is the part (parts are ~0.7 on a ~0.16 background)
PART_LEVEL = 0.45


def standardised_residuals(train: np.ndarray, test: np.ndarray, sigma: float, shading: bool, gain: str = "part",
                           residual: str = "relative") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The registered mean image ``(H, W)`` and each image's blurred relative departure from it in
    units of the good images' per-pixel spread, ``(N_train, H, W)`` (in-sample) and ``(N_test, H, W)``.
    ``shading``: first take out each image's own smooth (quadratic) brightness field. ``gain``: how
    each image's brightness factor against the reference is found: ``part`` (ratio of means over the
    part, see ``masks``), ``frame`` (ratio of means over the frame), ``ls`` (least squares over the
    frame, image ≈ gain × reference: weighs pixels by the reference's brightness). ``residual``:
    ``relative`` (image / (gain × reference) − 1) or ``absolute`` (image − gain × reference; the
    only one that works on a black background)."""
    ref = train.mean(axis=0)
    for _ in range(2):  # register to the mean, then to the mean of the registered images
        reg_train = register(train, ref)
        ref = reg_train.mean(axis=0)
    reg_test = register(test, ref)
    part = ref > PART_LEVEL
    blur_train = np.stack([ndimage.gaussian_filter(a, sigma) for a in reg_train])
    blur_ref = blur_train.mean(axis=0)

    def relative(blurred: np.ndarray) -> np.ndarray:
        if gain == "part":
            g = blurred[:, part].mean(axis=1) / blur_ref[part].mean()
        elif gain == "frame":
            g = blurred.mean(axis=(1, 2)) / blur_ref.mean()
        else:
            g = (blurred * blur_ref).sum(axis=(1, 2)) / (blur_ref * blur_ref).sum()
        predicted = blur_ref * g[:, None, None]
        r = blurred / predicted - 1.0 if residual == "relative" else blurred - predicted
        if shading:
            h, w = r.shape[-2:]
            yy, xx = np.mgrid[0:h, 0:w] / max(h, w) - 0.5
            basis = np.stack([np.ones(h * w), yy.ravel(), xx.ravel(), (yy * yy).ravel(), (xx * xx).ravel(),
                              (xx * yy).ravel()], axis=1)
            coef = np.linalg.lstsq(basis, r.reshape(len(r), -1).T, rcond=None)[0]
            r = r - (basis @ coef).T.reshape(r.shape)
        return r

    rel_train = relative(blur_train)
    spread = rel_train.std(axis=0) + (0.005 if residual == "relative" else 0.01 * blur_ref.mean())
    return ref, rel_train / spread, relative(np.stack([ndimage.gaussian_filter(a, sigma) for a in reg_test])) / spread


def masks(ref: np.ndarray) -> dict[str, np.ndarray]:
    """Where departures are scored: ``part`` (the mean image above ``PART_LEVEL``: the bright part,
    this synthetic set's own knowledge), ``otsu-both`` (the interiors of both Otsu classes of the
    mean image: needs no knowledge of which side is the part), ``frame`` (everywhere)."""
    hi = ref > threshold_otsu(ref)
    return {"part": ndimage.binary_erosion(ref > PART_LEVEL, iterations=2),
            "otsu-both": ndimage.binary_erosion(hi, iterations=2) | ndimage.binary_erosion(~hi, iterations=2),
            "frame": np.ones_like(hi)}


def darkness_scores(z_train: np.ndarray, z_test: np.ndarray, mask: np.ndarray, sides: str
                    ) -> tuple[np.ndarray, np.ndarray]:
    """``(N_train,), (N_test,)``: each image's largest standardised departure inside ``mask``: the
    darkest (``sides="dark"``) or the largest either way (``"both"``)."""
    f = np.negative if sides == "dark" else np.abs
    return f(z_train)[:, mask].max(axis=1), f(z_test)[:, mask].max(axis=1)


def per_type_auroc(scores: np.ndarray, types: np.ndarray) -> dict[str, float]:
    good = types == "good"
    out = {"all": float(roc_auc_score(~good, scores))}
    for kind in sorted(set(types) - {"good"}):
        sel = good | (types == kind)
        out[kind] = float(roc_auc_score(types[sel] == kind, scores[sel]))
    return out



def _positive(text: str) -> float:
    """argparse type: a float > 0."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, not {value}")
    return value


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=seed_arg, nargs="+", default=[0, 1, 2, 3, 4, 5, 6, 7])
    ap.add_argument("--sigma", type=_positive, default=2.0, help="blur of the residual, px")
    ap.add_argument("--gain", choices=["part", "frame", "ls"], default="part",
                    help="each image's brightness factor: over the part, the frame, or least squares")
    ap.add_argument("--residual", choices=["relative", "absolute"], default="relative")
    ap.add_argument("--task", choices=list(TASKS), default="fine-parts")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "registered_reference_probe.json")
    args = ap.parse_args(argv)
    print(f"{args.task}, 100 good training images, probe sigma {args.sigma} px, gain {args.gain}, "
          f"{args.residual} residual: image AUROC")
    rows = []
    for seed in args.seeds:
        d = TASKS[args.task](seed)
        types = np.asarray(d.test_types)
        kinds = ["all", *sorted(set(types) - {"good"})]
        if seed == args.seeds[0]:
            print(f"{'seed':>4} {'scores (mask/sides[/shading])':<28} " + " ".join(f"{k:>9}" for k in kinds))
        model = train(d.train, DEFAULT_DETECTOR, {}, seed=seed, template=False)  # the probe is its own template
        default = np.array([v.score for v in model.inspect(d.test)])
        cal = np.asarray(model.calibration.scores)
        for shading in (False, True):
            ref, z_train, z_test = standardised_residuals(d.train.astype(np.float64), d.test.astype(np.float64),
                                                          args.sigma, shading, args.gain, args.residual)
            for mask_name, mask in masks(ref).items():
                for sides in ("dark", "both"):
                    variant = f"{mask_name}/{sides}" + ("/shading" if shading else "")
                    probe_train, probe = darkness_scores(z_train, z_test, mask, sides)
                    combined = (default - cal.mean()) / cal.std() + (probe - probe_train.mean()) / probe_train.std()
                    for name, s in (("probe", probe), ("sum", combined)):
                        rows.append({"seed": seed, "variant": variant, "scores": name,
                                     "auroc": per_type_auroc(s, types)})
        auc = per_type_auroc(default, types)
        rows.append({"seed": seed, "variant": "-", "scores": "default", "auroc": auc})
        print(f"{seed:>4} {'default':<28} " + " ".join(f"{auc[k]:>9.4f}" for k in kinds), flush=True)
        for r in rows:
            if r["seed"] == seed and r["scores"] == "sum":
                print(f"{seed:>4} {'sum ' + r['variant']:<28} " + " ".join(f"{r['auroc'][k]:>9.4f}" for k in kinds),
                      flush=True)
    print("\nmean over seeds")
    for variant, name in [("-", "default")] + [(v, n) for v in dict.fromkeys(r["variant"] for r in rows if r["variant"] != "-")
                                              for n in ("probe", "sum")]:
        sel = [r for r in rows if r["variant"] == variant and r["scores"] == name]
        mean = {k: float(np.mean([r["auroc"][k] for r in sel])) for k in kinds}
        print(f"{'mean':>4} {(name + ' ' + variant) if variant != '-' else name:<28} "
              + " ".join(f"{mean[k]:>9.4f}" for k in kinds))
    save_results(args.out, {"task": args.task, "detector": DEFAULT_DETECTOR, "sigma_px": args.sigma, "gain": args.gain,
                            "residual": args.residual, "part_level": PART_LEVEL,
                            "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
