"""``kizu predict``: inspect images with a saved model → results.csv (+ maps, overlays), in this
process (``--engine local``) or on Ray Data (``--engine ray``, ``kizu.engines.ray_predict``)."""

from __future__ import annotations

import csv
import importlib.util
import io
import os
import shutil
from pathlib import Path

import typer

from .common import friendly_errors, out_console, warn


def _mirrored(path: Path, root: Path, out_dir: Path, suffix: str) -> Path:
    """``out_dir/<path relative to root, new suffix>``."""
    return (out_dir / path.relative_to(root)).with_suffix(suffix)


def _check_distinct_outputs(found: list[tuple[Path, Path]]) -> None:
    """Two different images whose maps and overlays would land on the same file (``a.png`` and
    ``a.jpg`` in one folder; ``x.png`` from two folders given as files or as INPUTs) → KizuError
    naming both, before anything is written (one would silently overwrite the other)."""
    from ..errors import KizuError

    seen: dict[Path, Path] = {}
    for path, root in found:
        target = _mirrored(path, root, Path(), "")
        first = seen.setdefault(target, path)
        if first.resolve() != path.resolve():
            raise KizuError(f"{first} and {path} would write the same map/overlay file ({target}.*); "
                            "rename one, or run kizu predict on them separately")


def check_output_paths(out: Path, folders: list[Path | None]) -> None:
    """Refuse, before any work, a results file that is a folder and output folders that are files."""
    from ..errors import KizuError

    if out.is_dir():
        raise KizuError(f"{out}: is a folder; --out names the results CSV file to write")
    for folder in folders:
        if folder is not None and folder.exists() and not folder.is_dir():
            raise KizuError(f"{folder}: exists and is not a folder")


class Staging:
    """Maps and overlays are written beside their folder first and moved into it once every image
    was read and inspected: a bad file leaves no partial output."""

    def __init__(self, folder: Path | None):
        self.folder = folder
        self.tmp = None
        if folder is not None:
            folder.parent.mkdir(parents=True, exist_ok=True)
            self.tmp = folder.parent / f".{folder.name}.kizu-{os.getpid()}"
            shutil.rmtree(self.tmp, ignore_errors=True)

    def path(self, relative: Path) -> Path:
        target = self.tmp / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def commit(self) -> None:
        if self.tmp is None or not self.tmp.exists():
            return
        for staged in sorted(p for p in self.tmp.rglob("*") if p.is_file()):
            final = self.folder / staged.relative_to(self.tmp)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, final)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def discard(self) -> None:
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)


#: engines ``kizu predict`` runs on
ENGINES = ("local", "ray")


@friendly_errors
def predict(
    model_dir: Path = typer.Argument(..., metavar="MODEL_OR_BUNDLE",
                                     help="model folder (`kizu train`) or bundle folder (`kizu export`)"),
    inputs: list[str] = typer.Argument(..., metavar="INPUT...",
                                       help="image files or folders (searched recursively); with --engine ray "
                                            "also globs, .txt/.csv lists of paths and URIs (s3://...)"),
    out: Path = typer.Option(..., "--out", "-o", help="results file: path, score, p_value, defective, ... "
                                                      "(.csv; with --engine ray also .parquet)"),
    maps: Path = typer.Option(None, help="write one float32 .npy anomaly map per image (H, W) here"),
    overlays: Path = typer.Option(None, help="write one PNG overlay per image here (heat map + defect boxes)"),
    device: str = typer.Option(None, help="torch runtime: auto (a CUDA GPU when there is one) | cpu | cuda"),
    runtime: str = typer.Option(None, help="torch | onnx (default: onnx for a bundle, torch for a model)"),
    batch_size: int = typer.Option(64, min=1, help="images inspected at once"),
    engine: str = typer.Option("local", help="local (this process) | ray (Ray Data: many processes or machines; "
                                             "pip install 'kizu[ray]')"),
    address: str = typer.Option(None, help="ray: the cluster (auto | ray://HOST:10001 | HOST:6379); default: "
                                           "start Ray on this machine"),
    workers: int = typer.Option(None, min=1, help="ray: scoring actors, each loading the model once "
                                                  "(default: one per CPU, or per --gpus-per-worker GPUs)"),
    gpus_per_worker: float = typer.Option(0.0, min=0, help="ray: GPUs each worker takes (0: CPU only)"),
    resume: bool = typer.Option(False, "--resume", help="ray: keep the rows already in --out (and of a killed "
                                                        "run); inspect only the other files and failed ones"),
):
    """Inspect images; writes results.csv (+ maps, overlays).

    Local engine: nothing is written unless every input is a readable image of a size the model
    takes. Ray engine: a file that cannot be inspected gets a row with its error; results are
    written in parts as they come, so --resume continues a killed run.
    """
    if engine not in ENGINES:
        from ..errors import KizuError

        raise KizuError(f"--engine {engine}: choose local or ray")
    if engine == "ray":
        _predict_on_ray(model_dir, inputs, out, runtime, address=address, workers=workers, batch_size=batch_size,
                        gpus_per_worker=gpus_per_worker, device=device, resume=resume, maps=maps, overlays=overlays)
        return
    _refuse_ray_options(out, address=address, workers=workers, gpus_per_worker=gpus_per_worker, resume=resume)
    _predict_locally(model_dir, [Path(i) for i in inputs], out, maps, overlays, device, runtime, batch_size)


