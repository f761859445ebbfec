"""``kizu bench``: the detectors benchmark (same code as bench/detectors.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..benchmark import KIZU_DETECTORS, default_tasks, run_benchmark, save_results
from . import app
from .common import friendly_errors, out_console


@app.command()
@friendly_errors
def bench(
    sizes: list[int] = typer.Option([100], "--size", min=1, help="training-set sizes for the shapes tasks (repeatable)"),
    seed: list[int] = typer.Option([0], "--seed", min=0, help="seeds (repeatable)"),
    peers: bool = typer.Option(True, help="include PyOD / scikit-learn peers (needs the bench extra)"),
    fine: bool = typer.Option(True, help="include the fine-defect tasks"),
    only: list[str] = typer.Option(None, help="detector labels to run"),
    out: Path = typer.Option(None, help="write the rows as JSON here"),
):
    """Compare detectors on the built-in tasks: image/pixel AUROC, false-alarm rate, speed."""
    dets = [d for d in KIZU_DETECTORS if not only or d[0] in only]
    rows = run_benchmark(default_tasks(tuple(sizes), fine=fine), dets, seeds=tuple(seed), peers=peers,
                         log=out_console.print)
    if out is not None:
        save_results(out, rows)
