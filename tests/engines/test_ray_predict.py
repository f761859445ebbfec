"""`kizu predict --engine ray` on a local Ray instance: the same results as local `kizu predict`,
bad files as error rows, and resuming a killed run. One Ray instance serves the whole module
(the ``ray_address`` fixture); under pytest-xdist they run in one worker (tests/conftest.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.engines.conftest import read_csv, run_cli

pytestmark = pytest.mark.usefixtures("ray_address")


def assert_same_results(got: dict[str, dict], expected: dict[str, dict]) -> None:
    """Rows of two results files: same scores (to 1e-6), verdicts, p-values and regions."""
    for path, row in got.items():
        ref = expected[path]
        assert float(row["score"]) == pytest.approx(float(ref["score"]), abs=1e-6), path
        assert row["defective"] == ref["defective"], path
        assert row["p_value"] == ref["p_value"] and row["regions"] == ref["regions"], path


def test_300_images_give_the_results_of_local_predict(engine_data, local_results, tmp_path):
    model, images = engine_data
    out = tmp_path / "results.csv"
    res = run_cli("predict", model, images, "--out", out, "--engine", "ray", "--workers", 2, "--batch-size", 16)
    assert res.exit_code == 0, res.output
    got = read_csv(out)
    assert list(got) == list(local_results)  # every file once, in local predict's order
    assert_same_results(got, local_results)
    assert {r["error"] for r in got.values()} == {""}
    assert "inspected 300 images on Ray (2 workers)" in res.output
    assert not (tmp_path / "results.csv.parts").exists()
    header = out.read_text().splitlines()[0]
    assert header == "path,score,p_value,defective,normalized_score,regions,error"


def test_parquet_output_with_maps_and_overlays_as_local_predict_writes_them(engine_data, tmp_path):
    import pyarrow.parquet as pq

    model, images = engine_data
    subset = tmp_path / "in"
    shutil.copytree(images / "defect", subset / "defect", ignore=lambda d, names: sorted(names)[12:])
    local = run_cli("predict", model, subset, "--out", tmp_path / "local.csv", "--maps", tmp_path / "lmaps")
    assert local.exit_code == 0, local.output
    res = run_cli("predict", model, subset, "--out", tmp_path / "r.parquet", "--engine", "ray", "--workers", 1,
                  "--batch-size", 5, "--maps", tmp_path / "maps", "--overlays", tmp_path / "ov")
    assert res.exit_code == 0, res.output
    table = pq.read_table(tmp_path / "r.parquet")
    assert table.column_names == ["path", "score", "p_value", "defective", "normalized_score", "regions", "error"]
    assert str(table.schema.field("defective").type) == "bool" and table.num_rows == 12
    expected = read_csv(tmp_path / "local.csv")
    for row in table.to_pylist():
        assert row["score"] == pytest.approx(float(expected[row["path"]]["score"]), abs=1e-6)
        assert int(row["defective"]) == int(expected[row["path"]]["defective"])
        assert json.loads(row["regions"]) == json.loads(expected[row["path"]]["regions"])
    for local_map in (tmp_path / "lmaps").rglob("*.npy"):
        rel = local_map.relative_to(tmp_path / "lmaps")
        np.testing.assert_allclose(np.load(tmp_path / "maps" / rel), np.load(local_map), atol=1e-6)
        assert (tmp_path / "ov" / rel.with_suffix(".png")).read_bytes()[:4] == b"\x89PNG"


def test_a_corrupt_file_mid_batch_becomes_a_row_with_its_error_and_each_file_is_inspected_once(engine_data, local_results, tmp_path):
    model, images = engine_data
    folder = tmp_path / "in"
    shutil.copytree(images / "good", folder, ignore=lambda d, names: sorted(names)[20:])
    (folder / "010a-truncated.png").write_bytes((folder / "010.png").read_bytes()[:40])
    (folder / "010b-text.png").write_text("not an image")
    from kizu.io import write_image

    write_image(folder / "010c-too-big.png", np.zeros((24, 24), np.float32))  # the model takes 16x16
    out = tmp_path / "r.csv"
    res = run_cli("predict", model, folder, f"{folder}/01*.png", "--out", out, "--engine", "ray", "--workers", 1,
                  "--batch-size", 8)  # the glob names files of the folder again: each is inspected once
    assert res.exit_code == 0, res.output
    assert "3 files could not be inspected" in res.output
    rows = read_csv(out)  # checks that no file has two rows
    assert len(rows) == 23
    errors = {p.rsplit("/", 1)[1]: r for p, r in rows.items() if r["error"]}
    assert sorted(errors) == ["010a-truncated.png", "010b-text.png", "010c-too-big.png"]
    assert "truncated" in errors["010a-truncated.png"]["error"]
    assert "not an image file" in errors["010b-text.png"]["error"]
    for r in errors.values():
        assert r["score"] == r["defective"] == r["regions"] == "" and r["path"] in r["error"]
    good = {f"{images}/good/{p.rsplit('/', 1)[1]}": r for p, r in rows.items() if not r["error"]}
    assert len(good) == 20
    assert_same_results(good, local_results)


def test_resume_keeps_the_rows_done_and_retries_the_failed_ones(engine_data, local_results, tmp_path):
    model, images = engine_data
    folder = tmp_path / "in"
    shutil.copytree(images / "defect", folder, ignore=lambda d, names: sorted(names)[30:])
    broken = sorted(folder.glob("*.png"))[5]
    saved = broken.read_bytes()
    broken.write_bytes(b"")
    first = sorted(folder.glob("*.png"))[:12]
    listing = tmp_path / "first.txt"
    listing.write_text("".join(f"{p}\n" for p in first))
    out = tmp_path / "r.csv"
    res = run_cli("predict", model, listing, "--out", out, "--engine", "ray", "--workers", 1, "--batch-size", 4)
    assert res.exit_code == 0, res.output
    assert read_csv(out)[str(broken)]["error"].endswith("empty file (0 bytes)")
    broken.write_bytes(saved)  # fixed: --resume inspects it again
    res = run_cli("predict", model, folder, "--out", out, "--engine", "ray", "--workers", 1, "--batch-size", 4,
                  "--resume")
    assert res.exit_code == 0, res.output
    assert "skipped 11 of 30 images already in" in res.output and "inspected 19 images" in res.output
    rows = read_csv(out)
    assert list(rows) == [str(p) for p in sorted(folder.glob("*.png"))]
    assert_same_results({f"{images}/defect/{p.rsplit('/', 1)[1]}": r for p, r in rows.items()}, local_results)
    again = run_cli("predict", model, folder, "--out", out, "--engine", "ray", "--resume")
    assert again.exit_code == 0 and "nothing to inspect: all 30 images are already in" in again.output
    assert read_csv(out) == rows


def test_resume_after_a_killed_run_inspects_each_file_once(engine_data, local_results, ray_address, tmp_path):
    """The run is stalled on its last file (a named pipe nobody writes to), killed with SIGKILL once
    parts are on disk, then resumed: the parts are kept, the rest is inspected, nothing twice."""
    model, images = engine_data
    files = sorted((images / "good").glob("*.png"))[:40]
    fifo = tmp_path / "zz-stalls.png"
    os.mkfifo(fifo)
    listing = tmp_path / "all.txt"
    listing.write_text("".join(f"{p}\n" for p in [*files, fifo]))
    out = tmp_path / "r.csv"
    parts = tmp_path / "r.csv.parts"
    cmd = [sys.executable, "-m", "kizu", "predict", str(model), str(listing), "--out", str(out), "--engine", "ray",
           "--address", ray_address, "--workers", "1", "--batch-size", "4"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while len(list(parts.glob("part-*.parquet"))) < 5 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert len(list(parts.glob("part-*.parquet"))) >= 5
    finally:
        proc.kill()
        proc.communicate()
        _release(fifo)
    assert not out.exists()
    fifo.unlink()
    shutil.copy(files[0], fifo)  # the stalled file is an image now
    res = run_cli("predict", model, listing, "--out", out, "--engine", "ray", "--workers", 1, "--batch-size", 4,
                  "--resume")
    assert res.exit_code == 0, res.output
    assert "skipped " in res.output
    rows = read_csv(out)
    assert list(rows) == [*map(str, files), str(fifo)]
    assert {r["error"] for r in rows.values()} == {""}
    assert_same_results({str(p): rows[str(p)] for p in files}, local_results)
    assert rows[str(fifo)]["score"] == rows[str(files[0])]["score"]
    assert not parts.exists()


def _release(fifo) -> None:
    """Let a reader blocked on the named pipe go (it reads an empty file)."""
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:  # no reader left
        pass


def test_an_exported_bundle_runs_on_ray_in_onnxruntime_with_the_bundle_results(engine_data, tmp_path):
    """Workers without PyTorch: the bundle's files go to the actors, which run onnxruntime."""
    from kizu import load_model
    from kizu.export.bundle import export_bundle

    model, images = engine_data
    export_bundle(load_model(model, device="cpu"), tmp_path / "bundle")
    local = run_cli("predict", tmp_path / "bundle", images / "defect", "--out", tmp_path / "local.csv")
    assert local.exit_code == 0, local.output
    res = run_cli("predict", tmp_path / "bundle", images / "defect", "--out", tmp_path / "ray.csv",
                  "--engine", "ray", "--workers", 2)
    assert res.exit_code == 0, res.output
    got, expected = read_csv(tmp_path / "ray.csv"), read_csv(tmp_path / "local.csv")
    assert list(got) == list(expected)
    assert_same_results(got, expected)
