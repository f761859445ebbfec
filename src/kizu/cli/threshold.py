"""``kizu threshold``: change a saved model's operating point without retraining."""

from __future__ import annotations

from pathlib import Path

import typer

from ..thresholds import RULES, apply_rule
from ..model import InspectionModel
from . import app
from .common import friendly_errors, out_console


@app.command()
@friendly_errors
def threshold(
    model_dir: Path = typer.Argument(..., metavar="MODEL", help="model folder to update"),
    data: Path = typer.Argument(None, help="labelled MVTec-AD folder (needed by f1, youden, cost, recall)"),
    rule: str = typer.Option(..., help=f"one of: {', '.join(RULES)}"),
    alpha: float = typer.Option(None, help="conformal/conditional: target false-alarm rate"),
    delta: float = typer.Option(0.1, help="conditional: allowed probability that the false-alarm rate exceeds alpha"),
    cost_miss: float = typer.Option(None, help="cost: cost of one missed defect"),
    cost_false_alarm: float = typer.Option(None, help="cost: cost of one false alarm"),
    recall: float = typer.Option(None, help="recall: required share of defects caught"),
):
    """Set the threshold by a stated rule; the rule is recorded in model.json."""
    model = InspectionModel.load(model_dir)
    old = model.calibration.threshold
    desc = apply_rule(model, rule, data=data, alpha=alpha, delta=delta, cost_miss=cost_miss,
                      cost_false_alarm=cost_false_alarm, recall=recall)
    model.save(model_dir)
    out_console.print(f"threshold {old:.6g} → {model.calibration.threshold:.6g} ({desc})")
