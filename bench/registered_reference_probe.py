"""Probe of an idea not built into kizu: a registered reference image for faint stains on parts.

The default detector misses faint, wide stains on ``synth fine``'s parts (see
``bench/stain_depth.py``). This probe asks whether a model of the part's own brightness finds them.
It works like this:
- register each image to the mean training image (phase correlation, sub-pixel shift);
- blur it (Gaussian, ``--sigma`` px) and divide by the blurred mean image times the image's own gain;
- scale that residual by each pixel's spread over the training images;
- score an image by its darkest such point on the part's interior.

The probe is then summed with the default model's score, each as a z-score: the default's against
its own cross-calibration scores, the probe's against the training images. The training images are
in-sample for the probe: they built its template, so their scores are a little low.

It only makes sense for aligned images (one part, small shifts): the part mask is the mean image
above a fixed level. A built version would need a label-free test of alignment, a two-sided
residual, save/load and cross-fitting, and a rerun of every benchmark (shapes, textures,
false-alarm rates).

    .venv/bin/python bench/registered_reference_probe.py [--seeds 0 1 2 3 4 5 6 7] [--sigma 2]

Prints image AUROC per defect type for the default, the probe alone and their sum; writes
bench/results/registered_reference_probe.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage.registration import phase_cross_correlation
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from kizu.benchmark import save_results, seed_arg  # noqa: E402

from kizu import InspectionModel  # noqa: E402
from kizu.detectors import DEFAULT_DETECTOR, default_options  # noqa: E402
from kizu.synth.fine import defect_types, make_fine  # noqa: E402

#: the mean image above this level is the part (parts are ~0.7 on a ~0.16 background)
PART_LEVEL = 0.45


def register(images: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``(N, H, W)`` shifted (sub-pixel, bilinear) onto ``reference`` by phase correlation."""
    out = []
    for im in images:
        shift, _, _ = phase_cross_correlation(reference, im, upsample_factor=10, normalization=None)
        out.append(ndimage.shift(im, shift, order=1, mode="nearest"))
    return np.stack(out)


def darkness_scores(train: np.ndarray, test: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """``(N_train,), (N_test,)``: each image's darkest standardised point on the part's interior."""
    ref = train.mean(axis=0)
    for _ in range(2):  # register to the mean, then to the mean of the registered images
        reg_train = register(train, ref)
        ref = reg_train.mean(axis=0)
    reg_test = register(test, ref)
    part = ref > PART_LEVEL
    inner = ndimage.binary_erosion(part, iterations=2)
    blur_train = np.stack([ndimage.gaussian_filter(a, sigma) for a in reg_train])
    blur_ref = blur_train.mean(axis=0)

    def relative(blurred: np.ndarray) -> np.ndarray:
        gain = blurred[:, part].mean(axis=1) / blur_ref[part].mean()
        return blurred / (blur_ref * gain[:, None, None]) - 1.0

    rel_train = relative(blur_train)
    spread = rel_train.std(axis=0) + 0.005
    rel_test = relative(np.stack([ndimage.gaussian_filter(a, sigma) for a in reg_test]))
    return (-rel_train / spread)[:, inner].max(axis=1), (-rel_test / spread)[:, inner].max(axis=1)


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
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "registered_reference_probe.json")
    args = ap.parse_args(argv)
    kinds = ["all", *sorted(defect_types("parts"))]
    print(f"fine parts, 100 good training images, probe sigma {args.sigma} px: image AUROC")
    print(f"{'seed':>4} {'scores':<8} " + " ".join(f"{k:>9}" for k in kinds))
    rows = []
    for seed in args.seeds:
        d = make_fine(100, 100, 25, size=64, seed=seed, mode="parts")
        types = np.asarray(d.test_types)
        model = InspectionModel.train(d.train, detector=DEFAULT_DETECTOR,
                                      detector_options=default_options(DEFAULT_DETECTOR), seed=seed)
        default = np.array([v.score for v in model.inspect(d.test)])
        cal = np.asarray(model.calibration.scores)
        probe_train, probe = darkness_scores(d.train.astype(np.float64), d.test.astype(np.float64), args.sigma)
        combined = (default - cal.mean()) / cal.std() + (probe - probe_train.mean()) / probe_train.std()
        for name, s in (("default", default), ("probe", probe), ("sum", combined)):
            auc = per_type_auroc(s, types)
            rows.append({"seed": seed, "scores": name, "auroc": auc})
            print(f"{seed:>4} {name:<8} " + " ".join(f"{auc[k]:>9.3f}" for k in kinds), flush=True)
    for name in ("default", "probe", "sum"):
        mean = {k: float(np.mean([r["auroc"][k] for r in rows if r["scores"] == name])) for k in kinds}
        print(f"{'mean':>4} {name:<8} " + " ".join(f"{mean[k]:>9.3f}" for k in kinds))
    save_results(args.out, {"detector": DEFAULT_DETECTOR, "sigma_px": args.sigma, "part_level": PART_LEVEL,
                            "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
