"""The FastAPI application of ``kizu serve``: inspection API, operator page, metrics, reload.

``create_app(ServiceConfig(...))`` builds it; ``kizu serve`` runs it with uvicorn.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import secrets
import signal
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import _kizu
from .batching import Batcher, ModelHandle, QueueFull, ShuttingDown
from .errors import ServiceError
from .history import History, InspectionRecord, scaled_regions, small_map
from .keep import KeepWriter
from .metrics import Metrics
from .reviews import LABELS, ReviewStore
from .security import TokenAuth
from .uploads import Upload, read_uploads
from .words import p_value_words

log = logging.getLogger("kizu.service")
STATIC = Path(__file__).parent / "static"


@dataclass
class ServiceConfig:
    """Everything ``kizu serve``'s options set (defaults are the CLI's)."""

    model: Path
    token: str | None = None
    keep: Path | None = None
    reviews: Path = Path("kizu-reviews")
    audit_rate: float = 0.0
    max_body: int = 20 * 1024 * 1024
    max_files: int = 32
    max_pixels: int = 40_000_000
    history: int = 200
    history_mb: int = 512
    batch_window_ms: float = 5.0
    max_batch: int = 32
    max_queue: int = 256
    recent: int = 500
    seed: int | None = None  #: audit draws; None: from the OS

    def check(self) -> None:
        """Raise ServiceError naming the first option out of range."""
        if not 0 <= self.audit_rate <= 1:
            raise ServiceError(400, f"--audit-rate must be in [0, 1], not {self.audit_rate}")
        for name in ("max_body", "max_files", "max_pixels", "history", "history_mb", "max_batch", "recent"):
            if getattr(self, name) < 1:
                raise ServiceError(400, f"--{name.replace('_', '-')} must be at least 1, not {getattr(self, name)}")
        if self.max_queue < max(self.max_batch, self.max_files):
            raise ServiceError(400, f"--max-queue ({self.max_queue}) must be at least --max-batch and --max-files")


def load_handle(path: Path) -> ModelHandle:
    """Load, identify and warm up a model (blocking: run it off the event loop)."""
    model = _kizu.load_model(path)
    mid = _kizu.model_id(path)
    _kizu.warm_up(model)
    return ModelHandle(model, mid, str(path), time.time(), _kizu.calibration_params(model))


class Service:
    """State shared by the routes: the model slot, the batcher, recent inspections, reviews."""

    def __init__(self, config: ServiceConfig, handle: ModelHandle | None = None):
        config.check()
        self.config = config
        self.handle = handle
        self.metrics = Metrics(config.recent)
        self.history = History(config.history, config.history_mb << 20)
        self.reviews = ReviewStore(config.reviews)
        self.keep = KeepWriter(config.keep) if config.keep is not None else None
        self.rng = random.Random(config.seed) if config.seed is not None else random.SystemRandom()
        self.batcher = Batcher(self.current, window_s=config.batch_window_ms / 1000.0, max_batch=config.max_batch,
                               max_queue=config.max_queue, on_batch=self._on_batch)
        self.reload_lock = asyncio.Lock()
        self.started = time.time()
        self.tally = {"inspected": 0, "defective": 0, "reviewed": 0}
        if handle is not None:
            self._announce(handle)

    def current(self) -> ModelHandle:
        if self.handle is None:
            raise ServiceError(503, "the model is still loading", {"Retry-After": "1"})
        return self.handle

    def _announce(self, handle: ModelHandle) -> None:
        self.metrics.set_model(handle.model_id, handle.params["detector"], handle.params["alpha"])

    def _on_batch(self, handle: ModelHandle, verdicts: list, seconds: float) -> None:
        m = self.metrics
        m.batch_size.observe(len(verdicts))
        m.batch_seconds.observe(seconds)
        m.observe_verdicts([v.p_value for v in verdicts], [v.defective for v in verdicts], handle.params["alpha"])

    async def load(self) -> None:
        """Load the configured model at start-up (off the event loop)."""
        handle = await run_in_threadpool(load_handle, self.config.model)
        self.handle = handle
        self._announce(handle)

    async def reload(self) -> dict:
        """Load the model folder again and swap it in; batches already running finish on the old one.
        A model that fails to load leaves the old one serving (ServiceError 422)."""
        async with self.reload_lock:
            old = self.handle
            t0 = time.perf_counter()
            try:
                handle = await run_in_threadpool(load_handle, self.config.model)
            except _kizu.KizuError as err:
                self.metrics.reloads.labels("failed").inc()
                raise ServiceError(422, f"reload failed, still serving the previous model: {err}") from None
            self.handle = handle  # one reference assignment: the swap is atomic
            self._announce(handle)
            self.metrics.reloads.labels("ok").inc()
            log.info("model reloaded: %s -> %s", old.model_id if old else None, handle.model_id)
            return {"model_id": handle.model_id, "previous_model_id": old.model_id if old else None,
                    "load_ms": round(1000 * (time.perf_counter() - t0), 1)}

    # -- inspection ------------------------------------------------------------------------------
    def decode(self, uploads: list[Upload], handle: ModelHandle) -> list[np.ndarray]:
        """Decode and size-check every upload before any is inspected (blocking; in a thread)."""
        images = []
        for up in uploads:
            try:
                img = _kizu.decode_image(up.data, up.name, self.config.max_pixels)
                _kizu.check_size(handle.model, img, up.name)
            except _kizu.UploadError as err:
                raise ServiceError(err.status, str(err)) from None
            except _kizu.InputError as err:
                raise ServiceError(422, str(err)) from None
            images.append(img)
        return images

    async def inspect(self, uploads: list[Upload], t0: float) -> list[dict]:
        """Decode, queue, inspect, record: one result dict per upload."""
        images = await run_in_threadpool(self.decode, uploads, self.current())
        try:
            res = await self.batcher.submit(images, [u.name for u in uploads])
        except QueueFull as err:
            raise ServiceError(503, str(err), {"Retry-After": str(err.retry_after)}) from None
        except ShuttingDown as err:
            raise ServiceError(503, str(err), {"Retry-After": "5"}) from None
        except _kizu.InputError as err:  # the model was reloaded with another size meanwhile
            raise ServiceError(422, str(err)) from None
        elapsed = 1000.0 * (time.perf_counter() - t0)
        records = [self._record(up, img, v, res.handle, elapsed, res.inference_ms)
                   for up, img, v in zip(uploads, images, res.verdicts)]
        if self.keep is not None:
            await run_in_threadpool(self.keep.save_all, records)
        return [r.result for r in records]

    def _record(self, up: Upload, image: np.ndarray, v, handle: ModelHandle, elapsed_ms: float,
                inference_ms: float) -> InspectionRecord:
        rec_id = secrets.token_hex(8)
        audit = self.config.audit_rate > 0 and self.rng.random() < self.config.audit_rate
        result = result_json(rec_id, up.name, v, handle, image.shape, elapsed_ms, inference_ms, audit)
        amap, stride = small_map(v.anomaly_map)
        rec = InspectionRecord(rec_id, up.name, up.data, _kizu.upload_suffix(up.data), result, amap, stride,
                               handle.params["pixel_threshold"], audit)
        self.history.add(rec)
        self.tally["inspected"] += 1
        self.tally["defective"] += int(v.defective)
        return rec

    def overlay(self, rec: InspectionRecord) -> bytes:
        """The record's overlay PNG, rendered on first request (blocking; in a thread)."""
        if rec.overlay is None:
            image = _kizu.decode_image(rec.data, rec.name, self.config.max_pixels)[:, ::rec.stride, ::rec.stride]
            r = rec.result
            title = f"{rec.name}: {'DEFECTIVE' if r['defective'] else 'good'} (p={_fmt(r['p_value'])})"
            png = _kizu.overlay_png(image, rec.anomaly_map.astype(np.float32),
                                    scaled_regions(r["regions"], rec.stride), rec.pixel_threshold, title)
            self.history.set_overlay(rec, png)
            return png
        return rec.overlay

    def record(self, rec_id: str) -> InspectionRecord:
        rec = self.history.get(rec_id)
        if rec is None:
            raise ServiceError(404, f"inspection {rec_id!r} is unknown or no longer in the recent history "
                                    f"(the last {self.config.history} inspections)")
        return rec

    def review(self, rec: InspectionRecord, label: str) -> dict:
        """Save a reviewed upload (blocking; in a thread)."""
        first = rec.review is None
        rec.saved = self.reviews.save(rec, label)
        rec.review = label
        self.tally["reviewed"] += int(first)
        self.metrics.reviews.labels(label, str(rec.audit).lower()).inc()
        return {"id": rec.id, "label": label, "audit": rec.audit, "saved": rec.saved,
                "verdict_was_wrong": (label == "defective") != bool(rec.result["defective"])}


