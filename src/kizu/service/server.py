"""Running the service with uvicorn (what ``kizu serve`` calls)."""

from __future__ import annotations

import logging

from .app import ServiceConfig, create_app, load_handle


def serve(config: ServiceConfig, host: str = "127.0.0.1", port: int = 8000, *, log_level: str = "info",
          access_log: bool = False) -> None:
    """Load the model (a bad model folder fails here, before the port opens), then serve until
    SIGINT/SIGTERM; SIGHUP reloads the model."""
    import uvicorn

    config.check()
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    handle = load_handle(config.model)
    logging.getLogger("kizu.service").info("model %s loaded from %s; serving on http://%s:%d", handle.model_id,
                                           config.model, host, port)
    app = create_app(config, handle)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=access_log, timeout_graceful_shutdown=10)
