"""``kizu train``: learn normal from good images, calibrate, save the model."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.text import Text

from ..detectors import DEFAULT_DETECTOR, create, default_options
from ..detectors.registry import options_of
from ..errors import KizuError
from ..images import list_images, read_image, training_image_paths
from ..model import InspectionModel
from ..preprocess import MAX_SIDE
from ..torch_utils import resolve_device
from . import app
from .common import friendly_errors, out_console, parse_options, parse_size, training_progress


def train_model(data: Path, *, detector: str = DEFAULT_DETECTOR, preset: str | None = None, epochs: int | None = None,
                seed: int = 0, alpha: float = 0.05, threshold_rule: str = "conformal", delta: float = 0.1,
                calibration_fraction: float = 0.2, device: str = "auto", score: str | None = None,
                sigma: float | None = None, resize: str | None = None, options: list[str] | None = None,
                quiet: bool = False, calibration: str = "auto", folds: int = 5, tile: int | None = None,
                tile_stride: int | None = None, defective: Path | None = None,
                reference: bool | None = None, max_side: int = MAX_SIDE,
                template: bool | None = None) -> InspectionModel:
    """Everything ``kizu train`` does except saving (shared with ``kizu demo``)."""
    paths = training_image_paths(data)
    opts = {**default_options(detector), **parse_options(options or [])}
    accepted = options_of(detector)  # raises a clear error for an unknown detector
    for name, value in (("preset", preset), ("epochs", epochs), ("device", device)):
        if value is None or (name == "device" and value == "auto"):
            continue
        if name == "device" and name not in accepted:
            if resolve_device(value).type == "cpu":
                continue  # a detector without torch parts, asked to run on the CPU: it does
            raise KizuError(f"--device {value}: detector {detector!r} runs on the CPU only")
        if name not in accepted:
            raise KizuError(f"--{name}: detector {detector!r} has no such option")
        opts.setdefault(name, value)
    create(detector, **opts)  # a bad option value fails here, before the progress bar is drawn
    with training_progress(quiet) as progress:
        # files, not a list of images: at most one full-resolution image is held at a time
        return InspectionModel.train_files(
            paths, detector=detector, detector_options=opts, calibration_fraction=calibration_fraction,
            alpha=alpha, threshold_rule=threshold_rule, delta=delta, reducer=score, sigma=sigma, seed=seed,
            resize=parse_size(resize), progress=progress, calibration=calibration, folds=folds, tile=tile,
            tile_stride=tile_stride, defective_images=[read_image(p) for p in list_images(defective)] if defective else None,
            reference=reference, max_side=max_side, template=template)


def extra_options(args: list[str]) -> list[str]:
    """Unknown ``--name value`` / ``--name=value`` / ``--flag`` arguments → detector ``name=value`` options,
    so every detector's options work as flags (``--backbone lite0``) without CLI changes."""
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


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@friendly_errors
def train(
    ctx: typer.Context,
    data: Path = typer.Argument(..., help="MVTec-AD category folder (uses DATA/train/good) or a folder of good images"),
    out: Path = typer.Option(..., "--out", "-o", help="model folder to write (model.json + weights.safetensors)"),
    detector: str = typer.Option(DEFAULT_DETECTOR, help="detector name (see `kizu detectors`)"),
    preset: str = typer.Option(None, help="detector preset, e.g. autoencoder: seed | default | deep"),
    epochs: int = typer.Option(None, help="training epochs (neural detectors)"),
    seed: int = typer.Option(0, help="random seed: the same seed gives the same model and scores"),
    alpha: float = typer.Option(0.05, help="target false-alarm rate on good images"),
    threshold_rule: str = typer.Option("conformal", help="conformal (FAR <= alpha on average), conditional (FAR <= "
                                                         "alpha with probability >= 1 - delta) or train-quantile (the seed's)"),
    delta: float = typer.Option(0.1, help="conditional rule: allowed probability that the false-alarm rate exceeds alpha"),
    calibration_fraction: float = typer.Option(0.2, help="share of good images held out for calibration"),
    calibration: str = typer.Option("auto", help="holdout (CALIBRATION_FRACTION held out), cross (cross-conformal: "
                                                  "no image held out, FOLDS extra fits), auto: cross up to 300 images"),
    folds: int = typer.Option(5, help="folds for --calibration cross"),
    tile: int = typer.Option(None, help="inspect large images as overlapping TILE-px tiles (maps stitched back)"),
    tile_stride: int = typer.Option(None, help="tile stride in px (default 3/4 of --tile)"),
    defective: Path = typer.Option(None, help="folder of known defective images: Taguchi SN-ratio variable "
                                             "selection (detector mt)"),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    score: str = typer.Option(None, help="image score from the map: mean | max | topk | max+mean (default: the detector's)"),
    sigma: float = typer.Option(None, help="Gaussian smoothing of maps in px before max/topk and for display"),
    resize: str = typer.Option(None, help="resize every image to PX or WxH (accepts any input size)"),
    max_side: int = typer.Option(MAX_SIDE, help="inspect larger images scaled down to this many px on the longer side "
                                                "(maps stay at full resolution; 0 = never; --tile keeps full resolution)"),
    option: list[str] = typer.Option(None, "--option", "-O", help="detector option KEY=VALUE (repeatable)"),
    reference: bool = typer.Option(None, "--reference/--no-reference",
                                   help="score each image relative to the most similar good images (changes nothing "
                                        "when all good images are of one kind; default: on with the max+mean score)"),
    template: bool = typer.Option(None, "--template/--no-template",
                                  help="add a golden-template comparison to the maps and image score (parts in a fixture; "
                                       "default: on with the max+mean score when held-out good images are explained "
                                       "to R2 >= 0.99)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
):
    """Train on good images and save a calibrated model.

    Detector options can also be given as flags: `--backbone lite0`, `--k 3` (see `kizu detectors`).
    """
    option = list(option or []) + extra_options(ctx.args)
    model = train_model(data, detector=detector, preset=preset, epochs=epochs, seed=seed, alpha=alpha,
                        threshold_rule=threshold_rule, delta=delta, calibration_fraction=calibration_fraction, device=device,
                        score=score, sigma=sigma, resize=resize, options=option, quiet=quiet,
                        calibration=calibration, folds=folds, tile=tile, tile_stride=tile_stride,
                        defective=defective, reference=reference, max_side=max_side, template=template)
    model.save(out)
    c = model.calibration
    out_console.print(f"saved {out}: {model.summary['n_fit']} images fitted, {model.summary['n_calibration']} "
                      f"calibration, threshold {c.threshold:.6g} ({c.rule}, alpha={c.alpha:g})")
    out_console.print(c.statement())
    if model.reference is not None and model.reference.weight > 0:
        out_console.print(f"note: the good images are not all alike (similar images predict {model.reference.weight:.0%} "
                          f"of the spread of their scores): each score is taken relative to the most similar good images")
    if model.template is not None:
        out_console.print(f"note: the good images are one part in a fixture (a registered mean image explains "
                          f"{model.template.explained:.1%} of their pixel variance): maps and image scores add a "
                          f"golden-template comparison")
    for note in c.notes:
        out_console.print(f"note: {note}")


@app.command()
def detectors():
    """List the available detectors and the options `kizu train --detector NAME` uses by default."""
    from ..detectors import available

    for name in available():
        # what train uses: the class's defaults with kizu's chosen options for the default detector on top
        opts = ", ".join(f"{k}={v!r}" for k, v in {**options_of(name), **default_options(name)}.items())
        mark = " (the default)" if name == DEFAULT_DETECTOR else ""
        out_console.print(Text.assemble((name, "bold"), f"{mark}: {opts}"))
