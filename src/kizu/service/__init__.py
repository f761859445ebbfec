"""kizu as a service: an HTTP API and operator page (``kizu serve``) and a watch-folder inspector
(``kizu watch``).

FastAPI, uvicorn and the other service dependencies are the ``serve`` extra; importing this package
does not import them (``kizu.service.app`` does).
"""
