"""Inspecting image files: each file is read once, in batches, through ``InspectionModel.inspect``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .io.images import read_image
from .model.inspection import InspectionModel
from .model.prediction import Verdict

#: files read and inspected at once
BATCH = 64
#: the columns of results.csv (``kizu predict``, ``kizu watch``)
CSV_COLUMNS = ["path", "score", "p_value", "defective", "normalized_score", "regions"]


def csv_row(path, verdict: Verdict) -> list[str]:
    """One results.csv row for a verdict (the columns of ``CSV_COLUMNS``), as text."""
    return csv_fields(path, **result_values(verdict))


def result_values(verdict: Verdict) -> dict:
    """A verdict's results columns after ``path`` as plain values (``regions`` as JSON text): what
    results.csv prints and a Parquet results file stores."""
    return {"score": float(verdict.score), "p_value": float(verdict.p_value), "defective": bool(verdict.defective),
            "normalized_score": float(verdict.normalized),
            "regions": json.dumps(verdict.regions, separators=(",", ":"))}


def csv_fields(path, score: float, p_value: float, defective: bool, normalized_score: float, regions: str
               ) -> list[str]:
    """The text of one results.csv row: one formatting for every writer, so equal results print alike."""
    return [str(path), f"{score:.9g}", f"{p_value:.6g}", str(int(defective)), f"{normalized_score:.6f}", regions]


def iter_inspect_files(model: InspectionModel, paths: list[str | Path], batch_size: int = BATCH
                       ) -> Iterator[tuple[Path, np.ndarray, Verdict]]:
    """``(path, image, verdict)`` per file, in order, ``batch_size`` files at a time (only one batch
    of images is held at once). A bad file raises an InputError naming it."""
    paths = [Path(p) for p in paths]
    for start in range(0, len(paths), batch_size):
        chunk = paths[start:start + batch_size]
        images = [read_image(p) for p in chunk]
        yield from zip(chunk, images, model.inspect(images, chunk))


def inspect_files(model: InspectionModel, paths: list[str | Path], batch_size: int = BATCH) -> list[Verdict]:
    """One ``Verdict`` per file (maps at each file's resolution)."""
    return [v for _, _, v in iter_inspect_files(model, paths, batch_size)]


def score_files(model: InspectionModel, paths: list[str | Path], batch_size: int = BATCH) -> np.ndarray:
    """``(N,)`` image scores of files, keeping no maps beyond a batch: for checks over many images
    (drift, re-thresholding). ``model.calibration.p_values`` turns them into p-values."""
    paths = [Path(p) for p in paths]
    scores = [np.zeros(0)]
    for start in range(0, len(paths), batch_size):
        chunk = paths[start:start + batch_size]
        x = model.preprocessor.apply_all([read_image(p) for p in chunk], chunk)
        scores.append(model.score(x).scores)
    return np.concatenate(scores)
