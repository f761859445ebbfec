"""``kizu export``: a deployable bundle that runs without PyTorch, checked against it first."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import friendly_errors, out_console

FORMATS = ("onnx",)


@friendly_errors
def export(
    model_dir: Path = typer.Argument(..., metavar="MODEL", help="model folder written by `kizu train`"),
    out: Path = typer.Option(..., "--out", "-o", help="bundle folder to write (model.onnx, bundle.json, arrays.npz)"),
    format: str = typer.Option("onnx", "--format", help="bundle format: onnx"),
    images: list[Path] = typer.Option(None, "--images", help="good images to check the export on (default: the "
                                                           "model's own; needed for models trained before kizu 0.2)"),
    knn: str = typer.Option("float32", help="patch-knn's neighbour search: float32 (exact, portable) or int8 "
                                            "(faster; onnxruntime only)"),
):
    """Export a model to run with onnxruntime alone (no PyTorch).

    Refuses to write a bundle whose scores differ from PyTorch's on good images.
    """
    from ..errors import KizuError
    from ..export.bundle import TOLERANCE, export_bundle
    from ..io import expand_inputs, load_model, read_image

    if format not in FORMATS:
        raise KizuError(f"--format {format!r}: kizu exports {', '.join(FORMATS)}")
    model = load_model(model_dir, device="cpu")
    x = None
    if images:
        paths = [p for p, _ in expand_inputs(images)]
        x = model.preprocessor.apply_all([read_image(p) for p in paths], paths)
    parity = export_bundle(model, out, images=x, knn=knn)
    out_console.print(f"exported {out}: on {parity.n_images} good images the scores agree with PyTorch's to "
                      f"{parity.relative:.1e} of the score range (allowed {TOLERANCE:g}), no verdict differs")