def _fmt(p: float | None) -> str:
    return "n/a" if p is None else f"{p:.3g}"


def _num(x: float) -> float | None:
    """A float for JSON: NaN and infinities become null."""
    return float(x) if x is not None and math.isfinite(x) else None


def result_json(rec_id: str, name: str, v, handle: ModelHandle, shape: tuple, elapsed_ms: float,
                inference_ms: float, audit: bool) -> dict:
    """The JSON result of one inspection."""
    p = _num(v.p_value)
    return {
        "id": rec_id, "name": name, "defective": bool(v.defective), "verdict": "defective" if v.defective else "good",
        "score": _num(v.score), "p_value": p,
        "p_value_words": p_value_words(p, handle.params["n_calibration"]),
        "normalized_score": _num(v.normalized), "threshold": handle.params["threshold"],
        "alpha": handle.params["alpha"], "regions": v.regions, "width": int(shape[2]), "height": int(shape[1]),
        "model_id": handle.model_id, "time_ms": round(elapsed_ms, 2), "inference_ms": round(inference_ms, 2),
        "audit": audit, "overlay_url": f"/v1/inspections/{rec_id}/overlay.png",
    }


# -- application -------------------------------------------------------------------------------------
class ReviewIn(BaseModel):
    """An operator's label for an inspected image."""

    label: Literal["good", "defective"]


