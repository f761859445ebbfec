"""``patch-knn`` — the PatchCore idea without a training loop.

A memory bank of local feature vectors (:mod:`._components.features`) from the good images,
thinned by a greedy k-center coreset (:mod:`._components.coreset`). A location's anomaly is the
mean Euclidean distance of its feature vector to the ``k`` nearest vectors in the memory —
wherever in whichever good image they came from, so the score does not depend on position:
shifted, rotated and textured surfaces work. The grid map is resized bilinearly to the input size
and optionally smoothed (``sigma`` px); the image score is left to :mod:`kizu.scoring`.

Edge correction (``edge_cells``): cells near the image border see the network's (or the patches')
padding, and each side's border cells are a small, separate population of the memory (a 32-cell
grid has 900 interior cells per image but 30 per side and 1 per corner), so good images get their
largest distances at the border — which would hide real defects from the image score. At fit
time each training cell's distance to the memory *leaving out the vectors of its own image* is
averaged per border class (``edge_cells`` rows and columns from each side, the interior as one
class); the map is divided by that profile (interior = 1). Classes are counted from the edges, so
any image size works.

Brightness channels (``brightness``, ``brightness_surround``): network features describe structure
and hardly change when a patch of a textured surface gets 10–25 % darker, so faint stains would
score near chance. With two relative-brightness channels (:mod:`._components.transforms`) the
nearest neighbour must match both the structure and its expected brightness; relative to a
surround window, lighting gradients and broad blotches cancel.

Image score: the model's default rule for this detector is ``max+mean`` (:mod:`kizu.scoring.rule`):
the peak finds small defects, the mean finds changes no single location shows (a wrong shape, a
large faint stain). Its scales come from ``training_maps``: each fitted image searched without its
own memory rows, as a new good image would be (in-sample maps are lower, by an amount that depends
on how many images were fitted, so cross-calibration folds and the final model would disagree).
Where one model learns two different surfaces at once the mean also says which surface an image
shows; ``--score max`` is better there.

Presets: ``default`` (kizu's default detector: EfficientNet-Lite0, all feature dimensions plus the
brightness channels, up to 16 000 memory vectors) and ``pixels`` (the bare detector on raw pixel
patches: 32 PCA dimensions, no brightness channels, up to 4000 memory vectors). ``kizu detectors``
explains every option; docs/detectors.md says how the defaults were chosen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ._components.coreset import MATMUL_DTYPES, NNIndex, kcenter_greedy
from ._components.features import BACKBONES, LocalFeatures
from .base import Options, ProgressFn, as_image_batch, option
from .patch_base import GridMapDetector
from .registry import register

#: interior cells sampled (at most) for the edge profile; border cells are all used
EDGE_INTERIOR_SAMPLES = 20_000
#: ``stages="auto"``: the network's stages (2, 3) — strides 8 and 16, PatchCore's choice — where the
#: network input's short side is at least this many px, else (1, 2): on small images the stride-8
#: grid is too coarse for defects of a few pixels, on larger photographs the deeper context finds
#: structural defects (docs/detectors.md)
AUTO_DEEP_FROM = 224
AUTO_DEEP_STAGES, AUTO_FINE_STAGES = (2, 3), (1, 2)


def auto_stages(h: int, w: int, input_size: int, max_upscale: float) -> list[int]:
    """The stages ``stages="auto"`` picks for ``h`` × ``w`` px images (``AUTO_DEEP_FROM``)."""
    f = min(input_size / min(h, w), max_upscale)
    short = max(1, round(min(h, w) * f))
    return list(AUTO_DEEP_STAGES if short >= AUTO_DEEP_FROM else AUTO_FINE_STAGES)


def parse_stages(value: Any) -> list[int]:
    """Stage numbers from a list or a ``"2,3"`` string (the command line's ``--stages 2,3``)."""
    items = value.replace(" ", "").split(",") if isinstance(value, str) else [value] if isinstance(value, int) \
        else list(value)
    try:
        stages = [int(v) for v in items]
    except (TypeError, ValueError):
        stages = []
    if not stages or min(stages) < 0:
        raise ValueError(f"stages must be 'auto' or stage numbers such as 1,2 or 2,3, not {value!r}")
    return stages


def edge_classes(n: int, cells: int) -> np.ndarray:
    """Position class of each of ``n`` cells along an axis: 0..cells-1 from the start, ``cells``
    for the interior, cells+1..2·cells towards the end (the last cell is 2·cells)."""
    a = np.arange(n)
    from_end = n - 1 - a
    return np.where(a < cells, a, np.where(from_end < cells, 2 * cells - from_end, cells)).astype(np.int64)


@dataclass(frozen=True)
class PatchKNNOptions(Options):
    """Hyper-parameters of ``patch-knn``; the defaults are kizu's default detector."""

    backbone: str = option("lite0", f"feature extractor: one of {', '.join(BACKBONES)}")
    stages: list[int] | str | None = option("auto", "network stages (or pixel pyramid levels) whose features are "
                                                    "used; auto: by image size (auto_stages)")
    k: int = option(1, "nearest memory vectors whose mean distance is a location's anomaly")
    coreset_fraction: float = option(0.1, "share of the training vectors kept in the memory")
    memory_size: int | None = option(None, "memory size in vectors (overrides coreset_fraction)")
    max_memory: int = option(16000, "largest memory, in vectors")
    max_candidates: int | None = option(40000, "the coreset is chosen among at most this many random vectors")
    proj_dim: int = option(64, "random projection used while choosing the coreset")
    sigma: float = option(0.0, "Gaussian smoothing of the detector's own map, in input px (0 = none)")
    patch: int = option(3, "pixels backbone: neighbourhood (cells) of each feature")
    center: bool = option(False, "pixels backbone: remove each patch's mean")
    max_grid: int = option(64, "largest feature grid, in cells a side")
    feature_dim: int | None = option(None, "PCA dimensions of the features (None = all)")
    input_size: int = option(224, "networks: the image's short side is resized to this many px")
    max_upscale: float = option(2.0, "networks: an image is enlarged at most this many times")
    pad: int = option(0, "networks: input px mirrored around the image before the network")
    edge_cells: int = option(3, "border cells per side whose distances are corrected for the border (0 = off)")
    whiten: bool = option(False, "scale every principal component to unit variance")
    brightness: float = option(2.0, "weight of the relative-brightness channels (0 = none)")
    brightness_surround: int = option(15, "brightness relative to this window around a cell, in cells "
                                          "(odd; 0 = the image)")
    matmul_dtype: str = option("float32", f"precision of the distance products: one of {', '.join(MATMUL_DTYPES)}")

    def __post_init__(self):
        if self.k < 1:
            raise ValueError(f"k must be >= 1, not {self.k}")
        if not 0 < self.coreset_fraction <= 1:
            raise ValueError(f"coreset_fraction must be in (0, 1], not {self.coreset_fraction}")
        if self.memory_size is not None and self.memory_size < 1:
            raise ValueError(f"memory_size must be None or >= 1, not {self.memory_size}")
        if self.max_candidates is not None and self.max_candidates < 1:
            raise ValueError(f"max_candidates must be None or >= 1, not {self.max_candidates}")
        if self.matmul_dtype not in MATMUL_DTYPES:
            raise ValueError(f"matmul_dtype must be one of {tuple(MATMUL_DTYPES)}, not {self.matmul_dtype!r}")
        if self.sigma < 0:
            raise ValueError(f"sigma must be >= 0, not {self.sigma}")
        if self.edge_cells < 0:
            raise ValueError(f"edge_cells must be >= 0, not {self.edge_cells}")
        for name in ("k", "max_memory", "proj_dim", "patch", "max_grid", "input_size", "pad", "edge_cells",
                     "brightness_surround"):
            self._set(name, int(getattr(self, name)))
        for name in ("coreset_fraction", "sigma", "max_upscale", "brightness"):
            self._set(name, float(getattr(self, name)))
        for name in ("memory_size", "max_candidates", "feature_dim"):
            value = getattr(self, name)
            self._set(name, None if value is None else int(value))
        if self.stages not in (None, "auto"):
            self._set("stages", parse_stages(self.stages))
        self._set("center", bool(self.center))
        self._set("whiten", bool(self.whiten))


@register
class PatchKNNDetector(GridMapDetector):
    """Nearest-neighbour distance to a coreset memory of good local features."""

    name = "patch-knn"
    Options = PatchKNNOptions
    #: ``pixels``: the bare detector on raw multi-scale pixel patches (no network weights)
    presets = {"default": {}, "pixels": dict(backbone="pixels", stages=None, feature_dim=32, max_memory=4000,
                                              brightness=0.0, brightness_surround=0)}
    # peak + mean of the map: see "Image score" in the module docstring
    default_reducer = "max+mean"
    leaves_own_out = True

    def __init__(self, *, device: str = "auto", **options: Any):
        super().__init__(device=device, **options)
        self.features = self._make_features()
        self._memory: np.ndarray | None = None
        self._edge: np.ndarray | None = None
        self._index: NNIndex | None = None
        #: which fitted image each memory row came from (set by ``fit``, not saved)
        self._memory_owner: np.ndarray | None = None

    def _make_features(self) -> LocalFeatures:
        o = self.options
        return LocalFeatures(
            backbone=o.backbone, stages=None if o.stages == "auto" else o.stages, patch=o.patch, max_grid=o.max_grid,
            center=o.center, dim=o.feature_dim, input_size=o.input_size,
            max_upscale=o.max_upscale, pad=o.pad, whiten=o.whiten,
            brightness=o.brightness, brightness_surround=o.brightness_surround, device=self.torch_device,
        )

    def fit(self, images, *, seed: int | None = None, progress: ProgressFn | None = None) -> "PatchKNNDetector":
        x = as_image_batch(images)
        if len(x) == 0:
            raise ValueError("need at least one good image")
        seed = 0 if seed is None else int(seed)
        self._resolve_stages(*x.shape[-2:])
        self.features = self._make_features()
        feats, _ = self.features.fit_transform(x, seed=seed)
        if progress:
            progress(1, 3, {})
        n_img, d, h, w = feats.shape
        vecs = np.ascontiguousarray(feats.transpose(0, 2, 3, 1).reshape(-1, d))
        o = self.options
        n = o.memory_size
        if n is None:
            n = min(o.max_memory, math.ceil(o.coreset_fraction * len(vecs)))
        if progress:
            progress(2, 3, {"patches": float(len(vecs)), "memory": float(min(n, len(vecs)))})
        idx = kcenter_greedy(vecs, n, seed=seed, proj_dim=o.proj_dim, candidates=o.max_candidates,
                             device=self.torch_device)
        self._memory = np.ascontiguousarray(vecs[idx], dtype=np.float32)
        self._index = self._new_index(o.matmul_dtype)
        self._memory_owner = idx // (h * w)
        self._edge = None
        if o.edge_cells:
            self._edge = self._edge_profile(vecs, self._memory_owner, n_img, h, w, seed)
        self.history = {"memory_size": [float(len(self._memory))], "patches": [float(len(vecs))]}
        if progress:
            progress(3, 3, {"memory": float(len(self._memory))})
        return self

    def _resolve_stages(self, h: int, w: int) -> None:
        """``stages="auto"``: the stages for ``h`` × ``w`` px images, kept in the options (and so in the
        saved configuration) as the list chosen."""
        o = self.options
        if o.stages == "auto":
            stages = None if o.backbone == "pixels" else auto_stages(h, w, o.input_size, o.max_upscale)
            self.options = replace(o, stages=stages)

    def _edge_profile(self, vecs: np.ndarray, mem_image: np.ndarray, n_img: int, h: int, w: int,
                      seed: int) -> np.ndarray:
        """``(2c+1, 2c+1)`` mean leave-own-image-out k-NN distance per border class, interior = 1."""
        c = self.options.edge_cells
        nc = 2 * c + 1
        table = np.ones((nc, nc), np.float32)
        if n_img < 2:
            return table
        cls = (edge_classes(h, c)[:, None] * nc + edge_classes(w, c)[None, :]).ravel()
        interior = c * nc + c
        cells = np.flatnonzero(cls != interior)
        inner = np.flatnonzero(cls == interior)
        rng = np.random.default_rng([seed, 2])
        per_image = min(len(inner), math.ceil(EDGE_INTERIOR_SAMPLES / n_img))
        k = self.options.k
        # fit-time only: float32 whatever matmul_dtype (excluding rows needs the fast float32 path)
        index = self._index if not self._index.low else self._new_index()
        losses, classes = [], []
        for i in range(n_img):
            own = mem_image == i
            if len(own) - int(own.sum()) < k:
                continue
            pick = cells
            if per_image:
                pick = np.concatenate([cells, np.sort(rng.choice(inner, per_image, replace=False))])
            # k-NN distance to the memory without the vectors of image i (a new image's view)
            losses.append(index.search(vecs[i * h * w + pick], k, exact=False, exclude=own).mean(axis=1))
            classes.append(cls[pick])
        if not losses:
            return table
        loo, row_cls = np.concatenate(losses), np.concatenate(classes)
        total = np.bincount(row_cls, weights=loo, minlength=nc * nc)
        count = np.bincount(row_cls, minlength=nc * nc)
        seen = count > 0
        mean = np.ones(nc * nc)
        mean[seen] = total[seen] / count[seen]
        ref = mean[interior] if count[interior] else total[seen].sum() / count[seen].sum()
        if not ref > 0:
            return table
        table = np.where(seen, mean / ref, 1.0).reshape(nc, nc)
        return np.maximum(table, 1e-6).astype(np.float32)

    def grid_maps(self, images, leave_out: np.ndarray | None = None) -> np.ndarray:
        """``(N, h, w)`` k-NN distances on the feature grid (before resizing), edge-corrected.
        ``leave_out``: for images the detector was fitted on, their positions among the fitted
        images; each is then searched without its own memory rows (as an unseen image would be)."""
        if self._memory is None:
            raise RuntimeError("patch-knn detector is not fitted")
        feats, _ = self.features(as_image_batch(images))
        n, d, h, w = feats.shape
        vecs = feats.transpose(0, 2, 3, 1).reshape(-1, d)
        if self._index is None:
            self._index = self._new_index(self.options.matmul_dtype)
        k = self.options.k
        if leave_out is None:
            dist = self._index.search(vecs, k)
        else:  # excluding rows needs the float32 path, whatever matmul_dtype
            index = self._index if not self._index.low else self._new_index()
            dist = np.concatenate([
                index.search(vecs[i * h * w:(i + 1) * h * w], k, exclude=self._leave_out_rows(int(j), k))
                for i, j in enumerate(np.asarray(leave_out).reshape(-1))])
        maps = dist.mean(axis=1).reshape(n, h, w)
        if self._edge is not None:
            c = (len(self._edge) - 1) // 2
            maps = maps / self._edge[edge_classes(h, c)[:, None], edge_classes(w, c)[None, :]]
        return maps.astype(np.float32)

    def _new_index(self, matmul_dtype: str = "float32") -> NNIndex:
        return NNIndex(self._memory, matmul_dtype, device=self.torch_device)

    def to(self, device: str) -> "PatchKNNDetector":
        super().to(device)
        self._index = None  # rebuilt on the new device at the next search
        return self

    def _leave_out_rows(self, image: int, k: int) -> np.ndarray | None:
        own = self._memory_owner == image
        return own if len(own) - int(own.sum()) >= k else None

    def training_maps(self, images, indices) -> np.ndarray:
        """Maps of fitted images, each searched without its own memory rows (a new image's view);
        in-sample after loading, when the rows' images are no longer known."""
        x = as_image_batch(images)
        if self._memory_owner is None:
            return self.anomaly_maps(x)
        return self._input_maps(self.grid_maps(x, leave_out=indices), x.shape[-2:])

    def state_dict(self) -> dict[str, np.ndarray]:
        if self._memory is None:
            raise RuntimeError("patch-knn detector is not fitted")
        state = {f"features.{k}": v for k, v in self.features.state_dict().items()}
        state["memory"] = self._memory
        if self._edge is not None:
            state["edge_profile"] = self._edge
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.features = self._make_features()
        self.features.load_state_dict({k[9:]: v for k, v in state.items() if k.startswith("features.")})
        self._memory = np.ascontiguousarray(state["memory"], dtype=np.float32)
        self._memory_owner = None
        self._index = None
        self._edge = np.ascontiguousarray(state["edge_profile"], dtype=np.float32) if "edge_profile" in state else None
