"""Fixtures of the engine tests: one local Ray instance per test session (2 CPUs), a tiny model
trained in about a second, 300 tiny images and local `kizu predict`'s results on them."""

from __future__ import annotations

import csv
import logging

import numpy as np
import pytest
from typer.testing import CliRunner

from kizu import TrainConfig, fit_model, save_model
from kizu.cli import app
from kizu.io import write_image
from kizu.synth import make_shapes

#: why the Ray tests are skipped where Ray is missing
NO_RAY = "Ray Data is not installed (pip install 'kizu[ray]'; the dev extra includes it)"


def run_cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def read_csv(path) -> dict[str, dict]:
    """A results file's rows by path (checking that no path has two rows)."""
    rows = list(csv.DictReader(open(path, newline="")))
    by_path = {r["path"]: r for r in rows}
    assert len(by_path) == len(rows), "a file has two rows"
    return by_path


@pytest.fixture(scope="session")
def ray_address():
    """Start Ray once for the session (local, 2 CPUs); its address, for commands in subprocesses.
    The engine uses this instance when it finds Ray started and leaves it running."""
    ray = pytest.importorskip("ray", reason=NO_RAY)
    pytest.importorskip("ray.data", reason=NO_RAY)
    pytest.importorskip("pyarrow", reason=NO_RAY)
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="session")
def engine_data(tmp_path_factory):
    """(model folder, images folder): a patch-knn model on the raw pixels of 16x16 shapes, and 300
    test images (half with a defect) in two subfolders. A little noise makes every image unique."""
    root = tmp_path_factory.mktemp("engines")
    data = make_shapes(40, 150, 150, seed=3, size=16)
    rng = np.random.default_rng(7)
    for part in (data.train, data.test):
        part[:] = np.clip(part + rng.normal(0, 0.02, part.shape), 0, 1)
    model = fit_model(data.train, TrainConfig(detector="patch-knn", options={"preset": "pixels"}, alpha=0.1,
                                              calibration="holdout", calibration_fraction=0.5), device="cpu")
    save_model(model, root / "model")
    for i, image in enumerate(data.test):
        write_image(root / "images" / ("good" if i < 150 else "defect") / f"{i:03d}.png", image)
    return root / "model", root / "images"


@pytest.fixture(scope="session")
def local_results(engine_data, tmp_path_factory):
    """Local `kizu predict`'s rows on the 300 images, by path."""
    model, images = engine_data
    out = tmp_path_factory.mktemp("local") / "results.csv"
    res = run_cli("predict", model, images, "--out", out)
    assert res.exit_code == 0, res.output
    return read_csv(out)
