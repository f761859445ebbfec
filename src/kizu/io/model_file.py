"""The model file: a folder with ``model.json`` (what the model is, as JSON) and
``weights.safetensors`` (its arrays). No pickle. Written atomically (a temporary folder, then a
rename); read with one clear ``ModelFileError`` for anything missing, damaged or incompatible.

Format versions: 3 (this one: ``score_terms`` as an ordered list, the training ``config``);
1 and 2 (kizu 0.1: the score rule, reference and template as separate keys; 2 has a golden
template) are migrated once, here, when they are read. Reading a model imports PyTorch (its
detector); describing one (``model_json``, ``model_id``) does not.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from .. import __version__
from ..calibration.conformal import Calibration
from ..errors import KizuError, ModelFileError
from ..model.config import TrainConfig
from ..model.inspection import InspectionModel
from ..model.preprocess import Preprocessor
from ..scoring.serial import TermError, read_terms, term_arrays
from .atomic import atomic_directory, default_mode

FORMAT_VERSION = 3
READ_VERSIONS = (1, 2, 3)
MODEL_JSON, WEIGHTS = "model.json", "weights.safetensors"
#: safetensors key of a few good calibration images (uint8, working size) kept for export checks
CHECK_IMAGES = "check.images"
#: patch-knn options added after format version 1 was first written, with the values that reproduce
#: models saved before them
_PATCH_KNN_BEFORE = {"max_candidates": None, "max_upscale": 4.0, "pad": 0, "edge_cells": 0, "whiten": False,
                     "brightness": 0.0, "brightness_surround": 0}


# -- writing ---------------------------------------------------------------------------------------
def model_json(model: InspectionModel) -> dict[str, Any]:
    """What ``model.json`` holds."""
    return {
        "format": "kizu-model", "format_version": FORMAT_VERSION, "kizu_version": __version__,
        "preprocess": model.preprocessor.to_json(),
        "detector": {"name": model.detector_name, "config": model.detector_config},
        "score_terms": [{"kind": t.kind, **t.to_json()} for t in model.terms],
        "calibration": model.calibration.to_json(),
        "config": None if model.config is None else model.config.to_json(),
        "training": model.summary,
    }


def save_model(model: InspectionModel, path: str | Path) -> Path:
    """Write ``path/model.json`` + ``path/weights.safetensors`` atomically; an existing model folder
    is replaced, any other existing non-empty folder is refused."""
    path = Path(path)
    check_model_destination(path)
    if model.detector is None:
        raise KizuError("this model has no PyTorch detector to save (it was loaded from an exported bundle)")
    state = {k: np.require(v, requirements="C") for k, v in model.detector.state_dict().items()}
    state.update(term_arrays(model.terms))
    if model.check_images is not None:
        state[CHECK_IMAGES] = model.check_images
    text = json.dumps(model_json(model), indent=2, allow_nan=False)
    with atomic_directory(path) as tmp:
        save_file(state, str(tmp / WEIGHTS))
        (tmp / WEIGHTS).chmod(default_mode())
        (tmp / MODEL_JSON).write_text(text, encoding="utf-8")
    return path


def check_model_destination(path: str | Path) -> None:
    """Raise KizuError if a model cannot be written at ``path`` (before any expensive work):
    an existing file, or a non-empty folder that is not a kizu model."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise KizuError(f"{path}: exists and is a file, not a model folder; choose another --out")
    if path.is_dir() and not (path / MODEL_JSON).is_file() and any(path.iterdir()):
        raise KizuError(f"{path}: exists and is not a kizu model folder; refusing to overwrite it")
    parent = path.parent if str(path.parent) else Path(".")
    existing = next((p for p in [parent, *parent.parents] if p.exists()), Path("."))
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise KizuError(f"{path}: cannot write here ({existing} is not a writable folder)")


