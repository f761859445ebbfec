"""``kizu evaluate``: metrics, figures and report.html on a labelled MVTec-AD test set."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from ..evaluation import evaluate as run_evaluation
from ..evaluation import write_outputs
from ..images import test_set
from ..model import InspectionModel
from . import app
from .common import console, friendly_errors, out_console, print_confusion


@app.command()
@friendly_errors
def evaluate(
    model_dir: Path = typer.Argument(..., metavar="MODEL", help="model folder written by `kizu train`"),
    data: Path = typer.Argument(..., help="MVTec-AD category folder with test/ (and ground_truth/)"),
    out: Path = typer.Option(Path("kizu-eval"), "--out", "-o", help="folder for metrics.json, figures, report.html"),
    device: str = typer.Option(None, help="auto (a CUDA GPU when there is one) | cpu | cuda"),
):
    """Evaluate a model: confusion matrix, AUROC/AUPR, F1, pixel AUROC/AUPRO; writes report.html."""
    model = InspectionModel.load(model_dir, device=device)
    ev = run_evaluation(model, test_set(data))
    left_out = ev.metrics.get("pixel_metrics_left_out", [])
    if left_out:
        console.print(f"[bold yellow]warning:[/] {len(left_out)} defective image(s) have no ground-truth mask "
                      f"(first: {escape(left_out[0])}); pixel AUROC and AUPRO leave them out", soft_wrap=True)
    write_outputs(model, ev, out)
    print_confusion(ev.metrics)
    out_console.print(f"report: {out / 'report.html'}")
