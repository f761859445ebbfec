"""``kizu drift``: do supposedly good images still look like the calibration set?"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from .common import friendly_errors, out_console


@friendly_errors
def drift(
    model_dir: Path = typer.Argument(..., metavar="MODEL"),
    images: list[Path] = typer.Argument(..., metavar="IMAGES...",
                                        help="good images (files or folders) from current production"),
    level: float = typer.Option(0.01, help="significance level of the test"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
    exit_code: bool = typer.Option(False, help="exit with status 3 when drift is detected"),
):
    """Check that good images still look like the calibration set.

    Tests whether a batch of good images from current production has the p-values good images
    should have; exit status 3 with --exit-code when they do not.
    """
    from ..calibration.drift import drift_test
    from ..errors import KizuError
    from ..files import score_files
    from ..io import expand_inputs, load_model

    model = load_model(model_dir)
    n_cal = len(model.calibration.scores)
    if n_cal == 0:
        raise KizuError(f"{model_dir}: the model has no held-out calibration scores "
                        "(trained with calibration fraction 0)")
    paths = [p for p, _ in expand_inputs(images)]
    p = model.calibration.p_values(score_files(model, paths))
    res = drift_test(p, n_cal, alpha=model.calibration.alpha, level=level)
    if as_json:
        typer.echo(json.dumps(res.to_dict(), indent=2))
    else:
        out_console.print(res.message)
    if exit_code and res.drifted:
        raise typer.Exit(3)
