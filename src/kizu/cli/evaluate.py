"""``kizu evaluate``: metrics, figures and report.html on a labelled MVTec-AD test set."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import friendly_errors, out_console, print_confusion, warn


@friendly_errors
def evaluate(
    model_dir: Path = typer.Argument(..., metavar="MODEL", help="model folder written by `kizu train`"),
    data: Path = typer.Argument(..., metavar="DATA", help="MVTec-AD category folder with test/ (and ground_truth/)"),
    out: Path = typer.Option(Path("kizu-eval"), "--out", "-o", help="folder for metrics.json, figures, report.html"),
    device: str = typer.Option(None, help="auto (a CUDA GPU when there is one) | cpu | cuda"),
):
    """Measure a model on a labelled test set; writes report.html.

    Confusion matrix, AUROC/AUPR, F1, pixel AUROC/AUPRO, and every missed defect and false alarm.
    """
    from ..evaluation import evaluate as run_evaluation
    from ..evaluation import write_outputs
    from ..io import load_model, test_set

    model = load_model(model_dir, device=device)
    ev = run_evaluation(model, test_set(data))
    left_out = ev.metrics.get("pixel_metrics_left_out", [])
    if left_out:
        warn(f"{len(left_out)} defective image(s) have no ground-truth mask (first: {left_out[0]}); "
             "pixel AUROC and AUPRO leave them out")
    write_outputs(model, ev, out)
    print_confusion(ev.metrics)
    out_console.print(f"report: {out / 'report.html'}")
