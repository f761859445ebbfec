"""``export_bundle``: a model as a folder that runs with numpy, Pillow and onnxruntime alone
(``kizu.io.bundle``), refused unless it scores a few good images as the PyTorch runtime does.

The check: the model's stored good calibration images (or ``images``) are scored through both
runtimes — the same preprocessing, score terms and calibration, only the tensor part differs. The
bundle is written only if the largest score difference is at most ``TOLERANCE`` of the calibration
scores' range and no verdict differs; otherwise nothing is written and the error says by how much.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import KizuError
from ..io.atomic import atomic_directory
from ..io.bundle import ARRAYS, BUNDLE_FORMAT, BUNDLE_JSON, CHECK_IMAGES, ONNX_FILE, is_bundle
from ..io.model_file import model_json
from ..model.inspection import InspectionModel
from ..runtime.onnx_runtime import OnnxRuntime
from ..scoring.serial import term_arrays
from .onnx_graph import export_tensor_part

#: largest score difference between the runtimes, as a share of the calibration scores' range
TOLERANCE = 1e-4


@dataclass(frozen=True)
class Parity:
    """How the exported runtime scored the check images against PyTorch's."""

    n_images: int
    max_difference: float  # largest |score difference|, score units
    relative: float  # that over the calibration scores' range
    verdicts_differ: int

    @property
    def ok(self) -> bool:
        return self.relative <= TOLERANCE and self.verdicts_differ == 0


def export_bundle(model: InspectionModel, out: str | Path, *, images: np.ndarray | None = None,
                  knn: str = "float32") -> Parity:
    """Write ``out`` (a bundle folder) for ``model``; ``images``: preprocessed ``(N, C, h, w)`` float32
    images to check it on (default: the model's stored check images). Raises KizuError, writing
    nothing, when the exported runtime disagrees with PyTorch (``Parity``)."""
    out = Path(out)
    _check_destination(out)
    if model.detector is None:
        raise KizuError("this model has no PyTorch detector to export (it was loaded from a bundle)")
    x = _check_batch(model, images)
    pre = model.preprocessor
    part_size = (pre.tile, pre.tile) if pre.tile else pre.size
    with atomic_directory(out) as tmp:
        meta = export_tensor_part(model.detector, part_size, pre.channels, tmp / ONNX_FILE, knn=knn)
        exported = model.with_runtime(OnnxRuntime(tmp / ONNX_FILE, tile=pre.tile, tile_stride=pre.tile_stride))
        parity = compare(model, exported, x)
        if not parity.ok:
            raise KizuError(f"the exported model scores differently from PyTorch on {parity.n_images} good images "
                            f"(largest difference {parity.relative:.2g} of the score range, allowed {TOLERANCE:g}; "
                            f"{parity.verdicts_differ} verdicts differ): no bundle written")
        arrays = {**term_arrays(model.terms), CHECK_IMAGES: np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)}
        np.savez(tmp / ARRAYS, **arrays)
        description = {"format": "kizu-bundle", "format_version": BUNDLE_FORMAT, "kizu_version": __version__,
                       "model": model_json(model), "tensor_part": meta, "parity": asdict(parity)}
        (tmp / BUNDLE_JSON).write_text(json.dumps(description, indent=2, allow_nan=False), encoding="utf-8")
    return parity


def compare(reference: InspectionModel, other: InspectionModel, x: np.ndarray) -> Parity:
    """Scores and verdicts of preprocessed images ``x`` through two models that differ in runtime."""
    a, b = reference.score(x).scores, other.score(x).scores
    cal = np.asarray(reference.calibration.scores, dtype=np.float64)
    spread = float(cal.max() - cal.min()) if len(cal) > 1 else 0.0
    spread = spread if spread > 0 and math.isfinite(spread) else max(float(np.abs(a).max(initial=0.0)), 1.0)
    diff = float(np.abs(a - b).max(initial=0.0))
    flips = int((reference.calibration.is_defective(a) != reference.calibration.is_defective(b)).sum())
    return Parity(len(x), diff, diff / spread, flips)


def _check_batch(model: InspectionModel, images: np.ndarray | None) -> np.ndarray:
    if images is not None:
        return np.asarray(images, dtype=np.float32)
    if model.check_images is None:
        raise KizuError("this model keeps no good images to check an export on (trained before kizu 0.2): "
                        "give a few good images with --images DIR")
    return model.check_images.astype(np.float32) / 255.0


def _check_destination(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise KizuError(f"{out}: exists and is a file, not a bundle folder; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not is_bundle(out):
        raise KizuError(f"{out}: exists and is not a kizu bundle; refusing to overwrite it")
