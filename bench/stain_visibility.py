"""How visible are the painted stains (and dark spots) at all? Fixed filters, no learning beyond
the surface's own statistics.

A stain is a soft blob 10-25 % darker at its centre, "radius" 4-10 px. The filter blurs each image
with a Gaussian of the stain's scale (sigma 2, 3, 4 and 6 px), divides by the image's mean (so a
global gain does not count), standardises by the mean and spread of the same quantity over the
training images, and scores an image by its darkest standardised point over all scales (8 px
border left out: the painted stains lie wholly inside the frame). It knows the stains' shape and
sign, which no detector is told. On a stationary surface (the weave, the sand) it is a fair
yardstick of how far stains stand out from the surface's own variation: where it is near 0.5, the
surface itself makes stain-like blobs. On structured images (a part on its background, brick
mortar) blurring mixes the stain with the structure, and the detectors do better than it.

A second filter, *whitened*, is ``sᵀC⁻¹(window - mean) / √(sᵀC⁻¹s)``: the best linear detector
of a stain ``s`` of known shape at a known place on a surface with Gaussian variation of covariance
``C`` (that of the surface's 25×25 windows, estimated from every other training image at all
positions). Not knowing the place, each image is scored by its largest response over positions and
stain radii (4-10 px), each radius standardised by its responses on the training images the
covariance did not use. It searches window centres at least 12 px from the edges (on 32-px photo
tiles only the central 8×8), while stains are painted wholly inside the frame; counting only the
stains centred where it searches changes little on the sand (0.61 / 0.40 / 0.59 on seeds 0-2) and
lifts the weave to 0.996-1.0. Where the surface's own variation lies at the stains' scales (the
sand), whitening cannot separate them either: this column is an estimate of what any detector can
reach from the image alone when stains can be anywhere. (One caveat: ``synth fine``'s sand crops
are all cut from one large texture per data set, so a method that memorised that texture could in
principle do better; a real surface is a fresh draw every time.)

Dark spots (radius 1-3 px, 0.25-0.5 darker) get a third filter, *darkest pixel*: each pixel's
darkness relative to the mean of the 15 px around it, standardised over the training images; an
image's score is its darkest pixel (3 px border left out). On a surface with dark pits of its own
it shows how often a good image has a pixel as dark as a painted spot.

    .venv/bin/python bench/stain_visibility.py [--seeds 0 1 2]

Prints a table; writes bench/results/stain_visibility.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.signal import correlate
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _runner import save_results, seed_arg  # noqa: E402
from kizu.synth.fine import make_fine  # noqa: E402
from kizu.synth.photo import PHOTOS, make_photo_textures  # noqa: E402

SIGMAS = (2.0, 3.0, 4.0, 6.0)
BORDER = 8
#: the whitened filter's window (px) and the stain radii it tries (px, as painted: 4-10)
WINDOW = 25
RADII = (4.0, 5.5, 7.0, 8.5, 10.0)
#: the darkest-pixel filter's surround (px) and the border it leaves out (px)
SPOT_SURROUND = 15
SPOT_BORDER = 3
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


def window_moments(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(WINDOW²,)`` and covariance ``(WINDOW², WINDOW²)`` of every ``WINDOW``-px window of
    ``(N, H, W)`` images, accumulated image by image (no copy of all windows at once)."""
    d = WINDOW * WINDOW
    total, outer, count = np.zeros(d), np.zeros((d, d)), 0
    for im in images:
        win = np.lib.stride_tricks.sliding_window_view(im, (WINDOW, WINDOW)).reshape(-1, d).astype(np.float64)
        total += win.sum(axis=0)
        outer += win.T @ win
        count += len(win)
    mean = total / count
    return mean, (outer - count * np.outer(mean, mean)) / (count - 1)


def stain_profile(radius: float) -> np.ndarray:
    """``(WINDOW²,)`` the darkening of a stain of ``radius`` px centred in the window (peak 1)."""
    yy, xx = np.mgrid[0:WINDOW, 0:WINDOW] - WINDOW // 2
    sigma = radius / np.sqrt(2 * np.log(3.0))  # as kizu.synth.fine paints it: peak/3 at the radius
    return -np.exp(-(yy ** 2 + xx ** 2) / (2 * sigma * sigma)).ravel()


def whitened_scores(train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """``(M,)`` the largest standardised whitened-matched-filter response of each test image over
    positions and ``RADII``; the surface's window covariance comes from every other image of
    ``train``, the standardisation from the rest."""
    mean, cov = window_moments(train[::2])
    cov = cov + 1e-8 * np.eye(WINDOW * WINDOW)
    per_radius = []
    for radius in RADII:
        s = stain_profile(radius)
        w = np.linalg.solve(cov, s)
        kernel, offset, scale = w.reshape(WINDOW, WINDOW), float(w @ mean), float(np.sqrt(s @ w))

        def response(images):
            return np.stack([correlate(im, kernel, mode="valid") for im in images]) - offset

        ref = response(train[1::2]) / scale
        z = (response(test) / scale - ref.mean()) / ref.std()
        per_radius.append(z.reshape(len(test), -1).max(axis=1))
    return np.max(per_radius, axis=0)


def darkest_pixel_scores(train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """``(M,)`` each test image's darkest pixel relative to its ``SPOT_SURROUND`` px surround,
    standardised by the same quantity over the training images' pixels."""
    def darkness(images):
        images = images.astype(np.float64)
        surround = ndimage.uniform_filter(images, (1, SPOT_SURROUND, SPOT_SURROUND), mode="reflect")
        b = SPOT_BORDER
        return (1.0 - images / np.maximum(surround, 1e-6))[:, b:-b, b:-b]

    ref = darkness(train)
    return ((darkness(test) - ref.mean()) / ref.std()).reshape(len(test), -1).max(axis=1)


#: (defect type, filter name, scores(train, test)) rows of the table
FILTERS = (("stain", "blurred", darkness_scores), ("stain", "whitened", whitened_scores),
           ("dark_spot", "darkest px", darkest_pixel_scores))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=seed_arg, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "stain_visibility.json")
    args = ap.parse_args(argv)
    rows = []
    seeds = " ".join(f"{'seed ' + str(s):>7}" for s in args.seeds)
    print(f"{'task':<20} {'defect':<10} {'filter':<10} {seeds} {'mean':>7}")
    for name, make in TASKS.items():
        aurocs = {(defect, kind): [] for defect, kind, _ in FILTERS}
        for seed in args.seeds:
            d = make(seed)
            types = np.asarray(d.test_types)
            train = d.train.reshape(len(d.train), *d.train.shape[-2:])
            for defect, kind, scores_of in FILTERS:
                keep = (types == "good") | (types == defect)
                test = d.test[keep].reshape(int(keep.sum()), *train.shape[1:])
                aurocs[defect, kind].append(float(roc_auc_score(types[keep] == defect, scores_of(train, test))))
        for (defect, kind), values in aurocs.items():
            rows.append({"task": name, "defect": defect, "filter": kind, "seeds": args.seeds, "auroc": values})
            print(f"{name:<20} {defect:<10} {kind:<10} " + " ".join(f"{a:>7.3f}" for a in values)
                  + f" {np.mean(values):>7.3f}")
    save_results(args.out, {"filter_sigmas_px": SIGMAS, "border_px": BORDER, "whitened_window_px": WINDOW,
                            "whitened_radii_px": RADII, "spot_surround_px": SPOT_SURROUND,
                            "spot_border_px": SPOT_BORDER, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