def _refuse_ray_options(out: Path, **given) -> None:
    """Options of the Ray engine given without it, or a Parquet OUT → KizuError naming them."""
    from ..errors import KizuError

    used = [f"--{k.replace('_', '-')}" for k, v in given.items() if v not in (None, False, 0.0)]
    if used:
        raise KizuError(f"{', '.join(used)}: only with --engine ray")
    if out.suffix.lower() == ".parquet":
        raise KizuError(f"{out}: the local engine writes CSV; name a .csv file, or use --engine ray for Parquet")


def _predict_locally(model_dir: Path, inputs: list[Path], out: Path, maps: Path | None, overlays: Path | None,
                     device: str | None, runtime: str | None, batch_size: int) -> None:
    """Every file read and inspected in this process; nothing is written unless all succeed."""
    from ..io import atomic_write_text, expand_inputs

    check_output_paths(out, [maps, overlays])
    if overlays is not None and importlib.util.find_spec("matplotlib") is None:
        from ..errors import KizuError

        raise KizuError("--overlays needs matplotlib, which is not installed here (pip install matplotlib)")
    model = open_model(model_dir, runtime, device)
    found = expand_inputs(inputs)
    if maps is not None or overlays is not None:
        _check_distinct_outputs(found)
    staged = [Staging(maps), Staging(overlays)]
    try:
        text, n_bad, p_values, channels = _inspect_all(model, found, staged[0], staged[1], batch_size)
    except BaseException:
        for s in staged:
            s.discard()
        raise
    for s in staged:
        s.commit()
    atomic_write_text(out, text)
    out_console.print(f"inspected {len(found)} images: {n_bad} defective, {len(found) - n_bad} good → {out}")
    for message in batch_warnings(model, p_values, channels):
        warn(message)


def open_model(path: Path, runtime: str | None, device: str | None):
    """A model folder or an exported bundle, with the runtime asked for: a bundle runs in onnxruntime;
    a model runs in PyTorch, or (``onnx``) is exported to a temporary bundle first (checked as
    ``kizu export`` checks it)."""
    import tempfile

    from ..errors import KizuError
    from ..io.bundle import is_bundle, load_bundle

    if runtime not in (None, "torch", "onnx"):
        raise KizuError(f"--runtime {runtime!r}: expected torch or onnx")
    if is_bundle(path):
        if runtime == "torch":
            raise KizuError(f"{path}: an exported bundle runs in onnxruntime only (--runtime onnx)")
        return load_bundle(path)
    try:
        from ..io.model_file import load_model

        model = load_model(path, device=device)
    except ModuleNotFoundError as err:  # a line PC with onnxruntime only
        raise KizuError(f"{path}: a model folder needs {err.name}, which is not installed here; export it "
                        "(kizu export MODEL --out BUNDLE) and predict with the bundle") from None
    if runtime != "onnx":
        return model
    from ..export.bundle import export_bundle

    with tempfile.TemporaryDirectory(prefix="kizu-bundle-") as tmp:  # the session holds the graph in memory
        export_bundle(model, Path(tmp) / "bundle")
        return load_bundle(Path(tmp) / "bundle")


