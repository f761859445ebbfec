"""The exported bundle: a folder with ``model.onnx`` (the tensor part), ``bundle.json`` (everything
the numpy post-processing needs: preprocessing, score terms, calibration — the model's own JSON)
and ``arrays.npz`` (the score terms' arrays and a few good images, read without pickle).

Reading a bundle imports numpy and onnxruntime only: ``load_bundle`` runs on a line PC without
PyTorch, SciPy or scikit-image.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from .. import __version__
from ..calibration.conformal import Calibration
from ..errors import KizuError, ModelFileError
from ..model.config import TrainConfig
from ..model.inspection import InspectionModel
from ..model.preprocess import Preprocessor
from ..scoring.serial import TermError, read_terms

BUNDLE_JSON, ONNX_FILE, ARRAYS = "bundle.json", "model.onnx", "arrays.npz"
BUNDLE_FORMAT = 1
#: ``arrays.npz`` key of the good images an export was checked on (uint8, working size)
CHECK_IMAGES = "check.images"


def is_bundle(path: str | Path) -> bool:
    """True for a folder written by ``kizu export``."""
    path = Path(path)
    return (path / BUNDLE_JSON).is_file() and (path / ONNX_FILE).is_file()


def bundle_id(path: str | Path) -> str:
    """A short hash of a bundle's files: changes whenever the bundle does."""
    h = hashlib.sha256()
    for name in (BUNDLE_JSON, ONNX_FILE, ARRAYS):
        file = Path(path) / name
        if file.is_file():
            h.update(file.read_bytes())
    return h.hexdigest()[:16]


def load_bundle(path: str | Path, *, threads: int = 2) -> InspectionModel:
    """An ``InspectionModel`` whose tensor part runs in onnxruntime (``threads`` CPU threads); a damaged
    or incompatible bundle raises ModelFileError saying what is wrong."""
    from ..runtime.onnx_runtime import OnnxRuntime  # onnxruntime is only needed here

    path = Path(path)
    meta = read_bundle_json(path)
    m = meta["model"]
    try:
        pre = Preprocessor.from_json(m["preprocess"])
        cal = Calibration.from_json(m["calibration"])
        config = None if m.get("config") is None else TrainConfig.from_json(m["config"])
        name, detector_config = m["detector"]["name"], m["detector"]["config"]
    except (KeyError, TypeError, ValueError, KizuError) as err:
        raise ModelFileError(path / BUNDLE_JSON, f"incomplete or invalid bundle description ({err})") from None
    arrays = _arrays(path / ARRAYS)
    check = arrays.pop(CHECK_IMAGES, None)
    try:
        terms = read_terms(m["score_terms"], arrays, pre.size)
    except TermError as err:
        raise ModelFileError(path / (BUNDLE_JSON if err.part == "description" else ARRAYS), str(err)) from None
    try:
        runtime = OnnxRuntime(path / ONNX_FILE, threads=threads, tile=pre.tile, tile_stride=pre.tile_stride)
    except Exception as err:  # onnxruntime raises its own error types for damaged graphs
        raise ModelFileError(path / ONNX_FILE, f"damaged ONNX graph ({err})") from None
    return InspectionModel(pre, runtime, terms, cal, detector_name=name, detector_config=detector_config,
                           summary=m.get("training", {}), config=config, check_images=check)


def read_bundle_json(path: Path) -> dict:
    """``bundle.json`` of a bundle folder, checked to be a kizu bundle this kizu reads."""
    if not is_bundle(path):
        raise ModelFileError(path, f"not a kizu bundle ({BUNDLE_JSON} and {ONNX_FILE} expected)")
    try:
        meta = json.loads((path / BUNDLE_JSON).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelFileError(path / BUNDLE_JSON, f"damaged bundle description (invalid JSON: {err})") from None
    if not isinstance(meta, dict) or meta.get("format") != "kizu-bundle" or "model" not in meta:
        raise ModelFileError(path / BUNDLE_JSON, "not a kizu bundle description")
    if meta.get("format_version") != BUNDLE_FORMAT:
        raise ModelFileError(path / BUNDLE_JSON, f"bundle format version {meta.get('format_version')} is not "
                                                 f"supported by kizu {__version__} (it reads version {BUNDLE_FORMAT})")
    return meta


def _arrays(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError) as err:
        raise ModelFileError(path, f"damaged arrays file ({err})") from None
