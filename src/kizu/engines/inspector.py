"""The work of a scaled-out ``kizu predict``, batch by batch: ``decode_batch`` reads and decodes
image files; an ``Inspector`` (one per actor) loads the model once and inspects decoded batches.
Every file comes out as one row; a file that cannot be read, decoded or inspected gets a row with
its error, so one bad file never stops a run.

A model reaches the actors as the bytes of its folder's files (``model_files``), so workers on
other machines need no shared storage. What loads it and what inspects a batch is a ``Backend``:
the one place another model runtime plugs in.
"""

from __future__ import annotations

import io
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import InputError, KizuError
from ..files import result_values
from ..io.images import decode_image
from ..model.prediction import Verdict
from .results import SCHEMA
from .sources import read_location

#: a batch of sources (what the pipeline starts from)
SOURCES = pa.schema([("path", pa.string()), ("location", pa.string()), ("relative", pa.string())])
#: a decoded batch: float32 pixels and their ``(C, H, W)`` shape, or the error
DECODED = pa.schema([("path", pa.string()), ("relative", pa.string()), ("pixels", pa.large_binary()),
                     ("shape", pa.list_(pa.int32())), ("error", pa.string())])
#: an inspected batch: results columns, then what the driver uses and drops (channel count; the
#: ``.npy`` map and PNG overlay when asked for)
INSPECTED = pa.schema([*SCHEMA, ("relative", pa.string()), ("channels", pa.int8()), ("map", pa.large_binary()),
                       ("overlay", pa.large_binary())])


# -- decoding ------------------------------------------------------------------------------------
def decode_batch(batch: pa.Table) -> pa.Table:
    """Sources → decoded images (``DECODED``); a file that cannot be read or decoded keeps its error."""
    rows = [_decode_one(path, location, relative) for path, location, relative in
            zip(*(batch.column(k).to_pylist() for k in SOURCES.names))]
    return pa.Table.from_pylist(rows, schema=DECODED)


def _decode_one(path: str, location: str, relative: str) -> dict:
    try:
        image = decode_image(read_location(location, path), path)
    except InputError as err:
        return {"path": path, "relative": relative, "pixels": None, "shape": None, "error": str(err)}
    return {"path": path, "relative": relative, "pixels": np.ascontiguousarray(image, np.float32).tobytes(),
            "shape": list(image.shape), "error": None}


def decoded_image(pixels: bytes, shape: list[int]) -> np.ndarray:
    """A decoded image back from its bytes (a writable copy: the model may work in place)."""
    return np.frombuffer(pixels, dtype=np.float32).reshape(shape).copy()


# -- models -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Backend:
    """How a worker gets a model (``load(model folder, device)``) and inspects decoded images with
    it (``inspect(model, images, names)`` → one ``Verdict`` per image, raising KizuError for an
    image it cannot take)."""

    load: Callable[[Path, str | None], Any]
    inspect: Callable[[Any, list[np.ndarray], list[str]], list[Verdict]]


def load_torch(path: Path, device: str | None):
    from ..io import load_model

    return load_model(path, device=device)


def inspect_torch(model, images: list[np.ndarray], names: list[str]) -> list[Verdict]:
    return model.inspect(images, names)


def load_onnx(path: Path, device: str | None):
    """An exported bundle in onnxruntime, one thread (an actor per CPU); workers need no PyTorch."""
    from ..io.bundle import load_bundle

    return load_bundle(path, threads=1)


#: model runtimes by name: a model folder in PyTorch, an exported bundle in onnxruntime
BACKENDS = {"torch": Backend(load_torch, inspect_torch), "onnx": Backend(load_onnx, inspect_torch)}


def model_files(folder: Path) -> dict[str, bytes]:
    """The files of a model folder by name (what an actor needs to load it anywhere)."""
    files = {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir()) if p.is_file()}
    if not files:
        raise KizuError(f"{folder}: no model files in this folder")
    return files


def load_from_files(backend: Backend, files: dict[str, bytes], device: str | None):
    """Write a model's files to a private temporary folder and load it from there."""
    folder = Path(tempfile.mkdtemp(prefix="kizu-model-"))
    try:
        for name, data in files.items():
            (folder / name).write_bytes(data)
        return backend.load(folder, device)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def inspect_isolated(inspect: Callable[[list[np.ndarray], list[str]], list[Verdict]], images: list[np.ndarray],
                     names: list[str]) -> list[Verdict | str]:
    """Inspect a batch at once; if an image makes that fail, each image alone, so only the images
    the model cannot take get an error (the text) in place of a verdict. Scores do not depend on
    the batch, so either way gives the same verdicts."""
    if not images:
        return []
    try:
        return list(inspect(images, names))
    except KizuError as err:
        if len(images) == 1:
            return [str(err)]
    return [inspect_isolated(inspect, [image], [name])[0] for image, name in zip(images, names)]


# -- the actor --------------------------------------------------------------------------------------
class Inspector:
    """A scoring actor: loads the model once, then turns decoded batches into results (``INSPECTED``)."""

    def __init__(self, files: dict[str, bytes], device: str | None = None, runtime: str = "torch",
                 maps: bool = False, overlays: bool = False):
        self.backend = BACKENDS[runtime]
        self.model = load_from_files(self.backend, files, device)
        self.maps, self.overlays = maps, overlays

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        good = [r for r in rows if r["error"] is None]
        images = [decoded_image(r["pixels"], r["shape"]) for r in good]
        results = iter(zip(images, inspect_isolated(lambda x, n: self.backend.inspect(self.model, x, n), images,
                                                    [r["path"] for r in good])))
        out = [self._row(r, *next(results)) if r["error"] is None else self._row(r, None, r["error"]) for r in rows]
        return pa.Table.from_pylist(out, schema=INSPECTED)

    def _row(self, decoded: dict, image: np.ndarray | None, result: Verdict | str) -> dict:
        row = {"path": decoded["path"], "relative": decoded["relative"]}
        if isinstance(result, str):
            return {**row, "error": result}
        row.update(result_values(result), error=None, channels=_channels(image))
        if self.maps:
            row["map"] = _npy(result.anomaly_map)
        if self.overlays:
            row["overlay"] = _overlay(image, result, self.model.calibration.pixel_threshold, decoded["relative"])
        return row


def _channels(image: np.ndarray) -> int:
    """1 for a grey image (or a colour file whose channels are equal), else 3."""
    from ..model.preprocess import is_effectively_grey

    return 1 if image.shape[0] == 1 or is_effectively_grey(image) else image.shape[0]


def _npy(anomaly_map: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, anomaly_map.astype(np.float32), allow_pickle=False)
    return buf.getvalue()


def _overlay(image: np.ndarray, verdict: Verdict, pixel_threshold: float, relative: str) -> bytes:
    """The PNG overlay local ``kizu predict --overlays`` writes for the same image."""
    from ..evaluation import plots

    title = f"{relative}: {'DEFECTIVE' if verdict.defective else 'good'} (p={verdict.p_value:.3g})"
    fig = plots.overlay_figure(image, verdict.anomaly_map, pixel_threshold, verdict.regions, title)
    return plots.figure_png(fig)
