"""``kizu demo``: the whole job on built-in data (the seed's ellipses vs rectangles)."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer

from .common import friendly_errors, out_console, print_confusion
from .train import train_model


@friendly_errors
def demo(
    out: Path = typer.Option(Path("kizu-demo"), "--out", "-o", help="output folder (replaced if it is a demo folder)"),
    quick: bool = typer.Option(False, help="smaller data and shorter training (seconds)"),
    seed: int = typer.Option(0, help="random seed"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
):
    """Run the whole job on built-in data; writes OUT/report.html.

    Generates the seed's data set (ellipses good, rectangles defective), trains, calibrates and
    evaluates.
    """
    from ..evaluation import evaluate as run_evaluation
    from ..evaluation import write_outputs
    from ..io import save_model, test_set
    from ..model import TrainConfig
    from ..synth import make_shapes, write_mvtec

    n_train, n_test = (200, 100) if quick else (1000, 500)
    data = out / "data"
    if data.exists():
        shutil.rmtree(data)
    write_mvtec(make_shapes(n_train, n_test, n_test, seed=seed, jitter="seed"), data)
    out_console.print(f"data: {n_train} good training images, {n_test} + {n_test} test images in {data}")
    config = TrainConfig(detector="autoencoder", options={"min_steps": 300} if quick else {}, seed=seed)
    model = train_model(data, config, quiet=quiet, out=out / "model")
    save_model(model, out / "model")
    ev = run_evaluation(model, test_set(data))
    write_outputs(model, ev, out, title="kizu demo: the seed's ellipses (good) vs rectangles (defective)")
    print_confusion(ev.metrics)
    out_console.print(f"model: {out / 'model'}\nreport: {out / 'report.html'}")
