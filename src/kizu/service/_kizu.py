"""What the service, the watcher and recalibration take from the rest of kizu, in one place: the
model (load, save, its id, what it takes), inspection, calibration refits, results rows, overlays
and upload decoding (kizu's own decoder, its error kinds mapped to HTTP statuses)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..calibration.conformal import Calibration
from ..errors import InputError, KizuError, ModelFileError
from ..evaluation import plots
from ..files import CSV_COLUMNS, csv_row, score_files
from ..io import atomic_write_bytes, atomic_write_text, list_images, read_image
from ..io import load_model as _load
from ..io import save_model as _save
from ..io.bundle import bundle_id, is_bundle, load_bundle
from ..io.images import decode_image as _decode
from ..io.images import image_format, is_image_path
from ..io.model_file import model_id as _model_id
from ..io.model_file import model_json
from ..model.inspection import InspectionModel
from ..model.prediction import Verdict

__all__ = ["CSV_COLUMNS", "InputError", "KizuError", "ModelFileError", "UploadError", "Verdict", "__version__",
           "atomic_write_bytes", "atomic_write_text", "calibration_params", "check_not_bundle", "check_size", "csv_row",
           "decode_image", "expected_size", "inspect", "is_image_path", "list_images", "load_model", "model_id",
           "model_info", "overlay_png", "read_image", "refit_calibration", "save_model", "score_files",
           "upload_suffix", "warm_up"]

#: file suffix to save an upload of each format under (reviews, ``--keep``)
FORMAT_SUFFIX = {"PNG": ".png", "JPEG": ".jpg", "MPO": ".jpg", "BMP": ".bmp", "TIFF": ".tif", "WEBP": ".webp",
                 "PPM": ".ppm"}
#: HTTP status for each kind of bad image (``InputError.reason``)
STATUS = {"empty": 400, "not_image": 415, "too_many_pixels": 413, "unreadable": 422, "size": 422}


# -- models --------------------------------------------------------------------------------------
def load_model(path: str | Path) -> InspectionModel:
    """Load a saved model folder on the CPU, or an exported bundle into onnxruntime (no PyTorch
    needed); raises ModelFileError naming the problem."""
    if is_bundle(path):
        return load_bundle(path)
    try:
        return _load(path, device="cpu")
    except ModuleNotFoundError as err:
        raise ModelFileError(path, f"a model folder needs {err.name}, which is not installed here; export it "
                                   "(kizu export MODEL --out BUNDLE) and serve the bundle") from None


def model_id(path: str | Path) -> str:
    """A short hash of the model's (or bundle's) files: changes whenever the model does."""
    return bundle_id(path) if is_bundle(path) else _model_id(path)


def check_not_bundle(path: str | Path) -> None:
    """Refuse to change an exported bundle in place: recalibrate its model folder and export again."""
    if is_bundle(path):
        raise KizuError(f"{path}: an exported bundle is not changed in place; recalibrate the model folder it "
                        "was exported from and export it again")


def save_model(model: InspectionModel, path: str | Path) -> None:
    """Save a model folder atomically (readers see the old or the new model, never half of one)."""
    check_not_bundle(path)
    _save(model, path)


def expected_size(model: InspectionModel) -> tuple[int, int] | None:
    """(H, W) every input must have, or None when the model resizes any input."""
    pre = model.preprocessor
    return None if pre.resize else tuple(pre.input_size or pre.size)


def warm_up(model: InspectionModel) -> None:
    """Inspect one blank image so the first real request does not pay for lazy initialisation."""
    h, w = expected_size(model) or model.preprocessor.size
    model.inspect([np.zeros((model.preprocessor.channels, h, w), np.float32)])


def model_info(model: InspectionModel) -> dict[str, Any]:
    """What ``GET /v1/model`` shows: detector, sizes, calibration in words, training summary."""
    pre, cal = model.preprocessor, model.calibration
    meta = model_json(model)
    size = expected_size(model)
    return {
        "detector": model.detector_name,
        "detector_config": model.detector_config,
        "size": {"height": pre.size[0], "width": pre.size[1], "channels": pre.channels},
        "input_size": None if size is None else {"height": size[0], "width": size[1]},
        "resizes_input": bool(pre.resize),
        "calibration": {
            "rule": cal.rule, "alpha": cal.alpha, "threshold": _finite(cal.threshold),
            "n_calibration": len(cal.scores), "pixel_threshold": _finite(cal.pixel_threshold),
            "statement": cal.statement(), "notes": list(cal.notes),
        },
        "training": meta["training"],
        "format_version": meta["format_version"],
        "kizu_version": meta["kizu_version"],
    }


def calibration_params(model: InspectionModel) -> dict[str, Any]:
    """alpha, threshold (None when nothing can be flagged), the number of calibration images, the
    pixel threshold of the overlays, the threshold rule and the detector's name."""
    cal = model.calibration
    return {"alpha": cal.alpha, "threshold": _finite(cal.threshold), "n_calibration": len(cal.scores),
            "pixel_threshold": cal.pixel_threshold, "rule": cal.rule, "detector": model.detector_name}


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


