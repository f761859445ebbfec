"""``kizu train``: learn normal from good images, calibrate, save the model."""

from __future__ import annotations

from pathlib import Path

import typer

from .. import defaults
from .common import friendly_errors, out_console, parse_options, parse_size, training_progress


def extra_options(args: list[str]) -> list[str]:
    """Unknown ``--name value`` / ``--name=value`` / ``--flag`` arguments → detector ``name=value`` options,
    so every detector's options work as flags (``--backbone lite0``) without CLI changes."""
    from ..errors import KizuError

    out, i = [], 0
    while i < len(args):
        a = args[i]
        if not a.startswith("--"):
            raise KizuError(f"unexpected argument {a!r}")
        key = a[2:]
        if "=" in key:
            out.append(key)
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            out.append(f"{key}={args[i + 1]}")
            i += 1
        else:
            out.append(f"{key}=true")
        i += 1
    return out


def train_model(data: Path, config, *, quiet: bool = False, defective: Path | None = None, device: str = "auto",
                out: Path | None = None):
    """Everything ``kizu train`` does except saving (shared with ``kizu demo``): the training images
    of ``data`` through ``kizu.fit_model`` with ``config`` (a ``kizu.TrainConfig``). ``out`` is
    checked before any work."""
    from ..detectors import create, detector_class, resolve_device
    from ..errors import InputError, KizuError
    from ..io import ImageFiles, list_images, read_image, training_image_paths
    from ..io.model_file import check_model_destination
    from ..model import fit_model
    from ..model.training import calibration_plan

    if out is not None:
        check_model_destination(out)
    paths = training_image_paths(data)
    try:
        calibration_plan(len(paths), config)
    except KizuError as err:
        raise InputError(paths[0].parent, str(err)) from None
    if device != "auto" and not detector_class(config.detector).uses_device and resolve_device(device).type != "cpu":
        raise KizuError(f"--device {device}: detector {config.detector!r} runs on the CPU only")
    create(config.detector, **config.options)  # a bad option value fails here, before the progress bar is drawn
    bad = [read_image(p) for p in list_images(defective)] if defective else None
    with training_progress(quiet) as progress:
        # files, not a list of images: at most one full-resolution image is held at a time
        return fit_model(ImageFiles(paths), config, paths=paths, progress=progress, defective_images=bad,
                         device=device if detector_class(config.detector).uses_device else "auto")


