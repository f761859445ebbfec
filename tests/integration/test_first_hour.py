"""A quality engineer's first hour: progress over the whole training, refusals before any work,
warnings about a batch that does not look like the training images, and a report that lists what
to look at."""

import csv
import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from kizu import TrainConfig, fit_model
from kizu.cli import app
from kizu.io import write_image
from kizu.synth import make_fine, make_shapes, write_mvtec
from tests.helpers import PIXELS

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_progress_covers_every_fit_and_stage_in_order():
    steps = []
    fit_model(make_shapes(30, 0, 0, seed=1).train,
              TrainConfig(detector="patch-knn", options=PIXELS, folds=3, calibration="cross"), progress=steps.append)
    stages = list(dict.fromkeys(s.stage for s in steps))
    assert stages == ["golden template", "fold 1/3", "fold 2/3", "fold 3/3", "final fit", "calibration"]
    assert all(s.fits == 4 for s in steps)
    fractions = [s.fraction for s in steps]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and 0.75 <= fractions[-1] <= 1.0


def test_leave_own_out_progress_has_one_fit_and_no_folds():
    steps = []
    model = fit_model(make_shapes(30, 0, 0, seed=1).train,
                      TrainConfig(detector="patch-knn", options=PIXELS, folds=3), progress=steps.append)
    assert model.summary["calibration"] == "loo" and model.summary["n_calibration"] == 30
    stages = list(dict.fromkeys(s.stage for s in steps))
    assert stages == ["golden template", "final fit", "calibration"]
    assert all(s.fits == 1 for s in steps)


def test_too_few_images_are_refused_before_any_work_naming_the_folder_and_the_way_out(tmp_path):
    for i, img in enumerate(make_shapes(12, 0, 0, seed=2).train):
        write_image(tmp_path / "good" / f"{i:02d}.png", img)
    res = run("train", tmp_path / "good", "--out", tmp_path / "m")
    assert res.exit_code == 2 and "Traceback" not in res.output
    text = " ".join(res.output.split())
    assert str(tmp_path / "good") in text and "at least 19 good images" in text and "--alpha 0.077" in text
    assert not (tmp_path / "m").exists()
    assert run("train", tmp_path / "good", "--out", tmp_path / "m", "--alpha", "0.1", "--quiet",
               "--backbone", "pixels").exit_code == 0


@pytest.mark.parametrize("make_out", [lambda p: p / "a-file.txt", lambda p: p / "other"])
def test_an_out_that_cannot_hold_a_model_is_refused_before_training(shapes_dir, tmp_path, make_out):
    (tmp_path / "a-file.txt").write_text("x")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    res = run("train", shapes_dir, "--out", make_out(tmp_path), "--backbone", "pixels")
    assert res.exit_code == 2 and "Traceback" not in res.output and "training" not in res.output.lower().split(":")[0]
    assert str(make_out(tmp_path)) in " ".join(res.output.split())


def test_predict_outputs_that_are_the_wrong_kind_of_path_are_one_line_errors(trained_model, shapes_dir, tmp_path):
    (tmp_path / "a-dir").mkdir()
    (tmp_path / "a-file").write_text("x")
    for extra in (["--out", tmp_path / "a-dir"], ["--out", tmp_path / "r.csv", "--maps", tmp_path / "a-file"],
                  ["--out", tmp_path / "r.csv", "--overlays", tmp_path / "a-file"]):
        res = run("predict", trained_model, shapes_dir / "test" / "good", *extra)
        assert res.exit_code == 2 and "Traceback" not in res.output and res.output.startswith("error:")


def test_a_batch_unlike_the_training_images_gets_one_plain_warning_and_the_csv(trained_model, shapes_dir, tmp_path):
    # the good test images, inverted: a different "camera"
    for p in sorted((shapes_dir / "test" / "good").glob("*.png")) * 3:
        a = 255 - np.asarray(Image.open(p))
        Image.fromarray(a).save(tmp_path / f"{len(list(tmp_path.glob('*.png'))):02d}.png")
    res = run("predict", trained_model, tmp_path, "--out", tmp_path / "r.csv")
    assert res.exit_code == 0 and "does not look like the training images" in res.output
    assert len(list(csv.DictReader((tmp_path / "r.csv").open()))) == 30
    good = run("predict", trained_model, shapes_dir / "test" / "good", "--out", tmp_path / "g.csv")
    assert good.exit_code == 0 and "does not look like" not in good.output


