"""The ``kizu`` command line (Typer). Thin: every command calls the Python API."""

from __future__ import annotations

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="kizu: visual inspection by anomaly detection, learnt from good images only.")

# each module registers its commands on ``app``
from . import bench, demo, drift, evaluate, predict, synth, threshold, train  # noqa: E402,F401

__all__ = ["app"]
