"""The service's one error type: an HTTP status and a one-line message for the client."""

from __future__ import annotations

from ._kizu import KizuError


class ServiceError(KizuError):
    """Answered as ``{"error": message}`` with ``status`` (and extra ``headers``, e.g. Retry-After);
    raised before the server starts (a bad option), the CLI prints it as one line."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        self.status, self.message, self.headers = status, message, headers or {}
        super().__init__(message)
