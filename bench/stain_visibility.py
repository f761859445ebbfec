"""How visible are the painted stains at all? A matched filter, no learning beyond two numbers.

A stain is a soft blob 10-25 % darker at its centre, "radius" 4-10 px. The filter blurs each image
with a Gaussian of the stain's scale (sigma 2, 3, 4 and 6 px), divides by the image's mean (so a
global gain does not count), standardises by the mean and spread of the same quantity over the
training images, and scores an image by its darkest standardised point over all scales (8 px
border left out: the painted stains lie wholly inside the frame). It knows the stains' shape and
sign, which no detector is told. On a stationary surface (the weave, the sand) it is a fair
yardstick of how far stains stand out from the surface's own variation: where it is near 0.5, the
surface itself makes stain-like blobs. On structured images (a part on its background, brick
mortar) blurring mixes the stain with the structure, and the detectors do better than it.

    .venv/bin/python bench/stain_visibility.py [--seeds 0 1 2]

Prints a table; writes bench/results/stain_visibility.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from kizu.benchmark import save_results, seed_arg  # noqa: E402

from kizu.synth.fine import make_fine  # noqa: E402
from kizu.synth.photo import PHOTOS, make_photo_textures  # noqa: E402

SIGMAS = (2.0, 3.0, 4.0, 6.0)
BORDER = 8
TASKS = {
    "fine-parts": lambda s: make_fine(100, 100, 25, size=64, seed=s, mode="parts"),
    "texture-regular": lambda s: make_fine(100, 100, 25, size=64, seed=s, mode="texture", texture="regular"),
    "texture-stochastic": lambda s: make_fine(100, 100, 25, size=64, seed=s, mode="texture", texture="stochastic"),
    **{f"photo-{p}": (lambda s, p=p: make_photo_textures(p, 100, 50, 25, seed=s)) for p in PHOTOS},
}


def relative_blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """``(N, H, W)`` → ``(N, H - 2·BORDER, W - 2·BORDER)``: Gaussian blur ÷ each image's mean."""
    out = np.stack([ndimage.gaussian_filter(im, sigma, mode="reflect") / max(float(im.mean()), 1e-6) for im in images])
    return out[:, BORDER:-BORDER, BORDER:-BORDER]


def darkness_scores(train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """``(M,)`` the darkest standardised blurred point of each test image over all ``SIGMAS``."""
    per_sigma = []
    for sigma in SIGMAS:
        ref = relative_blur(train, sigma)
        z = (ref.mean() - relative_blur(test, sigma)) / ref.std()
        per_sigma.append(z.reshape(len(test), -1).max(axis=1))
    return np.max(per_sigma, axis=0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=seed_arg, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "stain_visibility.json")
    args = ap.parse_args(argv)
    rows = []
    print(f"{'task':<20} " + " ".join(f"{'seed ' + str(s):>7}" for s in args.seeds) + f" {'mean':>7}")
    for name, make in TASKS.items():
        aurocs = []
        for seed in args.seeds:
            d = make(seed)
            types = np.asarray(d.test_types)
            keep = (types == "good") | (types == "stain")
            scores = darkness_scores(d.train, d.test[keep])
            aurocs.append(float(roc_auc_score(types[keep] == "stain", scores)))
        rows.append({"task": name, "seeds": args.seeds, "stain_auroc": aurocs})
        print(f"{name:<20} " + " ".join(f"{a:>7.3f}" for a in aurocs) + f" {np.mean(aurocs):>7.3f}")
    save_results(args.out, {"filter_sigmas_px": SIGMAS, "border_px": BORDER, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