_IMAGE_BODY = {"type": "string", "format": "binary"}


def _upload_doc(field: str, many: bool) -> dict:
    prop = {"type": "array", "items": _IMAGE_BODY} if many else _IMAGE_BODY
    content = {"multipart/form-data": {"schema": {"type": "object", "properties": {field: prop}, "required": [field]}}}
    if not many:
        content.update({"image/png": {"schema": _IMAGE_BODY}, "image/jpeg": {"schema": _IMAGE_BODY},
                        "application/octet-stream": {"schema": _IMAGE_BODY}})
    return {"requestBody": {"required": True, "content": content}}


def create_app(config: ServiceConfig, handle: ModelHandle | None = None) -> FastAPI:
    """The application; without ``handle`` the model is loaded (and warmed up) at start-up."""
    service = Service(config, handle)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service.batcher.start()
        _watch_sighup(service)
        if service.handle is None:
            await service.load()
        yield
        await run_in_threadpool(service.batcher.stop)

    app = FastAPI(title="kizu inspection service", version=_kizu.__version__, lifespan=lifespan,
                  docs_url=None if _offline_docs_path() else "/docs", redoc_url=None,
                  description="Inspect images with a kizu model: verdict, conformal p-value, anomaly map, regions.")
    app.state.service = service
    _add_error_handlers(app)
    _add_routes(app, service)
    _add_docs(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(TokenAuth, token=config.token)
    app.add_middleware(_MetricsMiddleware, metrics=service.metrics)
    return app


def _watch_sighup(service: Service) -> None:
    """SIGHUP reloads the model (where the event loop can take signals: uvicorn's main thread)."""
    loop = asyncio.get_running_loop()

    async def reload_logged() -> None:
        try:
            await service.reload()
        except ServiceError as err:
            log.error("%s", err.message)

    try:
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(reload_logged()))
    except (NotImplementedError, RuntimeError, AttributeError, ValueError):
        pass  # not the main thread (tests) or no SIGHUP on this platform


