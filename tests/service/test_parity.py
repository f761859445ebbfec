"""The service's verdicts equal kizu predict's for the same files and model."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from kizu.cli import app

from .conftest import png


def test_served_verdicts_equal_predict(client, model_dir, data, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, a in enumerate(data.test):
        (folder / f"{i:02d}.png").write_bytes(png(a))
    res = CliRunner().invoke(app, ["predict", str(model_dir), str(folder), "--out", str(tmp_path / "p.csv")])
    assert res.exit_code == 0, res.output
    expected = {r["path"].rsplit("/", 1)[1]: r for r in csv.DictReader((tmp_path / "p.csv").open())}
    files = sorted(folder.iterdir())
    single = [client.post("/v1/inspect", files={"file": (f.name, f.read_bytes(), "image/png")}).json() for f in files]
    batch = client.post("/v1/inspect/batch",
                        files=[("files", (f.name, f.read_bytes(), "image/png")) for f in files]).json()["results"]
    for got in single + batch:
        want = expected[got["name"]]
        assert f"{got['score']:.9g}" == want["score"]
        assert f"{got['p_value']:.6g}" == want["p_value"]
        assert int(got["defective"]) == int(want["defective"])
        assert f"{got['normalized_score']:.6f}" == want["normalized_score"]
        assert json.dumps(got["regions"], separators=(",", ":")) == want["regions"]


def test_scores_do_not_depend_on_the_batch_for_duplicate_images():
    # images that are pixel copies of calibration images tie exactly in the score reference's
    # neighbour search: the tie must be broken the same way whatever else is in the batch
    from kizu.service import _kizu

    from .conftest import tiny_model

    model, data = tiny_model(noise=0)
    images = [a[None].astype(np.float32) for a in data.test]
    together = [v.score for v in _kizu.inspect(model, images, [None] * len(images))]
    alone = [_kizu.inspect(model, [im], [None])[0].score for im in images]
    assert together == alone


def test_an_exported_bundle_serves_the_model_verdicts_and_refuses_recalibration(model_dir, data, tmp_path):
    """A line PC serves the ONNX bundle (no PyTorch needed): the same verdicts as the model folder."""
    from fastapi.testclient import TestClient

    from kizu import load_model
    from kizu.export.bundle import export_bundle
    from kizu.service import _kizu
    from kizu.service.app import ServiceConfig, create_app
    from kizu.service.reviews import recalibrate

    export_bundle(load_model(model_dir), tmp_path / "bundle")
    with TestClient(create_app(ServiceConfig(model=tmp_path / "bundle", reviews=tmp_path / "r", seed=0)),
                    raise_server_exceptions=False) as client:
        info = client.get("/v1/model").json()
        assert info["model_id"] == _kizu.model_id(tmp_path / "bundle") != _kizu.model_id(model_dir)
        for a in data.test:
            got = client.post("/v1/inspect", files={"file": ("x.png", png(a), "image/png")}).json()
            want = _kizu.inspect(load_model(model_dir), [_kizu.decode_image(png(a), "x.png")], [None])[0]
            assert got["defective"] == want.defective and abs(got["score"] - want.score) <= 1e-5 * (1 + want.score)
    with pytest.raises(_kizu.KizuError, match="recalibrate the model folder"):
        recalibrate(tmp_path / "bundle", tmp_path / "r" / "audit")
