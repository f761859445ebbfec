import pytest
import torch

from kizu.synth import make_shapes, write_mvtec

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shapes_dir(tmp_path_factory):
    """A small MVTec-style seed-shapes folder: 60 train, 10 + 10 test."""
    root = tmp_path_factory.mktemp("data") / "shapes"
    write_mvtec(make_shapes(60, 10, 10, seed=3), root)
    return root


@pytest.fixture(scope="session")
def trained_model(shapes_dir, tmp_path_factory):
    """A model trained through the CLI on ``shapes_dir``; returns its folder."""
    from typer.testing import CliRunner

    from kizu.cli import app

    out = tmp_path_factory.mktemp("models") / "m"
    res = CliRunner().invoke(app, ["train", str(shapes_dir), "--out", str(out), "--quiet", "--seed", "1", "--detector", "autoencoder", "--calibration", "holdout", "--alpha", "0.1",
                                   "-O", "min_steps=30", "-O", "epochs=2"])
    assert res.exit_code == 0, res.output
    return out

