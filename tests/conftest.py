import pytest
import torch

from kizu.synth import make_shapes, write_mvtec

torch.set_num_threads(1)

#: tests that share one Ray instance: under pytest-xdist they all run in one worker
RAY_TESTS = "tests/engines/test_ray_predict.py::"


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``-n N`` (``--dist load``): each test goes to whichever worker is free, except the Ray tests,
    which go together to one worker, so the test session starts Ray once."""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class RayTestsTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "ray" if nodeid.startswith(RAY_TESTS) else nodeid

    return RayTestsTogether(config, log)


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