def test_colour_images_for_a_grey_model_are_stated_once(trained_model, shapes_dir, tmp_path):
    for k, p in enumerate(sorted((shapes_dir / "test" / "good").glob("*.png"))[:3]):
        a = np.asarray(Image.open(p).convert("RGB")).copy()
        a[..., 0] = a[..., 0] // 2  # really colour
        Image.fromarray(a).save(tmp_path / f"{k}.png")
    res = run("predict", trained_model, tmp_path, "--out", tmp_path / "r.csv")
    assert res.exit_code == 0 and res.output.count("converted to grey") == 1 and "3 of 3 images" in res.output


def test_the_report_lists_every_miss_and_false_alarm_with_overlays(tmp_path):
    data = tmp_path / "parts"
    write_mvtec(make_fine(40, 12, 3, size=32, seed=3, mode="parts"), data)
    assert run("train", data, "--out", tmp_path / "m", "--quiet", "--backbone", "pixels", "--alpha", "0.2").exit_code == 0
    res = run("evaluate", tmp_path / "m", data, "--out", tmp_path / "ev")
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    kinds = [r["kind"] for r in m["review"]]
    assert kinds.count("missed defect") == min(m["fn"], 12) and kinds.count("false alarm") == min(m["fp"], 12)
    html = (tmp_path / "ev" / "report.html").read_text()
    assert "Look at these" in html and "loss_curve" not in html and 'alt="reconstruction"' not in html
    assert "Detector <b>patch-knn</b> (preset default)" in html
    for r in m["review"]:
        assert r["name"] in html and "/" in r["name"]  # good/003.png, stain/001.png
    assert len(list((tmp_path / "ev" / "figures" / "review").glob("*.png"))) == len(m["review"])


def test_evaluate_refuses_a_mask_of_the_wrong_size_before_inspecting(trained_model, shapes_dir, tmp_path):
    import shutil

    data = tmp_path / "d"
    shutil.copytree(shapes_dir, data)
    (data / "ground_truth" / "rectangle").mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(data / "ground_truth" / "rectangle" / "0000_mask.png")
    res = run("evaluate", trained_model, data, "--out", tmp_path / "ev")
    assert res.exit_code == 2 and "0000_mask.png" in res.output and "5x5" in res.output
    assert not (tmp_path / "ev").exists()


def test_threshold_says_which_alpha_it_uses_and_warns_about_tuning_on_the_evaluated_set(trained_model, shapes_dir,
                                                                                        tmp_path):
    import shutil

    model = tmp_path / "m"
    shutil.copytree(trained_model, model)
    res = run("threshold", model, "--rule", "conformal", "--alpha", "0.2")
    assert res.exit_code == 0 and "alpha=0.2" in res.output
    res = run("threshold", model, "--rule", "conformal")
    assert res.exit_code == 0 and "alpha 0.2 is the model's" in res.output
    res = run("threshold", model, shapes_dir, "--rule", "f1")
    assert res.exit_code == 0 and "optimistic" in res.output


def test_help_is_readable_at_80_columns_and_lists_commands_in_workflow_order():
    res = CliRunner().invoke(app, ["--help"], terminal_width=80)
    lines = res.output.splitlines()
    commands = [line.split()[0] for line in lines[lines.index("Commands:") + 1:] if line.strip()]
    assert max(len(line) for line in lines) <= 80
    assert not [line for line in lines[lines.index("Commands:") + 1:] if line.endswith("...")]  # nothing cut
    assert commands[:5] == ["demo", "synth", "train", "predict", "evaluate"]
    res = CliRunner().invoke(app, ["train", "--help"], terminal_width=80)
    assert max(len(line) for line in res.output.splitlines()) <= 80 and "--calibration-fraction" in res.output


def test_help_is_fast_because_nothing_heavy_is_imported():
    import subprocess
    import sys
    import time

    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "kizu", "--help"], check=True, capture_output=True)
    assert time.perf_counter() - t0 < 3.0  # ~0.3 s on a quiet 2-core machine; generous for a loaded CI
