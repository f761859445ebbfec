import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from kizu import TrainConfig, fit_model, load_model, save_model
from kizu.cli import app
from kizu.errors import InputError
from kizu.files import inspect_files, score_files
from kizu.io.images import ImageFiles, write_image
from kizu.io.model_file import MODEL_JSON
from kizu.model.preprocess import Preprocessor
from tests.helpers import PIXELS


def _images(n, h, w, c=1, seed=0):
    rng = np.random.default_rng(seed)
    return [(0.4 + 0.2 * rng.random((c, h, w))).astype(np.float32) for _ in range(n)]


def _paths(n):
    return [Path(f"img{i}.png") for i in range(n)]


def test_large_images_are_inspected_at_a_capped_size():
    imgs = _images(2, 600, 400)
    pre = Preprocessor.for_training(imgs, _paths(2), max_side=512)
    assert pre.size == (512, 341) and pre.input_size == (600, 400) and not pre.resize
    assert pre.apply(imgs[0]).shape == (1, 512, 341)
    # the model still expects its training size, also when an input happens to have the capped size
    with pytest.raises(InputError, match="expects 400x600 px"):
        pre.apply(np.zeros((1, 512, 341), np.float32), "small.png")
    back = Preprocessor.from_json(json.loads(json.dumps(pre.to_json())))
    assert back == pre
    # saved before the cap existed: no input_size, the size is the input size
    old = {k: v for k, v in pre.to_json().items() if k != "input_size"} | {"size": [600, 400]}
    assert Preprocessor.from_json(old).input_size is None


@pytest.mark.parametrize("kw", [dict(max_side=0), dict(max_side=None), dict(tile=64), dict(resize_to=(300, 200))])
def test_no_cap_when_tiling_resizing_or_switched_off(kw):
    pre = Preprocessor.for_training(_images(1, 600, 400), _paths(1), **kw)
    assert pre.input_size is None and pre.size == kw.get("resize_to", (600, 400))


def test_small_images_are_left_alone_and_bad_caps_are_refused():
    assert Preprocessor.for_training(_images(1, 64, 48), _paths(1)).size == (64, 48)
    with pytest.raises(InputError, match="max_side"):
        Preprocessor.for_training(_images(1, 64, 48), _paths(1), max_side=-1)


def test_capped_model_maps_at_input_resolution_and_round_trips(tmp_path):
    imgs = _images(12, 120, 72, seed=1)
    m = fit_model(imgs, TrainConfig(detector="patch-knn", options=PIXELS, seed=0, max_side=40, folds=3, alpha=0.2))
    assert m.preprocessor.size == (40, 24) and m.preprocessor.input_size == (120, 72)
    test = _images(2, 120, 72, seed=2)
    test[1][0, 50:54, 30:34] = 0.0
    v = m.inspect(test)
    assert v[0].anomaly_map.shape == (120, 72)
    assert v[1].score > v[0].score
    loaded = load_model(save_model(m, tmp_path / "m"))
    assert [x.score for x in loaded.inspect(test)] == [x.score for x in v]


def test_cli_max_side(tmp_path):
    for i, img in enumerate(_images(10, 90, 60, seed=3)):
        write_image(tmp_path / "good" / f"{i}.png", img)
    res = CliRunner().invoke(app, ["train", str(tmp_path / "good"), "--out", str(tmp_path / "m"), "--quiet",
                                   "--backbone", "pixels", "--max-side", "32", "--folds", "2", "--alpha", "0.2"])
    assert res.exit_code == 0, res.output
    pre = json.loads((tmp_path / "m" / MODEL_JSON).read_text())["preprocess"]
    assert pre["size"] == [32, 21] and pre["input_size"] == [90, 60]


def test_training_from_files_equals_training_from_arrays(tmp_path):
    from kizu.io.images import ImageFiles, read_image

    paths = []
    for i, img in enumerate(_images(10, 70, 50, c=3, seed=4)):
        paths.append(tmp_path / f"{i}.png")
        write_image(paths[-1], img)
    files = ImageFiles(paths)
    assert len(files) == 10 and files[3].shape == (3, 70, 50)
    opts = dict(detector="patch-knn", options=PIXELS, seed=0, max_side=32, folds=2, alpha=0.2)
    from_files = fit_model(ImageFiles(paths), TrainConfig(**opts), paths=paths)
    from_arrays = fit_model([read_image(p) for p in paths], TrainConfig(**opts), paths=paths)
    assert from_files.preprocessor == from_arrays.preprocessor
    test = _images(3, 70, 50, c=3, seed=5)
    assert [v.score for v in from_files.inspect(test)] == [v.score for v in from_arrays.inspect(test)]


def test_score_files_agrees_with_inspect_in_batches(tmp_path):
    paths = []
    for i, img in enumerate(_images(7, 40, 30, seed=6)):
        paths.append(tmp_path / f"{i}.png")
        write_image(paths[-1], img)
    m = fit_model(ImageFiles(paths[:6]), TrainConfig(detector="patch-knn", options=PIXELS, seed=0, folds=2, alpha=0.2),
                  paths=paths[:6])
    verdicts = inspect_files(m, paths, batch_size=3)
    scores = score_files(m, paths, batch_size=2)
    np.testing.assert_array_equal(scores, [v.score for v in verdicts])
    np.testing.assert_array_equal(m.calibration.p_values(scores), [v.p_value for v in verdicts])
    assert score_files(m, []).shape == (0,)
