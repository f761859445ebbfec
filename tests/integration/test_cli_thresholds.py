"""`kizu threshold` and `kizu drift` (operating points without retraining; drift of good batches)."""

import json
import shutil

from typer.testing import CliRunner

from kizu.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def _copy(model, tmp_path):
    dst = tmp_path / "model"
    shutil.copytree(model, dst)
    return dst


def _cal(model):
    return json.loads((model / "model.json").read_text())["calibration"]


def test_new_alpha_without_retraining(trained_model, tmp_path):
    m = _copy(trained_model, tmp_path)
    before = _cal(m)
    res = run("threshold", m, "--rule", "conformal", "--alpha", "0.3")
    assert res.exit_code == 0, res.output
    after = _cal(m)
    assert after["alpha"] == 0.3 and after["rule"] == "conformal"
    assert after["scores"] == before["scores"]  # same calibration images, new operating point
    assert before["threshold"] is None or after["threshold"] < before["threshold"]
    assert after["threshold"] is not None  # 0.3 is reachable with 12 calibration images


def test_label_based_rules_record_the_rule(trained_model, shapes_dir, tmp_path):
    m = _copy(trained_model, tmp_path)
    for args in (["--rule", "f1"], ["--rule", "youden"], ["--rule", "recall", "--recall", "1.0"],
                 ["--rule", "cost", "--cost-miss", "10", "--cost-false-alarm", "1"]):
        res = run("threshold", m, shapes_dir, *args)
        assert res.exit_code == 0, res.output
        cal = _cal(m)
        assert cal["rule"] == args[1] and cal["params"]["data"] == str(shapes_dir)
        assert cal["params"]["tp"] + cal["params"]["fn"] == 10
        if args[1] == "recall":
            assert cal["params"]["fn"] == 0


def test_rules_needing_more_say_so(trained_model, tmp_path):
    m = _copy(trained_model, tmp_path)
    res = run("threshold", m, "--rule", "f1")
    assert res.exit_code == 2 and "labelled data folder" in res.output
    res = run("threshold", m, "--rule", "conditional", "--alpha", "0.05", "--delta", "0.1")
    assert res.exit_code == 2 and "at least 45 calibration images" in " ".join(res.output.split())
    res = run("threshold", m, "--rule", "magic")
    assert res.exit_code == 2 and "unknown threshold rule" in res.output


def test_drift_on_good_and_on_defective_batches(shapes_dir, tmp_path):
    trained_model = tmp_path / "mt"
    assert run("train", shapes_dir, "--out", trained_model, "--detector", "mt", "--quiet").exit_code == 0
    res = run("drift", trained_model, shapes_dir / "test" / "good", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["n_images"] == 10 and "drifted" in out
    res = run("drift", trained_model, shapes_dir / "test" / "rectangle", "--exit-code")
    assert res.exit_code == 3, res.output  # rectangles are not the good images it was calibrated on