def _add_routes(app: FastAPI, service: Service) -> None:
    cfg = service.config

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/healthz", tags=["service"])
    async def healthz():
        """Liveness: the process answers (no token needed)."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["service"])
    async def readyz():
        """Readiness: the model is loaded and warmed up."""
        if service.handle is None:
            return JSONResponse({"ready": False, "error": "the model is still loading"}, 503, {"Retry-After": "1"})
        return {"ready": True, "model_id": service.handle.model_id}

    @app.get("/metrics", tags=["service"])
    async def metrics():
        """Prometheus metrics."""
        service.metrics.queue.set(service.batcher.pending)
        return Response(service.metrics.render(), media_type=service.metrics.content_type)

    @app.post("/v1/inspect", tags=["inspect"], openapi_extra=_upload_doc("file", False))
    async def inspect_one(request: Request):
        """Inspect one image: multipart field ``file``, or the image as the body (``?name=`` names it)."""
        t0 = time.perf_counter()
        service.current()
        uploads = await read_uploads(request, "file", limit=cfg.max_body, max_files=1,
                                     hint="; send several to /v1/inspect/batch")
        return (await service.inspect(uploads, t0))[0]

    @app.post("/v1/inspect/batch", tags=["inspect"], openapi_extra=_upload_doc("files", True))
    async def inspect_batch(request: Request):
        """Inspect several images (multipart field ``files``, at most ``--max-files``); all are decoded
        and checked before any is inspected."""
        t0 = time.perf_counter()
        service.current()
        uploads = await read_uploads(request, "files", limit=cfg.max_body, max_files=cfg.max_files)
        results = await service.inspect(uploads, t0)
        return {"results": results, "count": len(results),
                "time_ms": round(1000.0 * (time.perf_counter() - t0), 2)}

    @app.get("/v1/inspections/{rec_id}", tags=["inspect"])
    async def inspection(rec_id: str):
        """A recent inspection's result and review."""
        rec = service.record(rec_id)
        return {**rec.result, "review": rec.review}

    @app.get("/v1/inspections/{rec_id}/overlay.png", tags=["inspect"], response_class=Response,
             responses={200: {"content": {"image/png": {}}}})
    async def overlay(rec_id: str):
        """The calibrated overlay (heat map on the model's fixed scale, regions boxed) of a recent inspection."""
        png = await run_in_threadpool(_locked_overlay, service, service.record(rec_id))
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    @app.post("/v1/inspections/{rec_id}/review", tags=["review"])
    async def review(rec_id: str, body: ReviewIn):
        """Label a recent inspection good or defective; the image is saved in the reviews folder
        (``test/<label>/``, and ``audit/<label>/`` for an audit sample)."""
        rec = service.record(rec_id)
        return await run_in_threadpool(service.review, rec, body.label)

    @app.get("/v1/model", tags=["model"])
    async def model():
        """The served model: detector, size, calibration in words, training summary, format version."""
        h = service.current()
        return {"model_id": h.model_id, "loaded_at": h.loaded_at, **_kizu.model_info(h.model)}

    @app.post("/v1/model/reload", tags=["model"])
    async def reload():
        """Load the model folder again (e.g. after `kizu recalibrate`) and swap it in atomically."""
        return await service.reload()

    @app.get("/v1/service", tags=["service"])
    async def service_info():
        """Limits, audit rate and counts since start (for the operator page)."""
        return {"version": _kizu.__version__, "uptime_s": round(time.time() - service.started, 1),
                "audit_rate": cfg.audit_rate, "labels": list(LABELS), "history": cfg.history,
                "max_files": cfg.max_files, "max_body_bytes": cfg.max_body, "max_pixels": cfg.max_pixels,
                "queue_images": service.batcher.pending, "keeps_uploads": cfg.keep is not None,
                **service.tally}


_overlay_lock = threading.Lock()


def _locked_overlay(service: Service, rec: InspectionRecord) -> bytes:
    """Render under a lock: matplotlib's pyplot state is not thread-safe."""
    with _overlay_lock:
        return service.overlay(rec)


def _add_error_handlers(app: FastAPI) -> None:
    """Every error is ``{"error": "one line"}`` with its status."""

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, err: ServiceError):
        return JSONResponse({"error": err.message}, err.status, err.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException):
        return JSONResponse({"error": str(err.detail)}, err.status_code, getattr(err, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, err: RequestValidationError):
        first = err.errors()[0] if err.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        return JSONResponse({"error": f"invalid request: {where + ': ' if where else ''}{first.get('msg', err)}"}, 422)


def _offline_docs_path() -> str | None:
    """Swagger UI's files from the ``swagger-ui-bundle`` package, so /docs works offline; None: absent."""
    try:
        import swagger_ui_bundle
    except ImportError:
        return None
    return swagger_ui_bundle.swagger_ui_path


def _add_docs(app: FastAPI) -> None:
    path = _offline_docs_path()
    if path is None:
        return  # FastAPI's /docs (Swagger UI from a CDN)
    from fastapi.openapi.docs import get_swagger_ui_html

    app.mount("/docs-assets", StaticFiles(directory=path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return get_swagger_ui_html(openapi_url="/openapi.json", title="kizu API",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css",
                                   swagger_favicon_url="/docs-assets/favicon-32x32.png")


class _MetricsMiddleware:
    """ASGI middleware counting requests and their latency by route template and status."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0, status = time.perf_counter(), 500

        async def send_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = _route_label(scope)
            self.metrics.requests.labels(route, scope.get("method", "?"), str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - t0)


def _route_label(scope) -> str:
    """The route's template (``/v1/inspections/{rec_id}/overlay.png``), not the raw path: bounded labels."""
    route = scope.get("route")
    if route is not None and getattr(route, "path", None):
        return route.path
    path = scope.get("path", "")
    for prefix in ("/static", "/docs-assets"):
        if path.startswith(prefix + "/"):
            return prefix
    return "other"