# -- inspecting ------------------------------------------------------------------------------------
def check_size(model: InspectionModel, image: np.ndarray, name: str) -> None:
    """Raise InputError naming ``name`` when the model does not take an image of this size."""
    try:
        model.preprocessor.check(image, name)
    except InputError as err:
        raise InputError(name, err.problem, "size") from None


def inspect(model: InspectionModel, images: list[np.ndarray], names: list[str]) -> list[Verdict]:
    """``(C, H, W)`` float32 images → one Verdict each, computed in one batch."""
    return model.inspect(images, names)


def refit_calibration(model: InspectionModel, added_scores: np.ndarray) -> tuple[InspectionModel, float, float]:
    """The model with good images' scores appended to its calibration scores and the threshold
    refitted by its label-free rule (conformal or conditional) at its alpha; the pixel threshold of
    the overlays is kept. Returns (new model, old threshold, new threshold)."""
    cal = model.calibration
    if cal.rule not in ("conformal", "conditional"):
        raise KizuError(f"the model's threshold was set by rule {cal.rule!r}; recalibration refits the conformal "
                        "threshold: run `kizu threshold MODEL --rule conformal` first")
    scores = list(cal.scores) + [float(s) for s in np.asarray(added_scores, dtype=np.float64)]
    new = Calibration.fit(scores, cal.alpha, cal.rule, cal.train_scores, delta=cal.params.get("delta", 0.1))
    new.pixel_threshold = cal.pixel_threshold
    new.params = dict(cal.params)
    return model.with_calibration(new), cal.threshold, new.threshold


def overlay_png(image: np.ndarray, anomaly_map: np.ndarray, regions: list[dict], pixel_threshold: float,
                title: str) -> bytes:
    """PNG of the image with its anomaly map on the calibrated scale (as ``kizu predict --overlays``)
    and the regions boxed."""
    return plots.figure_png(plots.overlay_figure(image, anomaly_map, pixel_threshold, regions, title))


# -- decoding uploads --------------------------------------------------------------------------------
class UploadError(InputError):
    """An upload that is not a usable image; ``status`` is the HTTP status the service answers."""

    def __init__(self, name: str, problem: str, status: int):
        self.status = status
        super().__init__(name, problem)


def upload_suffix(data: bytes) -> str:
    """The file suffix for encoded image bytes, from their header (".png", ".jpg", ...; ".bin" if unknown)."""
    return FORMAT_SUFFIX.get(image_format(data), ".bin")


def decode_image(data: bytes, name: str, max_pixels: int = 40_000_000) -> np.ndarray:
    """Encoded image bytes → ``(C, H, W)`` float32 in [0, 1] (``kizu.io.decode_image``'s rules),
    or UploadError naming ``name`` with its HTTP status: empty (400), not an image kizu reads (415),
    more than ``max_pixels`` pixels (413, from the header, before any pixel is decoded), truncated
    or corrupt (422)."""
    try:
        return _decode(data, name, max_pixels=max_pixels)
    except InputError as err:
        raise UploadError(name, err.problem, STATUS.get(err.reason, 422)) from None
