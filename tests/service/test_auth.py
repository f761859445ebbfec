"""--token-file: every route but /healthz needs the token (Bearer, or Basic password for browsers)."""

from __future__ import annotations

import base64

import pytest

from kizu.service.errors import ServiceError
from kizu.service.security import presented_token, read_token

TOKEN = "s3cret-token-0123456789abcdef"
ROUTES = [("GET", "/"), ("GET", "/static/app.js"), ("GET", "/readyz"), ("GET", "/metrics"), ("GET", "/v1/model"),
          ("GET", "/v1/service"), ("GET", "/docs"), ("GET", "/openapi.json"), ("POST", "/v1/inspect"),
          ("POST", "/v1/inspect/batch"), ("POST", "/v1/model/reload"), ("GET", "/v1/inspections/x/overlay.png"),
          ("POST", "/v1/inspections/x/review"), ("GET", "/nowhere")]


@pytest.fixture
def secured(make_client):
    return make_client(token=TOKEN)


@pytest.mark.parametrize("method,path", ROUTES)
def test_every_route_needs_the_token(secured, method, path):
    r = secured.request(method, path)
    assert r.status_code == 401 and "token" in r.json()["error"]
    assert any(v.startswith("Basic") for k, v in r.headers.multi_items() if k == "www-authenticate")
    r = secured.request(method, path, headers={"Authorization": "Bearer wrong-token-0123456789"})
    assert r.status_code == 401


def test_healthz_is_open(secured):
    assert secured.get("/healthz").status_code == 200


def test_bearer_and_basic(secured, good_png):
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    basic = {"Authorization": "Basic " + base64.b64encode(f"operator:{TOKEN}".encode()).decode()}
    for headers in (bearer, basic):
        assert secured.get("/readyz", headers=headers).status_code == 200
        r = secured.post("/v1/inspect", files={"file": ("g.png", good_png, "image/png")}, headers=headers)
        assert r.status_code == 200
    assert secured.get("/readyz", headers={"Authorization": f"Token {TOKEN}"}).status_code == 401
    assert secured.get("/readyz", headers={"Authorization": "Basic !!!"}).status_code == 401


def test_presented_token():
    assert presented_token("Bearer abc") == "abc" and presented_token("bearer  abc ") == "abc"
    assert presented_token("Basic " + base64.b64encode(b"u:p:q").decode()) == "p:q"
    assert presented_token(None) is None and presented_token("Digest x") is None


def test_read_token(tmp_path):
    f = tmp_path / "t"
    f.write_text(f"  {TOKEN}\n")
    assert read_token(f) == TOKEN
    f.write_text("short")
    with pytest.raises(ServiceError, match="at least 16 characters"):
        read_token(f)
    with pytest.raises(ServiceError, match="cannot read the token file"):
        read_token(tmp_path / "missing")
