"""kizu watch: a drop folder inspected once per file, corrupt files rejected, restarts, files arriving."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time

from typer.testing import CliRunner

from kizu.cli import app
from kizu.service.watch import JOURNAL, open_watcher

from .conftest import png

runner = CliRunner()


def rows(path):
    return list(csv.DictReader(path.open()))


def drop(folder, data, idx):
    for i in idx:
        (folder / f"img{i:02d}.png").write_bytes(png(data.test[i]))


def test_once_same_rows_as_predict(model_dir, data, tmp_path):
    cam = tmp_path / "cam"
    cam.mkdir()
    drop(cam, data, range(12))
    res = runner.invoke(app, ["watch", str(model_dir), str(cam), "--out", str(tmp_path / "w.csv"), "--once",
                              "--interval", "0.02"])
    assert res.exit_code == 0, res.output
    assert "inspected 12 images: 6 defective, 6 good, 0 rejected" in res.output
    res = runner.invoke(app, ["predict", str(model_dir), str(cam), "--out", str(tmp_path / "p.csv")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "w.csv").read_text() == (tmp_path / "p.csv").read_text()


def test_move_reject_and_restart(model_dir, data, tmp_path):
    cam, out = tmp_path / "cam", tmp_path / "r.csv"
    cam.mkdir()
    drop(cam, data, [0, 11])
    (cam / "broken.png").write_bytes(png(data.test[0])[:40])
    (cam / "notes.txt").write_text("not an image: ignored")
    w = open_watcher(model_dir, cam, out, move=True, interval=0.02, echo=lambda s: None)
    stats = w.run(once=True)
    assert (stats.inspected, stats.defective, stats.rejected) == (2, 1, 1)
    assert (cam / "good" / "img00.png").is_file() and (cam / "defective" / "img11.png").is_file()
    assert (cam / "rejected" / "broken.png").is_file() and (cam / "notes.txt").is_file()
    assert [r["path"] for r in rows(out)] == [str(cam / "good" / "img00.png"), str(cam / "defective" / "img11.png")]
    # a camera reusing a name: a new file, inspected; the first one is kept
    (cam / "img00.png").write_bytes(png(data.test[1]))
    stats = open_watcher(model_dir, cam, out, move=True, interval=0.02, echo=lambda s: None).run(once=True)
    assert stats.inspected == 1 and (cam / "good" / "img00-1.png").is_file() and len(rows(out)) == 3


def test_restart_does_not_inspect_twice(model_dir, data, tmp_path):
    cam, out = tmp_path / "cam", tmp_path / "r.csv"
    cam.mkdir()
    drop(cam, data, range(3))
    assert open_watcher(model_dir, cam, out, interval=0.02, echo=lambda s: None).run(once=True).inspected == 3
    drop(cam, data, [3])
    stats = open_watcher(model_dir, cam, out, interval=0.02, echo=lambda s: None).run(once=True)
    assert stats.inspected == 1 and [r["path"][-9:] for r in rows(out)] == [f"img0{i}.png" for i in range(4)]


def test_crash_between_journal_and_csv_is_recovered(model_dir, data, tmp_path):
    cam, out = tmp_path / "cam", tmp_path / "r.csv"
    cam.mkdir()
    drop(cam, data, [11])
    open_watcher(model_dir, cam, out, move=True, interval=0.02, echo=lambda s: None).run(once=True)
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:-1]))  # the CSV line was lost...
    os.replace(cam / "defective" / "img11.png", cam / "img11.png")  # ...and the move never happened
    w = open_watcher(model_dir, cam, out, move=True, interval=0.02, echo=lambda s: None)
    assert len(w.stats.recovered) == 2
    assert w.run(once=True).inspected == 0
    assert out.read_text().splitlines(keepends=True) == lines and (cam / "defective" / "img11.png").is_file()
    entries = [json.loads(x) for x in (cam / JOURNAL).read_text().splitlines()]
    assert len(entries) == 1


def test_files_arriving_while_it_runs(model_dir, data, tmp_path):
    cam, out = tmp_path / "cam", tmp_path / "r.csv"
    cam.mkdir()
    w = open_watcher(model_dir, cam, out, move=True, interval=0.03, echo=lambda s: None)
    runner_thread = threading.Thread(target=w.run)
    runner_thread.start()
    try:
        for i in range(8):
            body = png(data.test[i])
            with open(cam / f"slow{i}.png", "wb") as fh:  # written in two parts, like a slow camera
                fh.write(body[: len(body) // 2])
                fh.flush()
                time.sleep(0.04)
                fh.write(body[len(body) // 2:])
        (cam / "junk.png").write_bytes(b"\x89PNG garbage")
        deadline = time.monotonic() + 20
        while w.stats.inspected + w.stats.rejected < 9:
            assert time.monotonic() < deadline, w.stats
            time.sleep(0.02)
    finally:
        w.stop()
        runner_thread.join(10)
    assert not runner_thread.is_alive()
    assert (w.stats.inspected, w.stats.rejected, w.stats.defective) == (8, 1, 2)
    assert sorted(p.name for p in (cam / "good").iterdir()) == [f"slow{i}.png" for i in range(6)]
    assert len(rows(out)) == 8


def test_sigterm_stops_the_cli_cleanly(model_dir, data, tmp_path):
    cam = tmp_path / "cam"
    cam.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "kizu", "watch", str(model_dir), str(cam), "--out",
                             str(tmp_path / "r.csv"), "--interval", "0.05"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "r.csv").exists():  # the header is written once the model is loaded
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        drop(cam, data, [11])
        while len(rows(tmp_path / "r.csv")) < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "img11.png: DEFECTIVE" in out and "inspected 1 images: 1 defective" in out


def test_bad_folder_and_foreign_csv(model_dir, tmp_path):
    res = runner.invoke(app, ["watch", str(model_dir), str(tmp_path / "nope"), "--once"])
    assert res.exit_code == 2 and "no such folder" in res.output
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    res = runner.invoke(app, ["watch", str(model_dir), str(tmp_path), "--once", "--out", str(tmp_path / "other.csv")])
    assert res.exit_code == 2 and "exists with other columns" in res.output
