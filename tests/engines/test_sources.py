"""What a scaled-out `kizu predict` lists from its INPUTs: folders as local predict does, globs,
lists of paths, and URIs of a filesystem pyarrow opens (``file://`` here)."""

from __future__ import annotations

import os

import pytest

from kizu.errors import InputError
from kizu.io import expand_inputs

pytest.importorskip("pyarrow", reason="the engines need pyarrow (pip install 'kizu[ray]')")

from kizu.engines.sources import _glob_regex, list_sources, read_location  # noqa: E402


@pytest.fixture()
def tree(tmp_path):
    for rel in ["a/1.png", "a/2.jpg", "a/b/3.png", "a/.hidden.png", "a/notes.md", "c/4.png"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(rel.encode())
    return tmp_path


def test_folders_and_files_are_listed_as_local_predict_lists_them(tree):
    inputs = [tree / "a", tree / "c" / "4.png"]
    got = list_sources([str(p) for p in inputs])
    assert [s.path for s in got] == [str(p) for p, _ in expand_inputs(inputs)]
    assert [s.relative for s in got] == ["1.png", "2.jpg", "b/3.png", "4.png"]
    assert all(os.path.isabs(s.location) for s in got)


def test_relative_inputs_keep_their_text_and_are_read_from_absolute_paths(tree, monkeypatch):
    monkeypatch.chdir(tree)
    got = list_sources(["a/b"])
    assert [s.path for s in got] == ["a/b/3.png"] and got[0].location == str(tree / "a/b/3.png")


def test_globs_cross_folders_and_mirror_below_the_fixed_folders(tree):
    got = list_sources([f"{tree}/a/**/*.png"])
    assert [s.relative for s in got] == ["1.png", "b/3.png"]
    with pytest.raises(InputError, match="no image file matches"):
        list_sources([f"{tree}/a/*.tif"])


def test_text_and_csv_lists_name_files_relative_to_the_list(tree):
    (tree / "list.txt").write_text("# good parts\na/1.png\n\n/abs/elsewhere.png\n")
    got = list_sources([str(tree / "list.txt")])
    assert [s.path for s in got] == [str(tree / "a/1.png"), "/abs/elsewhere.png"]
    assert [s.relative for s in got] == ["a/1.png", "elsewhere.png"]
    (tree / "results.csv").write_text("path,score\na/b/3.png,1.5\nc/4.png,2\n")  # a results file is a list
    assert [s.relative for s in list_sources([str(tree / "results.csv")])] == ["a/b/3.png", "c/4.png"]


def test_a_file_named_twice_is_listed_once(tree):
    got = list_sources([str(tree / "a"), str(tree / "a" / "1.png"), f"{tree}/a/*.png"])
    assert [s.relative for s in got] == ["1.png", "2.jpg", "b/3.png"]


def test_uris_of_folders_globs_and_files_are_listed_and_read(tree):
    uri = f"file://{tree}/a"
    got = list_sources([uri])
    assert [s.path for s in got] == [f"{uri}/1.png", f"{uri}/2.jpg", f"{uri}/b/3.png"]
    assert [s.relative for s in list_sources([f"{uri}/**/*.png"])] == ["1.png", "b/3.png"]
    assert read_location(got[2].location, got[2].path) == b"a/b/3.png"
    with pytest.raises(InputError, match="no such file"):
        read_location(f"{uri}/missing.png", "missing.png")
    with pytest.raises(InputError, match="no such file or folder"):
        list_sources([f"{uri}/nothing"])


def test_missing_inputs_and_unreadable_files_are_one_line_naming_them(tree):
    with pytest.raises(InputError, match="nothing: no such file or folder"):
        list_sources([str(tree / "nothing")])
    with pytest.raises(InputError, match="shown.png: no such file"):
        read_location(str(tree / "gone.png"), "shown.png")
    with pytest.raises(InputError, match="pyarrow cannot open"):
        list_sources(["nosuchscheme://x/y"])


@pytest.mark.parametrize("pattern, path, match", [
    ("*.png", "a.png", True), ("*.png", "d/a.png", False), ("**/*.png", "d/e/a.png", True),
    ("**/*.png", "a.png", True), ("d/[ab]?.png", "d/ax.png", True), ("d/[!ab]?.png", "d/ax.png", False),
    ("x.png", "xxpng", False)])
def test_glob_patterns(pattern, path, match):
    import re

    assert bool(re.fullmatch(_glob_regex(pattern), path)) is match
