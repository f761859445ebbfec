"""``mt`` — the Mahalanobis-Taguchi system: a unit space of good images, MD as the image score.

Features (``features=``)
    ``"stats"`` (default) pooled patch statistics on a pyramid of cells (``grid``; default: the
    whole image and its 2×2 quadrants): per cell and channel the mean and the standard deviation
    of the intensity, and a histogram of gradient orientations (``bins`` unsigned bins, weighted
    by the gradient magnitude) — 5 × (2C + 8) = 50 (grey) or 70 (RGB) numbers by default, which
    tolerate small shifts of the part. A finer grid (e.g. ``[1, 2, 4]``) localises more but has
    more features than a hundred images pin down.
    ``"pixels"`` the raw pixels (after area-downsampling to ``max_size`` on the longer side), for
    well-aligned parts.

Unit space (n good images, d features; works for n < d)
    Every feature is standardised with the good images' mean and standard deviation (ddof=1); a
    std below ``std_floor`` × the median std (e.g. a pixel that is black in every good image) is
    raised to that floor, so one changed constant pixel gives a large but finite distance. The
    default floor, 1 × the median, trusts no feature to be steadier than the typical one: with
    n ≈ d this regularises the many near-constant features and steadies the held-out calibration.
    R is the correlation matrix of the standardised features, shrunk towards I by Ledoit-Wolf
    (``shrinkage="ledoit-wolf"``; a number in [0, 1] fixes the intensity; ``"none"`` is the
    textbook MT). It is never formed: with the n × n Gram matrix, R = V diag(λ) Vᵀ + λ⊥ (I − V Vᵀ),
    where V spans the good images (at most n - 1 directions) — PCA with all components, each
    eigenvalue shrunk, plus an isotropic remainder. So

        MD(x) = zᵀ R⁻¹ z / d,          z = (x - mean) / std,

    the textbook MT scaling (MD/k with k = d variables): good *training* images average close to 1
    (exactly (n-1)/n with ``shrinkage="none"`` when n > d).

Held-out correction (``calibrate=True``)
    With n ≈ d, MD/d of *new* good images is not 1: the unit space is fitted to the training
    images (new ones come out farther), and Ledoit-Wolf shrinkage pulls every distance in (on
    the shapes set new good images average 0.70 uncorrected; with raw pixels 1.5 × too far).
    ``fit`` therefore estimates the held-out mean by ``cv_folds``-fold
    cross-validation (unit space from the other folds, MD of the held-out fold) and divides every
    MD by it: ``image_scores`` of new good images average about 1 (tested: 1 ± 0.15), and an MD of
    4 means "four times as far as a typical good image". The factor is ``scale`` in the state.

Map
    MD is a sum of per-feature contributions zⱼ (R⁻¹z)ⱼ (they add up exactly; a single one can be
    slightly negative). Each feature's contribution is spread evenly over the pixels it describes
    (its cell; its own pixel for ``"pixels"``), so the map's mean over the image equals the image
    score, up to the final bilinear resize to the input size.

Taguchi variable selection
    ``select_variables(good, defective)`` groups the features (``"stats"``: one group per pyramid
    level and kind — intensity / orientation; ``"pixels"``: ``n_groups`` spatial blocks), runs the
    two-level orthogonal array of :mod:`kizu.detectors.taguchi`, keeps the groups with a positive
    larger-is-better SN gain and refits with them. The selection is the ``selected_groups`` option
    (so ``cls(**config())`` rebuilds it); the gains are in ``history["sn_gain"]`` and the state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ._components.taguchi import ledoit_wolf_shrinkage, robust_std
from ._components.taguchi import select_variables as _taguchi_select
from .base import Detector, Options, ProgressFn, as_image_batch, option
from .registry import register

FEATURES = ("stats", "pixels")


# -- features --------------------------------------------------------------------------------
def _work_size(h: int, w: int, max_size: int) -> tuple[int, int]:
    f = max(1, math.ceil(max(h, w) / max_size))
    return math.ceil(h / f), math.ceil(w / f)


def _downsample(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if x.shape[-2:] == size:
        return x.astype(np.float64)
    t = F.adaptive_avg_pool2d(torch.from_numpy(np.ascontiguousarray(x)), size)
    return t.numpy().astype(np.float64)


def _windows(n: int, g: int) -> np.ndarray:
    """(g, n) 0/1 membership of adaptive-average-pooling windows (as torch defines them)."""
    m = np.zeros((g, n))
    for i in range(g):
        m[i, (i * n) // g : -(-((i + 1) * n) // g)] = 1.0
    return m


class _FeatureLayout:
    """Feature extraction for one image geometry, plus where each feature lives in the image."""

    def __init__(self, kind: str, channels: int, size: tuple[int, int], grid: list[int], bins: int):
        self.kind, self.channels, self.size, self.grid, self.bins = kind, channels, size, list(grid), bins
        h, w = size
        C = channels
        labels: list[str] = []  # group name of each feature, in order
        if kind == "pixels":
            self.dim = C * h * w
        else:
            dim = 0
            for g in self.grid:
                gg = min(g, h), min(g, w)
                n_int = 2 * C * gg[0] * gg[1]
                n_ori = bins * gg[0] * gg[1]
                labels += [f"grid{g}-intensity"] * n_int + [f"grid{g}-orientation"] * n_ori
                dim += n_int + n_ori
            self.dim = dim
        self.group_names = list(dict.fromkeys(labels))
        self.group_labels = np.array([self.group_names.index(s) for s in labels], dtype=np.int64)

    def _cells(self, g: int) -> tuple[int, int]:
        return min(g, self.size[0]), min(g, self.size[1])

    def extract(self, x: np.ndarray) -> np.ndarray:
        """(N, C, H, W) float32 → (N, d) float64."""
        a = _downsample(x, self.size)
        n = len(a)
        if self.kind == "pixels":
            return a.reshape(n, -1)
        grey = a.mean(axis=1)
        gy, gx = _sobel(grey)
        mag = np.hypot(gx, gy)
        pos = np.mod(np.arctan2(gy, gx), np.pi) / np.pi * self.bins
        lo = np.floor(pos).astype(np.int64)
        frac = pos - lo
        lo %= self.bins
        hi = (lo + 1) % self.bins
        hist = np.zeros((n, self.bins) + grey.shape[1:])
        ii = np.arange(n)[:, None, None]
        yy = np.arange(grey.shape[1])[None, :, None]
        xx = np.arange(grey.shape[2])[None, None, :]
        np.add.at(hist, (ii, lo, yy, xx), mag * (1 - frac))
        np.add.at(hist, (ii, hi, yy, xx), mag * frac)
        feats = []
        for g in self.grid:
            gh, gw = self._cells(g)
            mean = _cell_pool_hw(a, gh, gw)
            sq = _cell_pool_hw(a * a, gh, gw)
            std = np.sqrt(np.maximum(sq - mean * mean, 0.0))
            ori = _cell_pool_hw(hist, gh, gw)
            feats += [mean.reshape(n, -1), std.reshape(n, -1), ori.reshape(n, -1)]
        return np.concatenate(feats, axis=1)

    def contributions_to_map(self, contrib: np.ndarray) -> np.ndarray:
        """(N, d) per-feature contributions → (N, h, w): each spread evenly over its pixels (the
        map sums to the contributions' sum)."""
        n = len(contrib)
        h, w = self.size
        if self.kind == "pixels":
            return contrib.reshape(n, self.channels, h, w).sum(axis=1)
        out = np.zeros((n, h, w))
        pos = 0
        for g in self.grid:
            gh, gw = self._cells(g)
            k = (2 * self.channels + self.bins) * gh * gw
            cells = contrib[:, pos : pos + k].reshape(n, 2 * self.channels + self.bins, gh, gw).sum(axis=1)
            pos += k
            r, c = _windows(h, gh), _windows(w, gw)
            area = r.sum(1)[:, None] * c.sum(1)[None, :]
            out += np.einsum("nij,ih,jw->nhw", cells / area, r, c)
        return out


def _sobel(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image Sobel derivatives (d/dy, d/dx) of (N, h, w), edges replicated, scaled by 1/8."""
    t = F.pad(torch.from_numpy(grey)[:, None], (1, 1, 1, 1), mode="replicate")
    k = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=t.dtype) / 8.0
    g = F.conv2d(t, torch.stack([k.T, k])[:, None])
    return g[:, 0].numpy(), g[:, 1].numpy()


def _cell_pool_hw(a: np.ndarray, gh: int, gw: int) -> np.ndarray:
    h, w = a.shape[-2:]
    r, c = _windows(h, gh), _windows(w, gw)
    area = r.sum(1)[:, None] * c.sum(1)[None, :]
    return np.einsum("nkhw,ih,jw->nkij", a, r, c) / area


def _scalar(a) -> float:
    """A stored scalar (saved as shape (1,); 0-d accepted too) as a Python float."""
    return float(np.asarray(a).reshape(-1)[0])


# -- the unit space ----------------------------------------------------------------------------
def fit_unit_space(
    X: np.ndarray, *, std_floor: float = 1.0, shrinkage: str | float = "ledoit-wolf"
) -> dict[str, np.ndarray]:
    """Unit space of the rows of ``X`` (n, d) as arrays: mean, std, basis V (d, r), eigenvalues
    lam (r,) of the shrunk correlation matrix along V, and ``perp`` (its eigenvalue elsewhere;
    inf = ignore the remainder, for ``shrinkage="none"``)."""
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    if n < 2:
        raise ValueError("the unit space needs at least 2 good images")
    mean = X.mean(axis=0)
    std = robust_std(X, std_floor)
    Z = (X - mean) / std
    G = Z @ Z.T
    ev, U = np.linalg.eigh(G)
    ev, U = ev[::-1], U[:, ::-1]
    keep = ev > max(ev[0], 1e-300) * 1e-10
    ev, U = ev[keep], U[:, keep]
    V = (Z.T @ U) / np.sqrt(ev)
    lam_R = ev / (n - 1)
    mu = float(np.trace(G)) / (n - 1) / d  # trace(R) / d
    if shrinkage == "none":
        s = 0.0
    elif shrinkage == "ledoit-wolf":
        s = ledoit_wolf_shrinkage(Z)
    else:
        s = float(shrinkage)
        if not 0.0 <= s <= 1.0:
            raise ValueError(f"shrinkage must be 'ledoit-wolf', 'none' or a number in [0, 1], not {shrinkage!r}")
    lam = (1 - s) * lam_R + s * mu
    perp = s * mu if s > 0 else np.inf
    return {"mean": mean, "std": std, "basis": V, "lam": lam, "perp": np.array([perp], dtype=np.float64)}


def unit_space_md(space: dict[str, np.ndarray], X: np.ndarray, *, contributions: bool = False):
    """MD/d of the rows of ``X`` against ``space``; with ``contributions`` also the (n, d) terms."""
    Z = (np.asarray(X, dtype=np.float64) - space["mean"]) / space["std"]
    V, lam, perp = space["basis"], space["lam"], _scalar(space["perp"])
    t = Z @ V
    rz = (t / lam) @ V.T
    if np.isfinite(perp):
        rz += (Z - t @ V.T) / perp
    d = Z.shape[1]
    terms = Z * rz
    md = terms.sum(axis=1) / d
    return (md, terms / d) if contributions else md


# -- the detector ------------------------------------------------------------------------------
@dataclass(frozen=True)
class MTOptions(Options):
    """Hyper-parameters of ``mt``."""

    features: str = option("stats", "'stats': pooled intensity and gradient statistics; 'pixels': raw pixels")
    grid: list[int] = option([1, 2], "stats: pyramid of cells (1 = the whole image, 2 = its quadrants, ...)")
    bins: int = option(8, "stats: gradient-orientation histogram bins")
    max_size: int = option(64, "images are area-averaged to at most this many px a side first")
    std_floor: float = option(1.0, "a feature's spread is at least this share of the median spread")
    shrinkage: str | float = option("ledoit-wolf", "correlation shrinkage: 'ledoit-wolf', 'none' or a number in [0, 1]")
    calibrate: bool = option(True, "divide MD by its cross-validated mean on good images (new good images ≈ 1)")
    cv_folds: int = option(10, "folds of that cross-validation")
    n_groups: int = option(16, "pixels: spatial blocks that Taguchi variable selection chooses among")
    selected_groups: list[int] | None = option(None, "variable groups in use (set by Taguchi selection; None = all)")

    def __post_init__(self):
        if self.features not in FEATURES:
            raise ValueError(f"features must be one of {FEATURES}, not {self.features!r}")
        if self.max_size < 1 or self.bins < 1 or not self.grid or min(self.grid) < 1:
            raise ValueError("max_size, bins and the grid sizes must be positive")
        if isinstance(self.shrinkage, str) and self.shrinkage not in ("ledoit-wolf", "none"):
            raise ValueError(f"shrinkage must be 'ledoit-wolf', 'none' or a number in [0, 1], not {self.shrinkage!r}")
        self._set("grid", [int(g) for g in self.grid])
        for name in ("bins", "max_size", "cv_folds", "n_groups"):
            self._set(name, int(getattr(self, name)))
        self._set("std_floor", float(self.std_floor))
        self._set("calibrate", bool(self.calibrate))
        if self.selected_groups is not None:
            self._set("selected_groups", [int(g) for g in self.selected_groups])


@register
class MTDetector(Detector):
    """Mahalanobis-Taguchi system; image score = MD (good images ≈ 1), map = MD contributions."""

    name = "mt"
    Options = MTOptions
    has_own_image_score = True

    def __init__(self, *, device: str = "auto", **options: Any):
        super().__init__(device=device, **options)
        self._space: dict[str, np.ndarray] | None = None
        self._scale = 1.0
        self._columns: np.ndarray | None = None
        self._layout: _FeatureLayout | None = None
        self._sn_gain: np.ndarray | None = None
        self._seed = 0

    # -- geometry and grouping ---------------------------------------------------------------
    def _make_layout(self, channels: int, h: int, w: int) -> _FeatureLayout:
        o = self.options
        size = _work_size(h, w, o.max_size)
        return _FeatureLayout(o.features, channels, size, o.grid, o.bins)

    def _group_labels(self, layout: _FeatureLayout, n_groups: int) -> np.ndarray:
        """Group of each feature: (level, kind) for "stats", spatial blocks for "pixels"."""
        if layout.kind == "stats":
            return layout.group_labels
        h, w = layout.size
        gy = max(1, int(math.floor(math.sqrt(n_groups))))
        while n_groups % gy:
            gy -= 1
        gx = n_groups // gy
        gy, gx = min(gy, h), min(gx, w)
        by = np.minimum((np.arange(h) * gy) // h, gy - 1)
        bx = np.minimum((np.arange(w) * gx) // w, gx - 1)
        block = (by[:, None] * gx + bx[None, :]).ravel()
        return np.tile(block, layout.channels)

    def _selected_columns(self, layout: _FeatureLayout) -> np.ndarray:
        sel = self.options.selected_groups
        if sel is None:
            return np.arange(layout.dim)
        labels = self._group_labels(layout, self.options.n_groups)
        cols = np.flatnonzero(np.isin(labels, sel))
        if cols.size == 0:
            raise ValueError(f"selected_groups {sel} select no feature")
        return cols

    # -- fitting -----------------------------------------------------------------------------
    def _space_kwargs(self) -> dict[str, Any]:
        return {"std_floor": self.options.std_floor, "shrinkage": self.options.shrinkage}

    def fit(self, images, *, seed: int | None = None, progress: ProgressFn | None = None) -> "MTDetector":
        x = as_image_batch(images)
        n = len(x)
        if n < 3:
            raise ValueError(f"the MT unit space needs at least 3 good images, got {n}")
        self._seed = 0 if seed is None else int(seed)
        layout = self._make_layout(x.shape[1], x.shape[2], x.shape[3])
        cols = self._selected_columns(layout)
        X = layout.extract(x)[:, cols]
        folds = min(self.options.cv_folds, n) if self.options.calibrate else 0
        total = folds + 1
        scale = 1.0
        if folds >= 2:
            perm = np.random.default_rng(self._seed).permutation(n)
            held = []
            for f in range(folds):
                test = perm[f::folds]
                train = np.setdiff1d(perm, test)
                sp = fit_unit_space(X[train], **self._space_kwargs())
                held.append(unit_space_md(sp, X[test]))
                if progress:
                    progress(f + 1, total, {"cv_md": float(np.mean(held[-1]))})
            scale = float(np.mean(np.concatenate(held)))
        self._space = fit_unit_space(X, **self._space_kwargs())
        self._scale = scale
        self._columns = cols
        self._layout = layout
        train_md = unit_space_md(self._space, X) / scale
        self.history = {"train_md_mean": [float(train_md.mean())], "heldout_scale": [scale]}
        if self._sn_gain is not None:
            self.history["sn_gain"] = [float(g) for g in self._sn_gain]
        if progress:
            progress(total, total, {"train_md": float(train_md.mean())})
        return self

    def select_variables(
        self,
        good_images,
        defective_images,
        *,
        n_groups: int | None = None,
        min_gain: float = 0.0,
        seed: int | None = None,
    ):
        """Taguchi SN-ratio selection of feature groups with an orthogonal array, then refit.

        Returns the :class:`kizu.detectors.taguchi.SelectionResult` (``gains`` per group in dB,
        ``selected`` groups: gain > ``min_gain``). The detector is refitted on ``good_images``
        with the selected groups (``seed``: the last fit's seed unless given).
        """
        g = as_image_batch(good_images)
        b = as_image_batch(defective_images)
        if g.shape[1:] != b.shape[1:]:
            raise ValueError(f"good and defective images differ in shape: {g.shape[1:]} vs {b.shape[1:]}")
        if n_groups is not None:
            self.options = replace(self.options, n_groups=int(n_groups))
        layout = self._make_layout(g.shape[1], g.shape[2], g.shape[3])
        labels = self._group_labels(layout, self.options.n_groups)
        ids = np.unique(labels)
        Xg, Xb = layout.extract(g), layout.extract(b)
        kw = self._space_kwargs()

        def md_fn(unit: np.ndarray, abnormal: np.ndarray) -> np.ndarray:
            return unit_space_md(fit_unit_space(unit, **kw), abnormal)

        result = _taguchi_select(Xg, Xb, [np.flatnonzero(labels == i) for i in ids], md_fn=md_fn, min_gain=min_gain)
        self.options = replace(self.options, selected_groups=[int(ids[i]) for i in result.selected])
        gains = np.zeros(int(ids.max()) + 1)
        gains[ids] = result.gains
        self._sn_gain = gains
        self.fit(g, seed=self._seed if seed is None else seed)
        return result

    @property
    def group_names(self) -> list[str] | None:
        """Names of the variable groups of the fitted geometry (index = group id)."""
        if self._layout is None:
            return None
        if self._layout.kind == "stats":
            return list(self._layout.group_names)
        return [f"block{i}" for i in range(int(self._group_labels(self._layout, self.options.n_groups).max()) + 1)]

    @property
    def sn_gain(self) -> np.ndarray | None:
        return None if self._sn_gain is None else self._sn_gain.copy()

    # -- scoring -----------------------------------------------------------------------------
    def _check(self, x: np.ndarray) -> None:
        if self._space is None:
            raise RuntimeError("mt detector is not fitted")
        if x.shape[1] != self._layout.channels:
            raise ValueError(f"fitted on {self._layout.channels}-channel images, got {x.shape[1]} channels")

    def _features_for(self, x: np.ndarray) -> np.ndarray:
        layout = self._make_layout(x.shape[1], x.shape[2], x.shape[3])
        if layout.size != self._layout.size:
            raise ValueError(
                f"fitted on images that downsample to {self._layout.size}, these give {layout.size}; "
                "MT needs the training image size"
            )
        return self._layout.extract(x)[:, self._columns]

    def image_scores(self, images) -> np.ndarray:
        x = as_image_batch(images)
        self._check(x)
        return unit_space_md(self._space, self._features_for(x)) / self._scale

    def anomaly_maps(self, images) -> np.ndarray:
        x = as_image_batch(images)
        self._check(x)
        _, terms = unit_space_md(self._space, self._features_for(x), contributions=True)
        full = np.zeros((len(x), self._layout.dim))
        full[:, self._columns] = terms / self._scale
        h, w = self._layout.size
        small = self._layout.contributions_to_map(full) * (h * w)  # mean over pixels = score
        t = torch.from_numpy(small.astype(np.float32))[:, None]
        if tuple(t.shape[-2:]) != x.shape[-2:]:
            t = F.interpolate(t, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return t[:, 0].numpy().astype(np.float32)

    # -- persistence -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        if self._space is None:
            raise RuntimeError("mt detector is not fitted")
        state = {f"space.{k}": np.array(v, dtype=np.float64, order="C") for k, v in self._space.items()}
        state["scale"] = np.array([self._scale], dtype=np.float64)
        state["columns"] = self._columns.astype(np.int64)
        state["geometry"] = np.array([self._layout.channels, *self._layout.size], dtype=np.int64)
        if self._sn_gain is not None:
            state["sn_gain"] = self._sn_gain.astype(np.float64)
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self._space = {
            k[len("space.") :]: np.asarray(v, dtype=np.float64) for k, v in state.items() if k.startswith("space.")
        }
        self._scale = _scalar(state["scale"])
        self._columns = np.asarray(state["columns"], dtype=np.int64)
        c, h, w = (int(v) for v in state["geometry"])
        o = self.options
        self._layout = _FeatureLayout(o.features, c, (h, w), o.grid, o.bins)
        self._sn_gain = np.asarray(state["sn_gain"], dtype=np.float64) if "sn_gain" in state else None
