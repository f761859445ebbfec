"""Every detector trains, saves, loads and predicts through the same CLI flags."""

import csv
import json

import pytest
import torch
from typer.testing import CliRunner

from kizu.cli import app
from kizu.detectors import available, detector_class
from tests.helpers import term

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_registry_lists_all_detectors():
    assert {"autoencoder", "mt", "patch-gaussian", "patch-knn"} <= set(available())
    res = run("detectors")
    assert res.exit_code == 0 and "patch-knn (the default)" in res.output
    # every option of every detector is listed with the value train uses and a one-line explanation
    text = " ".join(res.output.split())
    for name in available():
        for option, value, help_text in detector_class(name).option_help():
            if option != "preset":
                assert help_text and f"{option} {value!r} {help_text.split()[0]}" in text, (name, option)


@pytest.mark.parametrize("detector, flags", [
    ("mt", []),
    ("patch-gaussian", ["--backbone", "pixels"]),
    ("patch-knn", ["--backbone", "pixels", "--k", "2"]),
])
def test_detector_through_the_cli(detector, flags, shapes_dir, tmp_path):
    model = tmp_path / "m"
    res = run("train", shapes_dir, "--out", model, "--detector", detector, "--quiet", *flags)
    assert res.exit_code == 0, res.output
    cfg = json.loads((model / "model.json").read_text())["detector"]
    assert cfg["name"] == detector
    if "--k" in flags:
        assert cfg["config"]["k"] == 2 and cfg["config"]["backbone"] == "pixels"
    for name in ("a.csv", "b.csv"):
        res = run("predict", model, shapes_dir / "test", "--out", tmp_path / name)
        assert res.exit_code == 0, res.output
    a, b = (list(csv.DictReader((tmp_path / n).open())) for n in ("a.csv", "b.csv"))
    assert [r["score"] for r in a] == [r["score"] for r in b]  # loaded twice, identical scores
    res = run("evaluate", model, shapes_dir, "--out", tmp_path / "ev")
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["image_auroc"] > 0.7


def test_mt_taguchi_selection_from_defective_images(shapes_dir, tmp_path):
    model = tmp_path / "m"
    res = run("train", shapes_dir, "--out", model, "--detector", "mt", "--quiet",
              "--defective", shapes_dir / "test" / "rectangle")
    assert res.exit_code == 0, res.output
    cfg = json.loads((model / "model.json").read_text())["detector"]["config"]
    assert cfg["selected_groups"] is not None and len(cfg["selected_groups"]) >= 1


def test_unknown_flag_for_a_detector_is_a_clear_error(shapes_dir, tmp_path):
    res = run("train", shapes_dir, "--out", tmp_path / "m", "--detector", "mt", "--backbone", "lite0")
    assert res.exit_code == 2 and "backbone" in res.output


def test_bad_option_value_fails_before_training_with_one_clear_line(shapes_dir, tmp_path):
    res = run("train", shapes_dir, "--out", tmp_path / "m", "--brightness", "-1")
    assert res.exit_code == 2 and "brightness must be >= 0" in res.output
    assert "training" not in res.output and not (tmp_path / "m").exists()
    res = run("train", shapes_dir, "--out", tmp_path / "m", "--feature_dim", "abc")
    assert res.exit_code == 2 and "patch-knn" in res.output and "feature_dim='abc'" in res.output


def test_default_detector_is_patch_knn_with_lite0(shapes_dir, tmp_path):
    from kizu.detectors import DEFAULT_DETECTOR
    from kizu.detectors.patch_knn import PatchKNNOptions

    res = run("train", shapes_dir, "--out", tmp_path / "m", "--quiet")
    assert res.exit_code == 0, res.output
    cfg = json.loads((tmp_path / "m" / "model.json").read_text())["detector"]
    assert cfg["name"] == DEFAULT_DETECTOR == "patch-knn"
    defaults = PatchKNNOptions()
    assert cfg["config"]["backbone"] == defaults.backbone == "lite0"
    assert cfg["config"]["brightness"] == defaults.brightness == 2.0
    assert cfg["config"]["feature_dim"] is defaults.feature_dim is None
    assert cfg["config"]["brightness_surround"] == defaults.brightness_surround == 15


def test_detector_option_values_parse_as_json_and_none_means_null():
    from kizu.cli.common import parse_options

    assert parse_options(["feature_dim=None", "k=3", "whiten=true", "stages=[1,2]", "backbone=lite0",
                          "max-memory=null"]) == {
        "feature_dim": None, "k": 3, "whiten": True, "stages": [1, 2], "backbone": "lite0", "max_memory": None}


def test_device_flag_reaches_the_default_detector(shapes_dir, tmp_path):
    res = run("train", shapes_dir, "--out", tmp_path / "m", "--quiet", "--device", "cpu")
    assert res.exit_code == 0, res.output
    assert "device" not in json.loads((tmp_path / "m" / "model.json").read_text())["detector"]["config"]
    res = run("train", shapes_dir, "--out", tmp_path / "m2", "--device", "gpu")
    assert res.exit_code == 2 and "--device 'gpu'" in res.output and not (tmp_path / "m2").exists()


def test_device_flag_with_a_cpu_only_detector(shapes_dir, tmp_path):
    res = run("train", shapes_dir, "--out", tmp_path / "m", "--quiet", "--detector", "mt", "--device", "cpu")
    assert res.exit_code == 0, res.output
    if not torch.cuda.is_available():
        return
    res = run("train", shapes_dir, "--out", tmp_path / "m2", "--detector", "mt", "--device", "cuda")
    assert res.exit_code == 2 and "runs on the CPU only" in res.output


def test_template_flags(shapes_dir, tmp_path):
    # the seed's shapes: one disk in (nearly) one place, so the default turns the golden template on
    res = run("train", shapes_dir, "--out", tmp_path / "on", "--quiet")
    assert res.exit_code == 0, res.output
    assert "one part in a fixture" in res.output
    meta = json.loads((tmp_path / "on" / "model.json").read_text())
    assert term(meta, "template") is not None and meta["training"]["template"] is True
    res = run("train", shapes_dir, "--out", tmp_path / "off", "--quiet", "--no-template")
    assert res.exit_code == 0, res.output
    meta = json.loads((tmp_path / "off" / "model.json").read_text())
    assert term(meta, "template") is None and "one part in a fixture" not in res.output
    # the saved template is used by predict: the CSV's scores are the combined ones
    res = run("predict", tmp_path / "on", shapes_dir / "test", "--out", tmp_path / "on.csv")
    assert res.exit_code == 0, res.output
    res = run("predict", tmp_path / "off", shapes_dir / "test", "--out", tmp_path / "off.csv")
    assert res.exit_code == 0, res.output
    scores = [[float(r["score"]) for r in csv.DictReader(open(tmp_path / f"{m}.csv"))] for m in ("on", "off")]
    assert scores[0] != scores[1]
