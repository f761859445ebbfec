"""Bad input never gives a 500: a 4xx with one clear line, and the service keeps serving."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from .conftest import png


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width`` x ``height`` (a decompression bomb's header)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def big_png(size: int = 64, seed: int = 0) -> bytes:
    return png(np.random.default_rng(seed).random((size, size)))


def eps() -> bytes:
    return b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\nshowpage\n"


CASES = [
    # (id, body bytes, expected status, words in the message)
    ("text", b"hello, not an image", 415, "not an image file"),
    ("empty", b"", 400, "empty file"),
    ("truncated", big_png()[:300], 422, "truncated"),
    ("corrupt", big_png()[:60] + b"\x00" * 400 + big_png()[460:], 422, "unreadable"),
    ("wrong size", big_png(32), 422, "expects 16x16 px"),
    ("bomb", png_declaring(30000, 30000), 413, "too many pixels"),
    ("beyond pillow limit", png_declaring(60000, 60000), 413, "too many pixels"),
    ("eps", eps(), 415, "not an image file"),
    ("tiny", png(np.zeros((1, 1))), 422, "too small"),
]


@pytest.mark.parametrize("body,status,words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_upload(client, good_png, body, status, words):
    r = client.post("/v1/inspect", files={"file": ("x.png", body, "image/png")})
    assert r.status_code == status, r.text
    assert words in r.json()["error"] and r.json()["error"].startswith("x.png: ")
    assert "\n" not in r.json()["error"]
    r = client.post("/v1/inspect", content=body, headers={"Content-Type": "image/png"})
    assert r.status_code == status
    assert client.post("/v1/inspect", files={"file": ("g.png", good_png, "image/png")}).status_code == 200


def test_one_bad_file_refuses_the_batch(client, good_png):
    files = [("files", ("a.png", good_png, "image/png")), ("files", ("b.png", b"nope", "image/png"))]
    r = client.post("/v1/inspect/batch", files=files)
    assert r.status_code == 415 and r.json()["error"].startswith("b.png: ")
    assert client.get("/v1/service").json()["inspected"] == 0  # nothing inspected


def test_body_too_large(make_client, good_png):
    client = make_client(max_body=2000)
    r = client.post("/v1/inspect", files={"file": ("x.png", big_png(128), "image/png")})
    assert r.status_code == 413 and "larger than the limit of 2,000 bytes" in r.json()["error"]
    r = client.post("/v1/inspect", content=iter([b"x" * 1500, b"x" * 1500]), headers={"Content-Type": "image/png"})
    assert r.status_code == 413  # chunked: no Content-Length, stopped while streaming
    assert client.post("/v1/inspect", files={"file": ("g.png", good_png, "image/png")}).status_code == 200


def test_default_body_limit_is_20_mb(client):
    r = client.post("/v1/inspect", content=b"\0" * 10, headers={"Content-Type": "image/png",
                                                                "Content-Length": str(21 * 1024 * 1024)})
    assert r.status_code == 413 and "20,971,520" in r.json()["error"]


def test_too_many_files(make_client, good_png):
    client = make_client(max_files=3)
    files = [("files", (f"{i}.png", good_png, "image/png")) for i in range(4)]
    r = client.post("/v1/inspect/batch", files=files)
    assert r.status_code == 413 and "at most 3" in r.json()["error"]
    two = [("file", ("a.png", good_png, "image/png"))] * 2
    r = client.post("/v1/inspect", files=two)
    assert r.status_code == 413 and "/v1/inspect/batch" in r.json()["error"]


@pytest.mark.parametrize("kwargs,status,words", [
    ({"content": b"{}", "headers": {"Content-Type": "application/json"}}, 415, "unsupported Content-Type"),
    ({"content": b"--xx\r\nbroken", "headers": {"Content-Type": "multipart/form-data; boundary=xx"}}, 400,
     "no file in multipart field"),
    ({"content": b"abc", "headers": {"Content-Type": "multipart/form-data"}}, 400, "without a boundary"),
    ({"data": {"other": "1"}, "files": {"wrong": ("a.png", b"x", "image/png")}}, 400, "no file in multipart field 'file'"),
], ids=["json", "broken multipart", "no boundary", "wrong field"])
def test_malformed_requests(client, kwargs, status, words):
    r = client.post("/v1/inspect", **kwargs)
    assert r.status_code == status and words in r.json()["error"]


def test_review_errors(client, good_png):
    assert client.post("/v1/inspections/nope/review", json={"label": "good"}).status_code == 404
    rid = client.post("/v1/inspect", files={"file": ("g.png", good_png, "image/png")}).json()["id"]
    r = client.post(f"/v1/inspections/{rid}/review", json={"label": "maybe"})
    assert r.status_code == 422 and "label" in r.json()["error"]
    r = client.post(f"/v1/inspections/{rid}/review", content=b"not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422


def test_unknown_route_and_method(client):
    assert client.get("/v2/nothing").json() == {"error": "Not Found"}
    assert client.get("/v1/inspect").status_code == 405


def test_grey_and_colour_16_bit_uploads(make_client, tmp_path):
    """A colour upload to a grey model and a 16-bit grey upload are converted as kizu predict does."""
    client = make_client()
    rgb = Image.fromarray(np.zeros((16, 16, 3), np.uint8))
    buf = io.BytesIO()
    rgb.save(buf, "PNG")
    assert client.post("/v1/inspect", files={"file": ("c.png", buf.getvalue(), "image/png")}).status_code == 200
    i16 = Image.fromarray(np.full((16, 16), 40000, np.uint16))
    buf = io.BytesIO()
    i16.save(buf, "PNG")
    assert client.post("/v1/inspect", files={"file": ("d.png", buf.getvalue(), "image/png")}).status_code == 200
