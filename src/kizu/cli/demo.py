"""``kizu demo``: the whole job on built-in data (the seed's ellipses vs rectangles)."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer

from ..evaluation import evaluate as run_evaluation
from ..evaluation import write_outputs
from ..images import test_set
from ..synth import make_shapes, write_mvtec
from . import app
from .common import friendly_errors, out_console, print_confusion
from .train import train_model


@app.command()
@friendly_errors
def demo(
    out: Path = typer.Option(Path("kizu-demo"), "--out", "-o", help="output folder (replaced if it is a demo folder)"),
    quick: bool = typer.Option(False, help="smaller data and shorter training (seconds)"),
    seed: int = typer.Option(0, help="random seed"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
):
    """Generate the seed's data set, train, calibrate, evaluate; write OUT/report.html."""
    n_train, n_test = (200, 100) if quick else (1000, 500)
    data = out / "data"
    if data.exists():
        shutil.rmtree(data)
    write_mvtec(make_shapes(n_train, n_test, n_test, seed=seed, jitter="seed"), data)
    out_console.print(f"data: {n_train} good training images, {n_test} + {n_test} test images in {data}")
    options = ["min_steps=300"] if quick else []
    model = train_model(data, detector="autoencoder", seed=seed, options=options, quiet=quiet)
    model.save(out / "model")
    ev = run_evaluation(model, test_set(data))
    write_outputs(model, ev, out, title="kizu demo: the seed's ellipses (good) vs rectangles (defective)")
    print_confusion(ev.metrics)
    out_console.print(f"model: {out / 'model'}\nreport: {out / 'report.html'}")
