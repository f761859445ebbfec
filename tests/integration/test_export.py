"""kizu export: every detector's bundle scores as the PyTorch runtime does, runs without PyTorch,
and is refused when it would not."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from kizu import TrainConfig, fit_model, save_model
from kizu.cli import app
from kizu.errors import KizuError
from kizu.export import bundle as bundle_module
from kizu.export.bundle import export_bundle
from kizu.io import write_image
from kizu.io.bundle import load_bundle
from kizu.synth import make_fine, make_shapes, write_mvtec
from tests.helpers import FAST_AE

CASES = [("patch-knn", {}, "parts"), ("patch-knn", {"preset": "pixels", "k": 2, "sigma": 1.0}, "texture"),
         ("autoencoder", FAST_AE, "parts"), ("autoencoder", {"preset": "seed", "epochs": 1}, "parts"),
         ("mt", {}, "parts"), ("patch-gaussian", {}, "parts")]


@pytest.mark.parametrize("detector, options, mode", CASES)
def test_every_detector_exports_with_the_same_scores_and_verdicts(detector, options, mode, tmp_path):
    data = make_fine(24, 6, 2, size=32, seed=4, mode=mode)
    model = fit_model(data.train, TrainConfig(detector=detector, options=options, alpha=0.1))
    parity = export_bundle(model, tmp_path / "b")
    assert parity.ok and parity.n_images == 4
    exported = load_bundle(tmp_path / "b")
    a, b = model.predict(data.test), exported.predict(data.test)
    spread = np.ptp(model.calibration.scores)
    assert np.abs(a.scores - b.scores).max() <= 1e-4 * spread
    assert np.array_equal(a.defective, b.defective) and np.array_equal(a.p_values, b.p_values)
    meta = json.loads((tmp_path / "b" / "bundle.json").read_text())
    assert meta["model"]["detector"]["name"] == detector and meta["parity"]["verdicts_differ"] == 0


def test_the_seed_task_default_model_exports_where_good_images_match_the_memory_almost_exactly(tmp_path):
    """Perfect renders: good images sit at distances near 0 from the memory, where the
    ‖q‖² + ‖m‖² − 2 q·m formula's rounding would dominate; both runtimes recompute them exactly."""
    data = make_shapes(60, 10, 10, seed=1)
    model = fit_model(data.train, TrainConfig())
    parity = export_bundle(model, tmp_path / "b")
    assert parity.ok and parity.relative < 1e-5
    a, b = model.predict(data.test), load_bundle(tmp_path / "b").predict(data.test)
    assert np.abs(a.scores - b.scores).max() <= 1e-5 * np.ptp(model.calibration.scores)
    assert np.array_equal(a.defective, b.defective)


def test_a_tiled_model_exports_its_tile_and_stitches_in_numpy(tmp_path):
    data = make_fine(20, 3, 1, size=48, seed=2, mode="texture")
    model = fit_model(data.train, TrainConfig(options={"preset": "pixels"}, tile=32, tile_stride=16, alpha=0.1))
    export_bundle(model, tmp_path / "b")
    np.testing.assert_allclose(load_bundle(tmp_path / "b").predict(data.test).scores, model.predict(data.test).scores,
                               rtol=1e-5)


def test_a_bundle_that_would_score_differently_is_not_written(tmp_path, monkeypatch):
    data = make_fine(24, 0, 0, size=32, seed=4, mode="parts")
    model = fit_model(data.train, TrainConfig(options={"preset": "pixels"}, alpha=0.1))
    monkeypatch.setattr(bundle_module, "TOLERANCE", -1.0)  # nothing can agree closely enough
    with pytest.raises(KizuError, match="no bundle written"):
        export_bundle(model, tmp_path / "b")
    assert not (tmp_path / "b").exists() and not list(tmp_path.iterdir())


def test_the_onnx_runtime_imports_no_pytorch_scipy_or_scikit(tmp_path):
    data = make_fine(24, 4, 1, size=32, seed=5, mode="parts")
    model = fit_model(data.train, TrainConfig(alpha=0.1))  # the default: reference and golden template too
    export_bundle(model, tmp_path / "b")
    np.save(tmp_path / "x.npy", data.test)
    code = f"""
import sys, json
for name in ("torch", "scipy", "skimage", "sklearn", "matplotlib"):
    sys.modules[name] = None  # any import of them fails
import numpy as np, kizu
model = kizu.load_bundle({str(tmp_path / "b")!r})
pred = model.predict(np.load({str(tmp_path / "x.npy")!r}))
v = model.inspect(np.load({str(tmp_path / "x.npy")!r}))
print(json.dumps([pred.scores.tolist(), pred.defective.tolist(), [r["regions"] for r in map(vars, v)],
                  model.calibration.statement()]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    scores, defective, _, statement = json.loads(out.stdout)
    assert statement == model.calibration.statement()  # the guarantee in words needs no SciPy
    expected = model.predict(data.test)
    np.testing.assert_allclose(scores, expected.scores, rtol=1e-5)
    assert defective == expected.defective.tolist()


LINE_PC = """
import sys
for name in ("torch", "scipy", "skimage", "sklearn", "matplotlib"):
    sys.modules[name] = None  # a line PC with numpy, Pillow, onnxruntime, safetensors and the CLI's Typer
