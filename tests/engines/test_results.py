"""The results file of `kizu predict --engine ray` and its parts: atomic parts, one row per file,
CSV printed as local `kizu predict` prints it, and what ``--resume`` keeps."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from kizu.files import csv_row
from kizu.model.prediction import Verdict

pytest.importorskip("pyarrow", reason="the engines need pyarrow (pip install 'kizu[ray]')")

import pyarrow as pa  # noqa: E402

from kizu.engines import results  # noqa: E402
from kizu.errors import KizuError  # noqa: E402


def row(path, score=1.5, error=None):
    if error is not None:
        return {"path": path, "score": None, "p_value": None, "defective": None, "normalized_score": None,
                "regions": None, "error": error}
    return {"path": path, "score": score, "p_value": 0.25, "defective": score > 2, "normalized_score": 0.4,
            "regions": "[]", "error": None}


def table(*rows):
    return pa.Table.from_pylist(list(rows), schema=results.SCHEMA)


def test_csv_rows_print_as_local_predict_prints_them():
    v = Verdict(1.234567891234, 0.0123456789, True, 0.61234567, np.zeros((2, 2)),
                [{"x": 0, "y": 1, "width": 2, "height": 2, "area": 3, "peak": 0.5}], "a.png")
    values = {"score": v.score, "p_value": v.p_value, "defective": v.defective, "normalized_score": v.normalized,
              "regions": csv_row("a.png", v)[5]}
    text = results.csv_text([{"path": "a.png", **values, "error": None}, row("b.png", error="b.png: bad")])
    lines = list(csv.reader(io.StringIO(text)))
    assert lines[0] == ["path", "score", "p_value", "defective", "normalized_score", "regions", "error"]
    assert lines[1] == [*csv_row("a.png", v), ""]
    assert lines[2] == ["b.png", "", "", "", "", "", "b.png: bad"]


def test_parts_are_assembled_in_input_order_one_row_per_file(tmp_path):
    out = tmp_path / "r.csv"
    assert results.start(out, resume=False) == {}
    parts = results.ResultParts(out)
    parts.write(table(row("b.png", 3.0), row("a.png", error="a.png: unreadable")))
    parts.write(table(row("a.png", 1.0), row("c.png", error="c.png: bad")))
    assert not list(parts.folder.glob(".*"))  # no temporary file left behind
    rows = results.finish(out, order=["c.png", "a.png", "b.png"], keep_out=False)
    assert [(r["path"], r["error"]) for r in rows] == [("c.png", "c.png: bad"), ("a.png", None), ("b.png", None)]
    assert not parts.folder.exists()
    back = {r["path"]: r for r in results.read_results(out)}
    assert back["b.png"]["score"] == 3.0 and back["b.png"]["defective"] is True and back["c.png"]["score"] is None


def test_resume_keeps_rows_without_errors_from_the_output_and_the_parts(tmp_path):
    out = tmp_path / "r.parquet"
    results.write_results(out, [row("a.png"), row("b.png", error="b.png: bad")])
    results.ResultParts(out).write(table(row("c.png")))
    (results.parts_folder(out) / ".part-x.parquet.tmp").write_bytes(b"half")  # a killed write
    done = results.start(out, resume=True)
    assert sorted(done) == ["a.png", "c.png"]
    assert not list(results.parts_folder(out).glob(".*"))
    results.ResultParts(out).write(table(row("b.png", 2.5)))
    rows = results.finish(out, order=["a.png", "b.png", "c.png"], keep_out=True)
    assert [(r["path"], r["score"]) for r in rows] == [("a.png", 1.5), ("b.png", 2.5), ("c.png", 1.5)]


def test_a_new_run_without_resume_drops_the_parts_of_an_unfinished_one(tmp_path):
    out = tmp_path / "r.csv"
    results.ResultParts(out).write(table(row("a.png")))
    assert len(results.earlier_parts(out)) == 1
    assert results.start(out, resume=False) == {}
    assert results.earlier_parts(out) == []


def test_a_local_predict_csv_can_be_resumed(tmp_path):
    out = tmp_path / "r.csv"
    out.write_text("path,score,p_value,defective,normalized_score,regions\na.png,1.25,0.5,0,0.300000,[]\n")
    assert results.start(out, resume=True)["a.png"]["score"] == 1.25


def test_the_output_name_says_its_format(tmp_path):
    with pytest.raises(KizuError, match="must end in .csv or .parquet"):
        results.check_destination(tmp_path / "r.json")
    (tmp_path / "d.csv").mkdir()
    with pytest.raises(KizuError, match="is a folder"):
        results.check_destination(tmp_path / "d.csv")


def test_without_resume_the_rows_of_an_earlier_output_are_not_kept(tmp_path):
    out = tmp_path / "r.csv"
    results.write_results(out, [row("old.png")])
    results.start(out, resume=False)
    results.ResultParts(out).write(table(row("new.png")))
    assert [r["path"] for r in results.finish(out, order=["new.png"], keep_out=False)] == ["new.png"]
