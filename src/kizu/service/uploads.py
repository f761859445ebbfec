"""Reading uploads from a request: the body (with a size limit) and multipart parts, in memory only.

Starlette's form parser spools files above 1 MB to temporary files on disk; the service promises
not to write uploads to disk unless asked (``--keep``), so multipart bodies are parsed here, from
memory, with python-multipart's streaming parser.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from .errors import ServiceError

#: body types taken as one raw image
RAW_TYPES = ("image/", "application/octet-stream")


@dataclass
class Upload:
    """One uploaded image: the client's name for it (sanitised) and its bytes."""

    name: str
    data: bytes


def safe_name(name: str | None, fallback: str = "upload") -> str:
    """A client-supplied file name reduced to a harmless base name (no folders, no odd characters,
    at most 80 characters): it labels results and saved files, it never chooses a folder."""
    base = PureWindowsPath(PurePosixPath(name or "").name).name
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._")[:80]
    return base or fallback


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``limit`` bytes (from
    Content-Length, or while streaming a chunked body)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ServiceError(400, f"invalid Content-Length header {declared!r}")
        if int(declared) > limit:
            raise ServiceError(413, f"request body of {int(declared):,} bytes is larger than the limit of "
                                    f"{limit:,} bytes")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > limit:
                raise ServiceError(413, f"request body is larger than the limit of {limit:,} bytes")
    except ClientDisconnect:
        raise ServiceError(400, "the client disconnected before sending the whole body") from None
    return bytes(body)


async def read_uploads(request: Request, field: str, *, limit: int, max_files: int, hint: str = "") -> list[Upload]:
    """The images of a request: multipart parts named ``field`` (at most ``max_files``), or the
    whole body as one image (``image/*`` or ``application/octet-stream``; name from ``?name=``)."""
    ctype = request.headers.get("content-type", "")
    kind = ctype.split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        return parse_multipart(await read_body(request, limit), ctype, field, max_files, hint)
    if kind.startswith(RAW_TYPES) or kind == "":
        data = await read_body(request, limit)
        return [Upload(safe_name(request.query_params.get("name")), data)]
    raise ServiceError(415, f"unsupported Content-Type {kind!r}: send multipart/form-data with the image in field "
                            f"{field!r}, or the image itself as the body (image/* or application/octet-stream)")


class _Parts:
    """python-multipart callbacks collecting parts in memory."""

    def __init__(self, max_parts: int):
        self.max_parts = max_parts
        self.parts: list[tuple[dict[bytes, bytes], bytearray]] = []
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._disposition: dict[bytes, bytes] = {}

    def callbacks(self) -> dict:
        return {"on_part_begin": self.begin, "on_part_data": self.data, "on_header_field": self.header_field,
                "on_header_value": self.header_value, "on_header_end": self.header_end}

    def begin(self) -> None:
        if len(self.parts) >= self.max_parts:
            raise ServiceError(413, f"too many parts in the multipart body (at most {self.max_parts})")
        self._disposition = {}
        self.parts.append((self._disposition, bytearray()))

    def data(self, data: bytes, start: int, end: int) -> None:
        self.parts[-1][1].extend(data[start:end])

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name.extend(data[start:end])

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value.extend(data[start:end])

    def header_end(self) -> None:
        if bytes(self._header_name).lower() == b"content-disposition":
            self._disposition.update(parse_options_header(bytes(self._header_value))[1])
        self._header_name.clear()
        self._header_value.clear()


def parse_multipart(body: bytes, content_type: str, field: str, max_files: int, hint: str = "") -> list[Upload]:
    """Parts named ``field`` of a multipart/form-data body (other fields are ignored); 400 for a
    malformed body or no such part, 413 for more than ``max_files`` of them."""
    boundary = parse_options_header(content_type)[1].get(b"boundary")
    if not boundary:
        raise ServiceError(400, "multipart/form-data without a boundary")
    parts = _Parts(max_parts=max_files + 16)
    try:
        parser = MultipartParser(boundary, parts.callbacks())
        parser.write(body)
        parser.finalize()
    except ServiceError:
        raise
    except Exception as err:  # noqa: BLE001 - python-multipart raises several error types
        raise ServiceError(400, f"malformed multipart body ({err})") from None
    uploads = [Upload(safe_name(d.get(b"filename", b"").decode("utf-8", "replace")), bytes(data))
               for d, data in parts.parts if d.get(b"name", b"").decode("utf-8", "replace") == field]
    if not uploads:
        raise ServiceError(400, f"no file in multipart field {field!r}")
    if len(uploads) > max_files:
        raise ServiceError(413, f"{len(uploads)} files in one request; at most {max_files} allowed{hint}")
    return uploads