def _predict_on_ray(model_dir: Path, inputs: list[str], out: Path, runtime: str | None, **options) -> None:
    """Inspect on Ray Data (``kizu.engines.ray_predict``, ``options`` those of its ``RayOptions``);
    print a summary and the batch warnings."""
    from ..engines import require_ray
    from ..errors import KizuError
    from ..io.bundle import is_bundle

    bundle = is_bundle(model_dir)
    if runtime == "onnx" and not bundle:
        raise KizuError(f"{model_dir}: --engine ray runs a model folder in PyTorch and a bundle in onnxruntime; "
                        "export the model (kizu export) to run it in onnxruntime")

    require_ray()
    from ..engines.ray_predict import RayOptions, predict_with_ray

    check_output_paths(out, [options["maps"], options["overlays"]])
    model = open_model(model_dir, None, "cpu")  # a damaged model stops here, before Ray starts
    summary = predict_with_ray(model_dir, inputs, out, RayOptions(runtime="onnx" if bundle else "torch", **options))
    for line in ray_summary(summary):
        out_console.print(line)
    if summary.discarded_parts:
        warn(f"the {summary.discarded_parts} parts of an unfinished earlier run were discarded "
             "(--resume keeps them)")
    if summary.errors:
        warn(f"{summary.errors} files could not be inspected: see the error column of {out} "
             "(--resume tries them again)")
    for message in batch_warnings(model, summary.p_values, summary.channels):
        warn(message)


def ray_summary(s) -> list[str]:
    """The closing lines of a Ray run: what was inspected, how fast, where it went."""
    if not s.inspected:
        return [f"nothing to inspect: all {s.listed} images are already in {s.out} (--resume)"]
    good = s.inspected - s.defective - s.errors
    lines = [f"inspected {s.inspected} images on Ray ({s.workers} workers) in {s.seconds:.1f} s "
             f"({s.images_per_second:.1f} images/s): {s.defective} defective, {good} good, {s.errors} errors"]
    if s.skipped:
        lines.append(f"skipped {s.skipped} of {s.listed} images already in {s.out} (--resume)")
    lines.append(f"{s.listed} images → {s.out}")
    return lines


def _inspect_all(model, found: list[tuple[Path, Path]], maps: Staging, overlays: Staging, batch_size: int
                 ) -> tuple[str, int, list[float], list[int]]:
    """Each file read once and inspected; CSV text, the number flagged, the p-values and the images'
    channel counts."""
    import numpy as np

    from ..files import CSV_COLUMNS, csv_row, iter_inspect_files
    from ..model.preprocess import is_effectively_grey

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    n_bad, p_values, channels = 0, [], []
    results = iter_inspect_files(model, [p for p, _ in found], batch_size=batch_size)
    for (path, root), (_, img, v) in zip(found, results):
        n_bad += v.defective
        p_values.append(v.p_value)
        channels.append(img.shape[0] if img.shape[0] == 1 or not is_effectively_grey(img) else 1)
        writer.writerow(csv_row(path, v))
        relative = path.relative_to(root)
        if maps.folder is not None:
            np.save(maps.path(relative.with_suffix(".npy")), v.anomaly_map.astype(np.float32))
        if overlays.folder is not None:
            _write_overlay(overlays.path(relative.with_suffix(".png")), img, v, model.calibration.pixel_threshold,
                           f"{relative}: {'DEFECTIVE' if v.defective else 'good'} (p={v.p_value:.3g})")
    return buf.getvalue(), n_bad, p_values, channels


#: batches at least this large are tested for drift from the calibration images
DRIFT_BATCH = 20


def batch_warnings(model, p_values: list[float], channels: list[int]) -> list[str]:
    """Plain warnings about a whole batch: it does not look like the calibration images (the drift
    test of ``kizu drift``, for batches of at least ``DRIFT_BATCH``), or its images are colour for a
    grey model or grey for a colour model."""
    n = len(p_values)
    out = _drift_warnings(model, p_values) if n >= DRIFT_BATCH and len(model.calibration.scores) else []
    expected = model.preprocessor.channels
    odd = sum(c != expected for c in channels)
    if odd:
        kind, want = ("colour", "grey") if expected == 1 else ("grey", "colour")
        out.append(f"{odd} of {n} images are {kind} but the model was trained on {want} images: they were "
                   f"converted to {want}.")
    return out


def _drift_warnings(model, p_values: list[float]) -> list[str]:
    try:
        from ..calibration.drift import drift_test
    except ModuleNotFoundError as err:  # a line PC with onnxruntime only
        return [f"the batch was not tested for drift ({err.name} is not installed)"]
    n = len(p_values)
    res = drift_test(p_values, len(model.calibration.scores), alpha=model.calibration.alpha)
    if not res.drifted:
        return []
    return [f"{res.n_flagged} of {n} images flagged (about {res.expected_flagged:.0f} expected of good images): "
            f"this batch does not look like the training images — different camera, format or lighting? If "
            f"these parts are good, run `kizu drift` and retrain or recalibrate."]


def _write_overlay(path: Path, image, verdict, pixel_threshold: float, title: str) -> None:
    from ..evaluation import plots

    fig = plots.overlay_figure(image, verdict.anomaly_map, pixel_threshold, verdict.regions, title)
    path.write_bytes(plots.figure_png(fig))
