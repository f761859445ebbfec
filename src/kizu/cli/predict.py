"""``kizu predict``: inspect images with a saved model → results.csv (+ maps, overlays)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import typer

from .. import plots
from ..errors import KizuError
from ..images import atomic_write_bytes, atomic_write_text, expand_inputs, read_image
from ..model import InspectionModel
from . import app
from .common import friendly_errors, out_console

CSV_COLUMNS = ["path", "score", "p_value", "defective", "normalized_score", "regions"]


def _mirrored(path: Path, root: Path, out_dir: Path, suffix: str) -> Path:
    """``out_dir/<path relative to root, new suffix>``."""
    return (out_dir / path.relative_to(root)).with_suffix(suffix)


def _check_distinct_outputs(found: list[tuple[Path, Path]]) -> None:
    """Two different images whose maps and overlays would land on the same file (``a.png`` and
    ``a.jpg`` in one folder; ``x.png`` from two folders given as files or as INPUTs) → KizuError
    naming both, before anything is written (one would silently overwrite the other)."""
    seen: dict[Path, Path] = {}
    for path, root in found:
        target = _mirrored(path, root, Path(), "")
        first = seen.setdefault(target, path)
        if first.resolve() != path.resolve():
            raise KizuError(f"{first} and {path} would write the same map/overlay file ({target}.*); "
                            "rename one, or run kizu predict on them separately")


@app.command()
@friendly_errors
def predict(
    model_dir: Path = typer.Argument(..., metavar="MODEL", help="model folder written by `kizu train`"),
    inputs: list[Path] = typer.Argument(..., metavar="INPUT...", help="image files or folders (searched recursively)"),
    out: Path = typer.Option(..., "--out", "-o", help="results CSV: path, score, p_value, defective, ..."),
    maps: Path = typer.Option(None, help="write one float32 .npy anomaly map per image (H, W) here"),
    overlays: Path = typer.Option(None, help="write one PNG overlay per image here (heat map + defect boxes)"),
    device: str = typer.Option(None, help="auto (a CUDA GPU when there is one) | cpu | cuda"),
    batch_size: int = typer.Option(64, help="images inspected at once"),
):
    """Inspect images. All inputs are read and checked before anything is written."""
    model = InspectionModel.load(model_dir, device=device)
    found = expand_inputs(inputs)
    if maps is not None or overlays is not None:
        _check_distinct_outputs(found)
    # every file is checked before any output exists; one at a time, so large sets fit in memory
    for p, _ in found:
        model.preprocessor.check(read_image(p), p)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    n_bad = 0
    results = model.iter_inspect_files([p for p, _ in found], batch_size=batch_size)
    for (path, root), (img, v) in zip(found, results):
        n_bad += v.defective
        writer.writerow([str(path), f"{v.score:.9g}", f"{v.p_value:.6g}", int(v.defective),
                         f"{v.normalized:.6f}", json.dumps(v.regions, separators=(",", ":"))])
        if maps is not None:
            b = io.BytesIO()
            np.save(b, v.anomaly_map.astype(np.float32))
            atomic_write_bytes(_mirrored(path, root, maps, ".npy"), b.getvalue())
        if overlays is not None:
            fig = plots.overlay_figure(img, v.anomaly_map, model.calibration.pixel_threshold, v.regions,
                                       f"{path.name}: {'DEFECTIVE' if v.defective else 'good'} (p={v.p_value:.3g})")
            atomic_write_bytes(_mirrored(path, root, overlays, ".png"), plots.figure_png(fig))
    atomic_write_text(out, buf.getvalue())
    out_console.print(f"inspected {len(found)} images: {n_bad} defective, {len(found) - n_bad} good → {out}")
