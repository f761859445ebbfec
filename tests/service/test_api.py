"""Every route of the service, on the happy path."""

from __future__ import annotations

import json

import numpy as np
import pytest

from .conftest import png


def test_healthz_readyz(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["ready"] is True and len(r.json()["model_id"]) == 16


def test_inspect_multipart_good_and_defective(client, good_png, bad_png):
    good = client.post("/v1/inspect", files={"file": ("good.png", good_png, "image/png")})
    bad = client.post("/v1/inspect", files={"file": ("bad.png", bad_png, "image/png")})
    assert good.status_code == bad.status_code == 200
    g, b = good.json(), bad.json()
    assert (g["defective"], g["verdict"], b["defective"], b["verdict"]) == (False, "good", True, "defective")
    for r in (g, b):
        assert set(r) >= {"id", "score", "p_value", "defective", "normalized_score", "regions", "threshold", "alpha",
                          "model_id", "time_ms", "p_value_words", "overlay_url"}
        assert (r["p_value"] <= r["alpha"]) == r["defective"] == (r["score"] > r["threshold"])
        assert r["time_ms"] > 0 and r["width"] == r["height"] == 16
    assert b["regions"] and {"x", "y", "width", "height"} <= set(b["regions"][0])
    assert "1 time in" in b["p_value_words"]


def test_inspect_raw_body(client, bad_png):
    r = client.post("/v1/inspect?name=../../etc/cam1.png", content=bad_png, headers={"Content-Type": "image/png"})
    assert r.status_code == 200 and r.json()["defective"] and r.json()["name"] == "cam1.png"
    r = client.post("/v1/inspect", content=bad_png, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 200 and r.json()["name"] == "upload"


def test_batch_keeps_order(client, data):
    files = [("files", (f"{i}.png", png(a), "image/png")) for i, a in enumerate(data.test)]
    r = client.post("/v1/inspect/batch", files=files)
    assert r.status_code == 200
    body = r.json()
    assert body["count"] == len(data.test) == len(body["results"])
    assert [x["name"] for x in body["results"]] == [f"{i}.png" for i in range(len(data.test))]
    flagged = [x["defective"] for x in body["results"]]
    assert not any(flagged[:6]) and all(flagged[6:])  # 6 ellipses, then 6 rectangles


def test_overlay_and_inspection_lookup(client, bad_png):
    r = client.post("/v1/inspect", files={"file": ("bad.png", bad_png, "image/png")}).json()
    ov = client.get(r["overlay_url"])
    assert ov.status_code == 200 and ov.headers["content-type"] == "image/png" and ov.content[:4] == b"\x89PNG"
    assert client.get(r["overlay_url"]).content == ov.content  # cached
    got = client.get(f"/v1/inspections/{r['id']}").json()
    assert got["score"] == r["score"] and got["review"] is None


def test_history_is_bounded(make_client, good_png):
    client = make_client(history=3)
    ids = [client.post("/v1/inspect", files={"file": ("g.png", good_png, "image/png")}).json()["id"] for _ in range(5)]
    assert client.get(f"/v1/inspections/{ids[-1]}").status_code == 200
    old = client.get(f"/v1/inspections/{ids[0]}/overlay.png")
    assert old.status_code == 404 and "last 3 inspections" in old.json()["error"]


def test_model_info(client, model_dir):
    m = client.get("/v1/model").json()
    assert m["detector"] == "patch-knn" and m["size"] == {"height": 16, "width": 16, "channels": 1}
    assert m["input_size"] == {"height": 16, "width": 16} and m["format_version"] == 3
    assert "flagged with probability at most 5 %" in m["calibration"]["statement"]
    assert m["calibration"]["n_calibration"] == 20 and m["training"]["n_images"] == 40
    from kizu.service import _kizu

    assert m["model_id"] == _kizu.model_id(model_dir)


def test_metrics(client, good_png, bad_png):
    for data in (good_png, bad_png, b"junk"):
        client.post("/v1/inspect", files={"file": ("x.png", data, "image/png")})
    text = client.get("/metrics").text
    assert 'kizu_requests_total{method="POST",route="/v1/inspect",status="200"} 2.0' in text
    assert 'kizu_requests_total{method="POST",route="/v1/inspect",status="415"} 1.0' in text
    assert 'kizu_inspections_total{verdict="defective"} 1.0' in text
    assert 'kizu_inspections_total{verdict="good"} 1.0' in text
    assert "kizu_request_seconds_bucket" in text and "kizu_batch_images_bucket" in text
    share = float(next(line for line in text.splitlines() if line.startswith("kizu_recent_flag_share ")).split()[1])
    assert share == pytest.approx(0.5)  # one of the two images has p <= alpha
    assert "kizu_alpha 0.05" in text and "kizu_model_info{" in text


def test_page_static_and_docs(client):
    page = client.get("/")
    assert page.status_code == 200 and "<title>kizu inspection</title>" in page.text
    for f in ("app.js", "style.css"):
        assert client.get(f"/static/{f}").status_code == 200
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/docs-assets/swagger-ui-bundle.js" in docs.text  # offline: no CDN
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/v1/inspect", "/v1/inspect/batch", "/v1/model", "/v1/model/reload", "/metrics"} <= set(spec["paths"])
    assert "multipart/form-data" in spec["paths"]["/v1/inspect"]["post"]["requestBody"]["content"]


def test_page_loads_nothing_from_other_hosts():
    from pathlib import Path

    import kizu.service

    static = Path(kizu.service.__file__).parent / "static"
    for f in static.iterdir():
        text = f.read_text(encoding="utf-8")
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, f.name


def test_service_info_tally(client, bad_png):
    client.post("/v1/inspect", files={"file": ("b.png", bad_png, "image/png")})
    s = client.get("/v1/service").json()
    assert (s["inspected"], s["defective"], s["reviewed"]) == (1, 1, 0)
    assert s["max_files"] == 32 and s["audit_rate"] == 0.0


def test_keep_writes_uploads_only_when_asked(make_client, tmp_path, good_png):
    client = make_client()
    client.post("/v1/inspect", files={"file": ("g.png", good_png, "image/png")})
    assert not any(p for p in tmp_path.rglob("*.png") if "model" not in p.parts)
    keep = tmp_path / "kept"
    client = make_client(keep=keep)
    r = client.post("/v1/inspect", files={"file": ("g.png", good_png, "image/png")}).json()
    files = list(keep.rglob("*.png"))
    assert len(files) == 1 and files[0].read_bytes() == good_png and r["id"] in files[0].name
    line = json.loads((keep / "inspections.jsonl").read_text().splitlines()[0])
    assert line["id"] == r["id"] and line["file"].endswith(".png")


def test_concurrent_requests_are_batched(client, data):
    from concurrent.futures import ThreadPoolExecutor

    bodies = [png(a) for a in data.test]

    def one(i):
        return client.post("/v1/inspect", files={"file": (f"{i}.png", bodies[i % len(bodies)], "image/png")})

    with ThreadPoolExecutor(8) as pool:
        res = list(pool.map(one, range(48)))
    assert all(r.status_code == 200 for r in res)
    assert [r.json()["defective"] for r in res] == [bool(i % 12 >= 6) for i in range(48)]
    text = client.get("/metrics").text
    count = float(next(line for line in text.splitlines() if line.startswith("kizu_batch_images_count")).split()[1])
    assert count < 48  # fewer batches than requests: some were inspected together
    assert np.isfinite(count)
