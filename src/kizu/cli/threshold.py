"""``kizu threshold``: change a saved model's operating point without retraining."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import friendly_errors, out_console, warn

RULES = ("conformal", "conditional", "train-quantile", "f1", "youden", "cost", "recall")


@friendly_errors
def threshold(
    model_dir: Path = typer.Argument(..., metavar="MODEL", help="model folder to update"),
    data: Path = typer.Argument(None, metavar="[DATA]",
                                help="labelled MVTec-AD folder (needed by f1, youden, cost, recall)"),
    rule: str = typer.Option(..., help=f"one of: {', '.join(RULES)}"),
    alpha: float = typer.Option(None, help="conformal/conditional: target false-alarm rate (default: the model's)"),
    delta: float = typer.Option(0.1, help="conditional: allowed probability that the false-alarm rate exceeds alpha"),
    cost_miss: float = typer.Option(None, help="cost: cost of one missed defect"),
    cost_false_alarm: float = typer.Option(None, help="cost: cost of one false alarm"),
    recall: float = typer.Option(None, help="recall: required share of defects caught"),
):
    """Change the threshold by a stated rule (recorded in model.json)."""
    from ..calibration.rules import RuleRequest, describe, recalibrate
    from ..files import score_files
    from ..io import load_model, save_model, test_set

    request = RuleRequest(rule, alpha, delta, cost_miss, cost_false_alarm, recall)
    model = load_model(model_dir)
    scores = labels = None
    if request.needs_labels and data is not None:
        ts = test_set(data)
        labels = ts.labels
        if labels.min() != labels.max():
            scores = score_files(model, ts.paths)
    old = model.calibration
    new = recalibrate(old, request, scores=scores, labels=labels, source=str(data),
                      pixel_follows_score=model.score_rule.reducer == "max")
    save_model(model.with_calibration(new), model_dir)
    out_console.print(f"threshold {old.threshold:.6g} → {new.threshold:.6g} ({describe(request, new)})")
    if alpha is None and not request.needs_labels:
        out_console.print(f"alpha {new.alpha:g} is the model's (give --alpha to change it)")
    if request.needs_labels:
        warn(f"the threshold was tuned on the labelled images of {data}: `kizu evaluate` on those same images "
             "will report optimistic numbers — evaluate on other images")
