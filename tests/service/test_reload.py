"""Reloading the model (POST /v1/model/reload, SIGHUP): atomic swap, no failed request under load."""

from __future__ import annotations

import shutil
import signal
import threading
import time

import httpx

from kizu.service import _kizu

from .servers import kizu_serve


def replace_model(src, dest):
    """Swap a model folder's files as `kizu recalibrate` / `kizu train --out` would (atomically)."""
    _kizu.save_model(_kizu.load_model(src), dest)


def test_reload_under_load(client, model_dir, shapes, good_png, bad_png):
    old_id = client.get("/v1/model").json()["model_id"]
    stop, results, errors = threading.Event(), [], []

    def hammer(body):
        while not stop.is_set():
            try:
                r = client.post("/v1/inspect", files={"file": ("x.png", body, "image/png")})
                results.append((r.status_code, r.json().get("model_id"), r.json().get("defective")))
            except Exception as err:  # noqa: BLE001 - a lost request fails the test below
                errors.append(err)

    threads = [threading.Thread(target=hammer, args=(b,)) for b in (good_png, bad_png, good_png, bad_png)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    replace_model(shapes[0] / "model-b", model_dir)
    r = client.post("/v1/model/reload")
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join()
    new_id = r.json()["model_id"]
    assert r.status_code == 200 and r.json()["previous_model_id"] == old_id and new_id != old_id
    assert not errors and results and all(s == 200 for s, _, _ in results)
    seen = [m for _, m, _ in results]
    assert set(seen) == {old_id, new_id}
    assert seen.index(new_id) > 0 and old_id not in seen[seen.index(new_id) + 8:]  # swapped once, for good
    assert client.get("/v1/model").json()["model_id"] == new_id
    assert f'kizu_model_info{{detector="patch-knn",model_id="{new_id}"}} 1.0' in client.get("/metrics").text


def test_failed_reload_keeps_the_old_model(client, model_dir, good_png):
    old_id = client.get("/v1/model").json()["model_id"]
    (model_dir / "weights.safetensors").write_bytes(b"damaged")
    r = client.post("/v1/model/reload")
    assert r.status_code == 422 and "still serving the previous model" in r.json()["error"]
    r = client.post("/v1/inspect", files={"file": ("g.png", good_png, "image/png")})
    assert r.status_code == 200 and r.json()["model_id"] == old_id


def test_reload_to_another_size_answers_422_not_500(client, model_dir, tmp_path, good_png):
    from .conftest import tiny_model

    other, _ = tiny_model(size=24)
    _kizu.save_model(other, tmp_path / "m24")
    replace_model(tmp_path / "m24", model_dir)
    assert client.post("/v1/model/reload").status_code == 200
    r = client.post("/v1/inspect", files={"file": ("g.png", good_png, "image/png")})
    assert r.status_code == 422 and "expects 24x24 px" in r.json()["error"]


def test_sighup_reloads_a_running_server(model_dir, shapes, good_png, tmp_path):
    with kizu_serve(str(model_dir), "--reviews", str(tmp_path / "rev")) as (url, proc):
        old_id = httpx.get(f"{url}/v1/model").json()["model_id"]
        replace_model(shapes[0] / "model-b", model_dir)
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while httpx.get(f"{url}/v1/model").json()["model_id"] == old_id:
            assert time.monotonic() < deadline, "SIGHUP did not reload the model"
            time.sleep(0.05)
        r = httpx.post(f"{url}/v1/inspect", files={"file": ("g.png", good_png, "image/png")})
        assert r.status_code == 200 and r.json()["model_id"] == _kizu.model_id(model_dir)
        assert proc.poll() is None
    assert proc.returncode in (0, -signal.SIGTERM)  # uvicorn stops gracefully, then re-raises SIGTERM
    shutil.rmtree(tmp_path / "rev", ignore_errors=True)
