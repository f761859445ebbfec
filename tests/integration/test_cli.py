"""The CLI contract (DESIGN.md) and bad-input handling."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from kizu import load_model, save_model
from kizu.cli import app
from tests.helpers import PIXELS

runner = CliRunner()
FAST = ["--quiet", "--detector", "autoencoder", "-O", "min_steps=30", "-O", "epochs=2", "--alpha", "0.5"]


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_predict_csv_columns_and_maps_layout(trained_model, shapes_dir, tmp_path):
    out = tmp_path / "results.csv"
    res = run("predict", trained_model, shapes_dir / "test", "--out", out, "--maps", tmp_path / "maps",
              "--overlays", tmp_path / "ov")
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0])[:4] == ["path", "score", "p_value", "defective"]
    assert len(rows) == 20 and {r["defective"] for r in rows} <= {"0", "1"}
    for r in rows:
        rel = r["path"].split("/test/", 1)[1]  # relative to the INPUT folder
        m = np.load(tmp_path / "maps" / rel.replace(".png", ".npy"))
        assert m.shape == (16, 16) and m.dtype == np.float32
        assert (tmp_path / "ov" / rel).is_file()
        assert isinstance(json.loads(r["regions"]), list)


def test_evaluate_metrics_keys_and_report(trained_model, shapes_dir, tmp_path):
    res = run("evaluate", trained_model, shapes_dir, "--out", tmp_path / "ev")
    assert res.exit_code == 0, res.output
    assert "True Positives (TP):" in res.output
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    for k in ["image_auroc", "image_aupr", "threshold", "tp", "fp", "fn", "tn", "precision", "recall", "f1", "fpr"]:
        assert k in m
    assert m["tp"] + m["fn"] == 10 and m["fp"] + m["tn"] == 10
    html = (tmp_path / "ev" / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 7 and "What the threshold means" in html


def test_predict_in_a_fresh_process_matches_evaluate(trained_model, shapes_dir, tmp_path):
    from kizu.evaluation import evaluate
    from kizu.io.layouts import test_set

    ev = evaluate(load_model(trained_model), test_set(shapes_dir))
    expected = {v.path: v.score for v in ev.verdicts}
    out = tmp_path / "r.csv"
    proc = subprocess.run([sys.executable, "-m", "kizu", "predict", str(trained_model), str(shapes_dir / "test"),
                           "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    got = {r["path"]: float(r["score"]) for r in csv.DictReader(out.open())}
    assert got.keys() == expected.keys()
    for k in got:
        assert got[k] == pytest.approx(expected[k], rel=1e-8)


def test_synth_writes_mvtec_layout(tmp_path):
    res = run("synth", "shapes", tmp_path / "s", "--n-train", 4, "--n-test-normal", 2, "--n-test-anomaly", 3,
              "--size", 16, "--seed", 1, "--jitter", "intended")
    assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "s" / "train" / "good").glob("*.png"))) == 4
    assert len(list((tmp_path / "s" / "test" / "rectangle").glob("*.png"))) == 3
    res = run("synth", "fine", tmp_path / "f", "--n-train", 3, "--n-test-normal", 2, "--n-test-anomaly", 4)
    assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "f" / "ground_truth").rglob("*_mask.png"))) == 4


# ---- bad input: one clear line naming the file and the problem, non-zero exit, no partial output ----

def _one_line_error(res, *needles):
    assert res.exit_code != 0
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    text = " ".join(res.output.split())
    assert "error:" in text and "Traceback" not in text
    for n in needles:
        assert n in text, text


def _good_folder(tmp_path, n=6, size=16):
    d = tmp_path / "good"
    d.mkdir()
    for i in range(n):
        Image.fromarray((np.random.default_rng(i).random((size, size)) * 255).astype(np.uint8)).save(d / f"{i}.png")
    return d


def test_truncated_image(tmp_path, trained_model):
    d = _good_folder(tmp_path)
    data = (d / "0.png").read_bytes()
    (d / "bad.png").write_bytes(data[: len(data) // 2])
    _one_line_error(run("train", d, "--out", tmp_path / "m", *FAST), "bad.png", "truncated")
    out = tmp_path / "r.csv"
    _one_line_error(run("predict", trained_model, d, "--out", out), "bad.png")
    assert not out.exists() and not (tmp_path / "m").exists()


def test_non_image_with_image_suffix(tmp_path, trained_model):
    d = _good_folder(tmp_path)
    (d / "notes.png").write_text("this is not a picture")
    out = tmp_path / "r.csv"
    _one_line_error(run("predict", trained_model, d, "--out", out, "--maps", tmp_path / "maps"),
                    "notes.png", "not an image")
    assert not out.exists() and not (tmp_path / "maps").exists()


def test_empty_folder(tmp_path, trained_model):
    (tmp_path / "empty").mkdir()
    _one_line_error(run("train", tmp_path / "empty", "--out", tmp_path / "m", *FAST), "empty", "no image files")
    _one_line_error(run("predict", trained_model, tmp_path / "empty", "--out", tmp_path / "r.csv"), "no image files")
    assert not (tmp_path / "r.csv").exists()


def test_mvtec_folder_without_train_good(tmp_path):
    (tmp_path / "cat" / "train" / "bad").mkdir(parents=True)
    _one_line_error(run("train", tmp_path / "cat", "--out", tmp_path / "m", *FAST), "no train/good")


def test_mixed_sizes_and_orientations_train_without_resize(tmp_path):
    d = tmp_path / "good"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):  # landscape images of several sizes, and a few portrait ones
        h, w = int(rng.integers(20, 30)), int(rng.integers(32, 44))
        a = (100 + 20 * rng.random((h, w))).astype(np.uint8)
        Image.fromarray(a.T.copy() if i % 4 == 0 else a).save(d / f"{i}.png")
    res = run("train", d, "--out", tmp_path / "m", *FAST)
    assert res.exit_code == 0, res.output
    assert "portrait images turned to landscape" in " ".join(res.output.split())
    pre = json.loads((tmp_path / "m" / "model.json").read_text())["preprocess"]
    assert pre["resize"] is True and pre["orient"] == "landscape" and pre["size"][0] < pre["size"][1]
    out = tmp_path / "r.csv"
    assert run("predict", tmp_path / "m", d, "--out", out, "--maps", tmp_path / "maps").exit_code == 0
    for i in (0, 1):  # maps at each input's own size and orientation
        img = np.asarray(Image.open(d / f"{i}.png"))
        assert np.load(tmp_path / "maps" / f"{i}.npy").shape == img.shape
    _one_line_error(run("train", d, "--out", tmp_path / "t", "--tile", "16", *FAST), "--tile", "one size")


def test_size_differs_from_the_model(tmp_path, trained_model):
    d = _good_folder(tmp_path, n=2, size=32)
    out = tmp_path / "r.csv"
    _one_line_error(run("predict", trained_model, d, "--out", out), "0.png", "32x32", "expects 16x16")
    assert not out.exists()


def test_missing_input_and_model(tmp_path, trained_model):
    _one_line_error(run("predict", trained_model, tmp_path / "nope.png", "--out", tmp_path / "r.csv"), "nope.png")
    _one_line_error(run("predict", tmp_path / "nomodel", tmp_path, "--out", tmp_path / "r.csv"), "nomodel")


def test_unknown_detector_option(tmp_path, shapes_dir):
    _one_line_error(run("train", shapes_dir, "--out", tmp_path / "m", "-O", "wings=3", "--quiet"), "wings")



def test_evaluate_leaves_out_defective_images_without_a_mask(tmp_path):
    """A defective image whose mask is missing has unknown pixels: they are not counted as good ones."""
    from kizu import TrainConfig, fit_model
    from kizu.evaluation import evaluate
    from kizu.io.layouts import test_set
    from kizu.synth import make_fine, write_mvtec

    data = make_fine(20, 6, 6, size=32, seed=0)
    root = tmp_path / "fine"
    write_mvtec(data, root)
    model = fit_model(data.train, TrainConfig(detector="patch-knn", options=PIXELS, seed=0))
    save_model(model, tmp_path / "m")
    mask = sorted((root / "ground_truth").rglob("*_mask.png"))[0]
    image = root / "test" / mask.parent.name / mask.name.replace("_mask.png", ".png")
    mask.unlink()

    res = run("evaluate", tmp_path / "m", root, "--out", tmp_path / "ev")
    assert res.exit_code == 0, res.output
    assert "1 defective image(s) have no ground-truth mask" in " ".join(res.output.split())
    assert "leave out 1 defective image(s) without a ground-truth mask" in (tmp_path / "ev" / "report.html").read_text()

    ev = evaluate(model, test_set(root))
    assert ev.metrics["pixel_metrics_left_out"] == [str(image)]
    assert ev.metrics["n_defective"] == int(data.test_labels.sum())  # it still counts for the image-level metrics
    image.unlink()
    without = evaluate(model, test_set(root))
    assert "pixel_metrics_left_out" not in without.metrics
    assert ev.metrics["pixel_auroc"] == without.metrics["pixel_auroc"]
    assert ev.metrics["aupro"] == without.metrics["aupro"]


def test_error_messages_print_paths_with_brackets_as_they_are(tmp_path):
    """Rich markup must not eat a file name: ``a[bold]b.png`` is named as such, not as ``ab.png``."""
    good = tmp_path / "d" / "train" / "good"
    good.mkdir(parents=True)
    for i in range(4):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(good / f"{i}.png")
    (good / "a[bold]b.png").write_bytes(b"not an image")
    res = run("train", tmp_path / "d", "--out", tmp_path / "m", *FAST)
    assert res.exit_code == 2
    assert "a[bold]b.png: not an image file" in " ".join(res.output.split())


def test_predict_refuses_two_images_that_would_share_a_map_file(trained_model, shapes_dir, tmp_path):
    """x.png from two folders (or a.png beside a.jpg) would overwrite each other's map: an error
    naming both, and nothing written."""
    src = sorted((shapes_dir / "test").rglob("*.png"))[:2]
    for folder, image in zip(("a", "b"), src):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.png").write_bytes(image.read_bytes())
    out = tmp_path / "r.csv"
    res = run("predict", trained_model, tmp_path / "a" / "x.png", tmp_path / "b" / "x.png", "--out", out,
              "--maps", tmp_path / "maps")
    assert res.exit_code == 2
    assert "would write the same map/overlay file" in " ".join(res.output.split())
    assert not out.exists() and not (tmp_path / "maps").exists()
    # without maps or overlays nothing collides
    assert run("predict", trained_model, tmp_path / "a" / "x.png", tmp_path / "b" / "x.png", "--out", out).exit_code == 0
