"""The ``kizu`` command line (Typer). Thin: every command calls the Python API, importing it inside
the command so ``kizu --help`` does not wait for PyTorch. Commands are listed in workflow order."""

from __future__ import annotations

import typer

from . import demo, drift, evaluate, export, predict, serve, synth, threshold, train

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  context_settings={"max_content_width": 100},
                  help="kizu: visual inspection by anomaly detection, learnt from good images only.")

app.command()(demo.demo)
app.command()(synth.synth)
app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(train.train)
app.command()(predict.predict)
app.command()(evaluate.evaluate)
app.command()(threshold.threshold)
app.command()(drift.drift)
app.command()(export.export)
app.command()(serve.serve)
app.command()(serve.watch)
app.command()(serve.recalibrate)
app.command()(train.detectors)

__all__ = ["app"]
