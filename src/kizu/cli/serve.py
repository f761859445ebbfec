"""``kizu serve``, ``kizu watch`` and ``kizu recalibrate``: inspection as a service, on a drop folder,
and recalibration from the operators' audit sample (code in ``kizu.service``)."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import friendly_errors, out_console


@friendly_errors
def serve(
    model_dir: Path = typer.Argument(..., metavar="MODEL_OR_BUNDLE",
                                     help="model folder (`kizu train`) or bundle (`kizu export`)"),
    host: str = typer.Option("127.0.0.1", help="address to bind (0.0.0.0: every interface; use --token-file then)"),
    port: int = typer.Option(8000, help="TCP port"),
    token_file: Path = typer.Option(None, help="file holding a bearer token every route but /healthz requires"),
    keep: Path = typer.Option(None, help="write every upload and its result here (off: uploads stay in memory)"),
    reviews: Path = typer.Option(None, help="operator reviews folder [default: kizu-reviews beside --keep, "
                                            "else ./kizu-reviews]"),
    audit_rate: float = typer.Option(0.0, help="share of all inspected images the page asks the operator to "
                                               "confirm (the audit sample `kizu recalibrate` uses), e.g. 0.02"),
    max_body_mb: float = typer.Option(20.0, help="largest request body, MB"),
    max_files: int = typer.Option(32, help="most images in one batch request"),
    max_pixels: int = typer.Option(40_000_000, help="largest image, in pixels (decompression bombs)"),
    history: int = typer.Option(200, help="recent inspections kept in memory for overlays and reviews"),
    batch_window_ms: float = typer.Option(5.0, help="how long the first request of a batch waits for company"),
    max_batch: int = typer.Option(32, help="most images inspected at once"),
    max_queue: int = typer.Option(256, help="most images waiting; beyond it requests get 503 + Retry-After"),
    audit_seed: int = typer.Option(None, hidden=True, help="seed of the audit draws (tests); default: the OS"),
    log_level: str = typer.Option("info", help="debug | info | warning | error"),
    access_log: bool = typer.Option(False, help="log every request"),
):
    """Serve a model over HTTP, with the operator page at /.

    JSON API under /v1, Prometheus /metrics, OpenAPI docs at /docs. SIGHUP reloads the model.
    """
    from ..service.app import ServiceConfig
    from ..service.security import read_token
    from ..service.server import serve as run

    if reviews is None:
        reviews = (keep.parent if keep is not None else Path(".")) / "kizu-reviews"
    config = ServiceConfig(model=model_dir, token=read_token(token_file) if token_file else None, keep=keep,
                           reviews=reviews, audit_rate=audit_rate, max_body=int(max_body_mb * 1024 * 1024),
                           max_files=max_files, max_pixels=max_pixels, history=history,
                           batch_window_ms=batch_window_ms, max_batch=max_batch, max_queue=max_queue,
                           seed=audit_seed)
    run(config, host, port, log_level=log_level, access_log=access_log)


@friendly_errors
def watch(
    model_dir: Path = typer.Argument(..., metavar="MODEL_OR_BUNDLE",
                                     help="model folder (`kizu train`) or bundle (`kizu export`)"),
    folder: Path = typer.Argument(..., metavar="DIR", help="the camera's drop folder"),
    out: Path = typer.Option(Path("results.csv"), "--out", "-o", help="results CSV (kizu predict's columns), appended"),
    move: bool = typer.Option(False, help="move inspected files into DIR/good/ and DIR/defective/"),
    once: bool = typer.Option(False, help="inspect what is there, then exit (tests, cron)"),
    interval: float = typer.Option(1.0, help="seconds between polls of the folder"),
):
    """Inspect image files as they appear in a camera's drop folder.

    Appends one results row per image; corrupt files go to DIR/rejected/. Ctrl-C stops.
    """
    from ..service.watch import open_watcher

    watcher = open_watcher(model_dir, folder, out, move=move, interval=interval, echo=out_console.print)
    for line in watcher.stats.recovered:
        out_console.print(f"recovered: {line}")
    stats = watcher.run(once=once)
    out_console.print(f"inspected {stats.inspected} images: {stats.defective} defective, "
                      f"{stats.inspected - stats.defective} good, {stats.rejected} rejected → {out}")


@friendly_errors
def recalibrate(
    model_dir: Path = typer.Argument(..., metavar="MODEL", help="model folder to update"),
    audit: Path = typer.Argument(..., metavar="AUDIT", help="the audit folder kizu serve writes (REVIEWS/audit)"),
):
    """Recalibrate the threshold from the operators' audit sample.

    Adds audited-good images (the random audit sample only) to the calibration set.
    """
    from ..service.reviews import recalibrate as run

    res = run(model_dir, audit)
    out_console.print(f"added {res.added} audited-good images ({res.skipped} already in): {res.n_calibration} "
                      f"calibration images; threshold {res.old_threshold:.6g} → {res.new_threshold:.6g}")
    out_console.print(res.statement)