from kizu.cli import app
sys.argv = ["kizu", *sys.argv[1:]]
app()
"""


def test_a_line_pc_without_pytorch_or_scipy_predicts_and_states_with_a_bundle(tmp_path):
    data = make_fine(24, 20, 1, size=32, seed=5, mode="parts")
    model = fit_model(data.train, TrainConfig(alpha=0.1))
    save_model(model, tmp_path / "m")
    export_bundle(model, tmp_path / "b")
    for i, a in enumerate(data.test):
        write_image(tmp_path / "in" / f"{i:02d}.png", a)

    def kizu(*args):
        return subprocess.run([sys.executable, "-c", LINE_PC, *map(str, args)], capture_output=True, text=True)

    ok = kizu("predict", tmp_path / "b", tmp_path / "in", "--out", tmp_path / "r.csv")
    assert ok.returncode == 0 and "Traceback" not in ok.stderr, ok.stderr
    assert "not tested for drift (scipy is not installed)" in " ".join(ok.stderr.split())
    assert len((tmp_path / "r.csv").read_text().splitlines()) == len(data.test) + 1
    folder = kizu("predict", tmp_path / "m", tmp_path / "in", "--out", tmp_path / "r2.csv")
    text = " ".join(folder.stderr.split())
    assert folder.returncode != 0 and "Traceback" not in text and "kizu export" in text and "needs torch" in text
    overlays = kizu("predict", tmp_path / "b", tmp_path / "in", "--out", tmp_path / "r3.csv", "--overlays",
                    tmp_path / "ov")
    assert overlays.returncode != 0 and "needs matplotlib" in overlays.stderr and not (tmp_path / "r3.csv").exists()


def test_cli_export_and_predict_with_either_runtime(tmp_path):
    data = tmp_path / "parts"
    write_mvtec(make_fine(24, 6, 2, size=32, seed=6, mode="parts"), data)
    runner = CliRunner()
    assert runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "m"), "--quiet", "--backbone", "pixels",
                               "--alpha", "0.1"]).exit_code == 0
    res = runner.invoke(app, ["export", str(tmp_path / "m"), "--out", str(tmp_path / "b")])
    assert res.exit_code == 0 and "no verdict differs" in res.output, res.output
    rows = {}
    for name, args in (("torch", [str(tmp_path / "m")]), ("bundle", [str(tmp_path / "b")]),
                       ("onnx", [str(tmp_path / "m"), "--runtime", "onnx"])):
        res = runner.invoke(app, ["predict", *args, str(data / "test"), "--out", str(tmp_path / f"{name}.csv")])
        assert res.exit_code == 0, res.output
        rows[name] = list(csv.DictReader((tmp_path / f"{name}.csv").open()))
    for other in ("bundle", "onnx"):
        assert [r["defective"] for r in rows[other]] == [r["defective"] for r in rows["torch"]]
        np.testing.assert_allclose([float(r["score"]) for r in rows[other]], [float(r["score"]) for r in rows["torch"]],
                                   rtol=1e-5)
    res = runner.invoke(app, ["predict", str(tmp_path / "b"), str(data / "test"), "--out", str(tmp_path / "x.csv"),
                              "--runtime", "torch"])
    assert res.exit_code == 2 and "onnxruntime only" in res.output


def test_a_model_without_check_images_needs_images_to_export(tmp_path):
    from kizu.io import load_model

    data = make_fine(24, 0, 0, size=32, seed=7, mode="parts")
    model = fit_model(data.train, TrainConfig(options={"preset": "pixels"}, alpha=0.1))
    model.check_images = None
    save_model(model, tmp_path / "m")
    with pytest.raises(KizuError, match="--images"):
        export_bundle(load_model(tmp_path / "m"), tmp_path / "b")
    x = model.preprocessor.apply_all(list(data.train[:3, None]))
    assert export_bundle(load_model(tmp_path / "m"), tmp_path / "b", images=x).n_images == 3
