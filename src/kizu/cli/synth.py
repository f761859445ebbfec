"""``kizu synth``: write a built-in data set in the MVTec-AD layout."""

from __future__ import annotations

import math
from enum import Enum
from pathlib import Path

import typer

from .common import friendly_errors, out_console


class Kind(str, Enum):
    shapes = "shapes"
    fine = "fine"


@friendly_errors
def synth(
    kind: Kind = typer.Argument(..., metavar="KIND",
                                help="shapes: the seed's ellipses vs rectangles; fine: small defects with masks"),
    out: Path = typer.Argument(..., metavar="OUT", help="output folder (must not exist or be empty)"),
    n_train: int = typer.Option(1000, help="good training images"),
    n_test_normal: int = typer.Option(500, help="good test images"),
    n_test_anomaly: int = typer.Option(500, help="defective test images (fine: split evenly over defect types)"),
    size: int = typer.Option(None, help="image size in px (default 16 for shapes, 64 for fine)"),
    seed: int = typer.Option(0, help="random seed"),
    jitter: str = typer.Option("seed", help="shapes: 'seed' (the seed code's exact draws) or 'intended' (its text)"),
    mode: str = typer.Option("parts", help="fine: 'parts' or 'texture'"),
    texture: str = typer.Option("mixed", help="fine texture mode: 'regular', 'stochastic' or 'mixed'"),
):
    """Write a built-in data set in the MVTec-AD layout.

    OUT/train/good, OUT/test/<type>, OUT/ground_truth/<type>.
    """
    from ..synth import make_shapes, write_mvtec
    from ..synth.fine import defect_types, make_fine

    if kind is Kind.shapes:
        ds = make_shapes(n_train, n_test_normal, n_test_anomaly, size=size or 16, seed=seed, jitter=jitter)
    else:
        per_type = math.ceil(n_test_anomaly / len(defect_types(mode))) if n_test_anomaly else 0
        ds = make_fine(n_train, n_test_normal, per_type, size=size or 64, seed=seed, mode=mode, texture=texture)
    write_mvtec(ds, out)
    out_console.print(f"wrote {len(ds.train)} training and {len(ds.test)} test images to {out}")