@friendly_errors
def train(
    ctx: typer.Context,
    data: Path = typer.Argument(..., metavar="DATA",
                                help="MVTec-AD category folder (uses DATA/train/good) or a folder of good images"),
    out: Path = typer.Option(..., "--out", "-o", help="model folder to write (model.json + weights.safetensors)"),
    detector: str = typer.Option(defaults.DETECTOR, help="detector name (see `kizu detectors`)"),
    preset: str = typer.Option(None, help="detector preset, e.g. autoencoder: seed | default | deep"),
    epochs: int = typer.Option(None, help="training epochs (neural detectors)"),
    seed: int = typer.Option(defaults.SEED, help="random seed: the same seed gives the same model and scores"),
    alpha: float = typer.Option(defaults.ALPHA, help="target false-alarm rate on good images"),
    threshold_rule: str = typer.Option(defaults.THRESHOLD_RULE, help="conformal (FAR <= alpha on average), conditional "
                                       "(FAR <= alpha with probability >= 1 - delta), train-quantile"),
    delta: float = typer.Option(defaults.DELTA, help="conditional rule: allowed probability that FAR exceeds alpha"),
    calibration: str = typer.Option(defaults.CALIBRATION, help="holdout, cross (cross-conformal), loo (one "
                                    "model scores each image without its own memory rows; patch-knn untiled), auto: "
                                    "loo where possible, else cross up to 300 images, else holdout"),
    calibration_fraction: float = typer.Option(defaults.CALIBRATION_FRACTION, help="holdout: share of good images "
                                               "held out"),
    folds: int = typer.Option(defaults.FOLDS, help="cross: folds"),
    score: str = typer.Option(None, help="image score from the map: mean | max | topk | max+mean"),
    sigma: float = typer.Option(None, help=f"Gaussian smoothing of maps in px (default {defaults.SIGMA:g})"),
    resize: str = typer.Option(None, help="resize every image to PX or WxH (accepts any input size)"),
    max_side: int = typer.Option(defaults.MAX_SIDE, help="inspect larger images scaled down to this many px "
                                 "(0 = never)"),
    tile: int = typer.Option(None, help="inspect large images as overlapping TILE-px tiles"),
    tile_stride: int = typer.Option(None, help="tile stride in px (default 3/4 of --tile)"),
    reference: bool = typer.Option(None, "--reference/--no-reference",
                                   help="score relative to similar good images (default: with max+mean)"),
    template: bool = typer.Option(None, "--template/--no-template",
                                  help="golden-template comparison (default: for parts in a fixture)"),
    defective: Path = typer.Option(None, help="known defective images: Taguchi variable selection (mt)"),
    option: list[str] = typer.Option(None, "--option", "-O", help="detector option KEY=VALUE (repeatable)"),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
):
    """Train on good images and save a calibrated model.

    Detector options can also be given as flags: `--backbone lite0`, `--k 3` (see `kizu detectors`).
    """
    from ..io import save_model
    from ..model import TrainConfig

    options = parse_options(list(option or []) + extra_options(ctx.args))
    for name, value in (("preset", preset), ("epochs", epochs)):
        if value is not None:
            options.setdefault(name, value)
    config = TrainConfig(detector=detector, options=options, seed=seed, alpha=alpha, threshold_rule=threshold_rule,
                         delta=delta, calibration=calibration, calibration_fraction=calibration_fraction,
                         folds=folds, score=score, sigma=sigma, resize=parse_size(resize), max_side=max_side,
                         tile=tile, tile_stride=tile_stride, reference=reference, template=template)
    model = train_model(data, config, quiet=quiet, defective=defective, device=device, out=out)
    save_model(model, out)
    report_training(model, out)


def report_training(model, out: Path) -> None:
    """What ``kizu train`` prints after saving: counts, threshold, what it means, notes."""
    c = model.calibration
    out_console.print(f"saved {out}: {model.summary['n_fit']} images fitted, {model.summary['n_calibration']} "
                      f"calibration, threshold {c.threshold:.6g} ({c.rule}, alpha={c.alpha:g})")
    out_console.print(f"preprocessing: {model.preprocessor.describe()}")
    out_console.print(c.statement())
    if model.reference is not None and model.reference.weight > 0:
        out_console.print(f"note: the good images are not all alike (similar images predict "
                          f"{model.reference.weight:.0%} of the spread of their scores): each score is taken "
                          "relative to the most similar good images")
    if model.template is not None:
        out_console.print(f"note: the good images are one part in a fixture (a registered mean image explains "
                          f"{model.template.explained:.1%} of their pixel variance): maps and image scores add a "
                          f"golden-template comparison")
    for note in c.notes:
        out_console.print(f"note: {note}")


def detectors():
    """List the detectors and explain their options.

    Each option with the value `kizu train` uses and what it does.
    """
    from rich.table import Table

    from ..detectors import DEFAULT_DETECTOR as default
    from ..detectors import available, detector_class

    for name in available():
        cls = detector_class(name)
        mark = " (the default)" if name == default else ""
        presets = ", ".join(sorted(cls.presets))
        table = Table(title=f"{name}{mark} — presets: {presets}", title_justify="left", show_header=True,
                      header_style="bold", box=None, pad_edge=False)
        table.add_column("option", no_wrap=True)
        table.add_column("default", no_wrap=True)
        table.add_column("what it does")
        for opt, value, text in cls.option_help():
            if opt != "preset":
                table.add_row(opt, repr(value), text)
        out_console.print(table)
        out_console.print()