def model_id(path: str | Path) -> str:
    """A short hash of a model folder's two files: changes whenever the model does."""
    h = hashlib.sha256()
    for name in (MODEL_JSON, WEIGHTS):
        with open(Path(path) / name, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


# -- reading ---------------------------------------------------------------------------------------
def load_model(path: str | Path, *, device: str | None = None) -> InspectionModel:
    """Read a model folder (or its ``model.json``); a damaged or incompatible one raises
    ModelFileError saying what is wrong. ``device``: "auto" (a GPU if any), "cpu", "cuda"."""
    from ..detectors import detector_class, resolve_device
    from ..runtime.torch_runtime import TorchRuntime

    path = Path(path)
    if device is not None:
        resolve_device(device)  # a bad --device is the caller's problem, not the model file's
    if path.is_file() and path.name == MODEL_JSON:
        path = path.parent
    meta_file, weights_file = path / MODEL_JSON, path / WEIGHTS
    meta = migrate(read_model_json(path), meta_file)
    if not weights_file.is_file():
        raise ModelFileError(path, f"{WEIGHTS} is missing")
    try:
        state = load_file(str(weights_file))
    except Exception as err:  # safetensors raises its own error types for damaged files
        raise ModelFileError(weights_file, f"damaged weights file ({err})") from None
    try:
        det = detector_class(meta["detector"]["name"]).from_config(meta["detector"]["config"], device=device or "auto")
        pre = Preprocessor.from_json(meta["preprocess"])
        cal = Calibration.from_json(meta["calibration"])
        config = None if meta.get("config") is None else TrainConfig.from_json(meta["config"])
        kinds = [t["kind"] for t in meta["score_terms"]]
        descriptions = meta["score_terms"]
    except KizuError as err:
        raise ModelFileError(meta_file, str(err)) from None
    except (KeyError, TypeError, ValueError) as err:
        raise ModelFileError(meta_file, _invalid(err)) from None
    arrays = {k: state.pop(k) for k in list(state) if k.split(".", 1)[0] in kinds}
    check = state.pop(CHECK_IMAGES, None)
    try:
        det.load_state_dict(state)
    except (KeyError, RuntimeError, ValueError) as err:
        raise ModelFileError(weights_file, f"weights do not fit the detector ({err})") from None
    try:
        terms = read_terms(descriptions, arrays, pre.size)
    except TermError as err:
        raise ModelFileError(meta_file if err.part == "description" else weights_file, str(err)) from None
    return InspectionModel(pre, TorchRuntime(det, pre.tile, pre.tile_stride), terms, cal,
                           detector_name=det.name, detector_config=det.config(), summary=meta.get("training", {}),
                           config=config, check_images=check)


def read_model_json(path: Path) -> dict[str, Any]:
    """``model.json`` of a model folder, checked to be a kizu model of a version this kizu reads."""
    if not path.is_dir():
        raise ModelFileError(path, "no such model folder")
    meta_file = path / MODEL_JSON
    if not meta_file.is_file():
        raise ModelFileError(path, f"not a kizu model: {MODEL_JSON} is missing")
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelFileError(meta_file, f"damaged model description (invalid JSON: {err})") from None
    if not isinstance(meta, dict) or meta.get("format") != "kizu-model":
        raise ModelFileError(meta_file, "not a kizu model description")
    if meta.get("format_version") not in READ_VERSIONS:
        versions = ", ".join(map(str, READ_VERSIONS))
        raise ModelFileError(meta_file, f"model format version {meta.get('format_version')} is not supported "
                                        f"by kizu {__version__} (it reads versions {versions})")
    return meta


def migrate(meta: dict[str, Any], meta_file: Path) -> dict[str, Any]:
    """A version 1 or 2 description in the current layout (a version 3 one unchanged)."""
    if meta["format_version"] == FORMAT_VERSION:
        return meta
    from ..detectors import detector_class

    try:
        name, config = meta["detector"]["name"], dict(meta["detector"]["config"])
        if name == "patch-knn":
            config = {**_PATCH_KNN_BEFORE, **config}
        own = detector_class(name).has_own_image_score and meta["preprocess"].get("tile") is None
        terms = [{"kind": "rule", **meta["scoring"], "own_score": own}]
        if meta.get("reference") is not None:
            terms.append({"kind": "reference", **meta["reference"]})
        if meta.get("template") is not None:
            terms.append({"kind": "template", **meta["template"]})
    except KizuError as err:
        raise ModelFileError(meta_file, str(err)) from None
    except (KeyError, TypeError, AttributeError) as err:
        raise ModelFileError(meta_file, _invalid(err)) from None
    return {**meta, "format_version": FORMAT_VERSION, "detector": {"name": name, "config": config},
            "score_terms": terms, "config": None}


def _invalid(err: Exception) -> str:
    return f"incomplete or invalid model description ({type(err).__name__}: {err})"
