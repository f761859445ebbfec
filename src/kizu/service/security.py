"""Bearer-token access control for every route but ``/healthz``.

API clients send ``Authorization: Bearer TOKEN``. A browser cannot add that header to the page it
opens, so the operator page is reached with HTTP Basic authentication: the browser asks once for a
user name (any) and a password (the token), and sends them with every request of the page. Both are
compared in constant time (``hmac.compare_digest``).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from pathlib import Path

from .errors import ServiceError

OPEN_PATHS = frozenset({"/healthz"})


def read_token(path: str | Path) -> str:
    """The token in a file (surrounding whitespace removed); an error for a missing or empty file or
    a token shorter than 16 characters (guessable)."""
    path = Path(path)
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as err:
        raise ServiceError(400, f"{path}: cannot read the token file ({err})") from None
    if len(token) < 16:
        raise ServiceError(400, f"{path}: the token must be at least 16 characters "
                                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)")
    return token


def presented_token(header: str | None) -> str | None:
    """The token in an Authorization header: the Bearer credential or the Basic password."""
    if not header:
        return None
    scheme, _, cred = header.strip().partition(" ")
    if scheme.lower() == "bearer":
        return cred.strip()
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(cred.strip(), validate=True).decode("utf-8").partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return None
    return None


def token_matches(header: str | None, token: str) -> bool:
    given = presented_token(header)
    return given is not None and hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8"))


class TokenAuth:
    """ASGI middleware: 401 with a JSON error unless the request carries the token."""

    def __init__(self, app, token: str | None):
        self.app, self.token = app, token

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or self.token is None or scope["path"] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        header = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None)
        if token_matches(header, self.token):
            return await self.app(scope, receive, send)
        body = json.dumps({"error": "missing or wrong token: send Authorization: Bearer TOKEN"}).encode()
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", b'Basic realm="kizu", charset="UTF-8"'),
            (b"www-authenticate", b'Bearer realm="kizu"')]})
        await send({"type": "http.response.body", "body": body})
