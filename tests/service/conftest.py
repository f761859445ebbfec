"""Fixtures of the service tests: tiny models (trained once per session), images as encoded bytes,
a TestClient on a fresh app."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the service tests need the 'serve' extra (pip install -e '.[dev]')")

from kizu import TrainConfig, fit_model, save_model  # noqa: E402
from kizu.synth import make_shapes  # noqa: E402


def tiny_model(seed: int = 0, size: int = 16, noise: float = 0.02):
    """A patch-knn model on raw pixels of 16x16 seed shapes: trains in about a second. ``noise``: the
    seed's jitter draws many pixel copies; a little noise makes every image unique (see the xfail in
    test_parity)."""
    data = make_shapes(40, 6, 6, seed=3, size=size)
    rng = np.random.default_rng(7)
    for part in (data.train, data.test):
        part[:] = np.clip(part + rng.normal(0, noise, part.shape), 0, 1) if noise else part
    model = fit_model(data.train, TrainConfig(detector="patch-knn", options={"preset": "pixels"},
                                              calibration="holdout", calibration_fraction=0.5, seed=seed))
    return model, data


@pytest.fixture(scope="session")
def shapes():
    """(model folder, data set) of the session's tiny model; copy the folder before changing it."""
    import tempfile
    from pathlib import Path

    root = Path(tempfile.mkdtemp(prefix="kizu-svc-"))
    model, data = tiny_model()
    save_model(model, root / "model")
    other, _ = tiny_model(seed=1)  # another calibration draw: another model id
    save_model(other, root / "model-b")
    yield root, data
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def model_dir(shapes, tmp_path):
    """A private copy of the tiny model folder."""
    dest = tmp_path / "model"
    shutil.copytree(shapes[0] / "model", dest)
    return dest


@pytest.fixture
def data(shapes):
    return shapes[1]


def png(a: np.ndarray, fmt: str = "PNG", mode: str | None = None) -> bytes:
    """Encode a (H, W) or (C, H, W) float image in [0, 1]."""
    a = np.asarray(a)
    if a.ndim == 3:
        a = a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)
    im = Image.fromarray(np.clip(np.rint(a * 255), 0, 255).astype(np.uint8))
    if mode:
        im = im.convert(mode)
    buf = io.BytesIO()
    im.save(buf, fmt)
    return buf.getvalue()


@pytest.fixture
def good_png(data):
    return png(data.test[0])


@pytest.fixture
def bad_png(data):
    return png(data.test[-1])


@pytest.fixture
def make_client(model_dir, tmp_path):
    """``make_client(**config)`` → a TestClient (started) on a fresh app over ``model_dir``."""
    from fastapi.testclient import TestClient

    from kizu.service.app import ServiceConfig, create_app

    clients = []

    def make(**options):
        options.setdefault("reviews", tmp_path / "reviews")
        options.setdefault("seed", 0)
        client = TestClient(create_app(ServiceConfig(model=model_dir, **options)), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture
def client(make_client):
    return make_client()
