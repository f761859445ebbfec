"""`kizu predict --engine ...` without Ray running: how it says Ray is missing, and the options
that only the Ray engine takes."""

from __future__ import annotations

import socket
import sys

import pytest

from kizu.errors import KizuError
from tests.engines.conftest import NO_RAY, run_cli


def test_engine_ray_without_ray_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setitem(sys.modules, "ray.data", None)
    res = run_cli("predict", tmp_path / "model", tmp_path, "--out", tmp_path / "r.csv", "--engine", "ray")
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "pip install 'kizu[ray]'" in lines[0] and "--engine ray needs Ray" in lines[0]


def test_ray_options_and_parquet_need_the_ray_engine(tmp_path):
    res = run_cli("predict", tmp_path / "model", tmp_path, "--out", tmp_path / "r.csv", "--resume", "--workers", 2)
    assert res.exit_code == 2 and "--workers, --resume: only with --engine ray" in res.output
    res = run_cli("predict", tmp_path / "model", tmp_path, "--out", tmp_path / "r.parquet")
    assert res.exit_code == 2 and "the local engine writes CSV" in res.output
    res = run_cli("predict", tmp_path / "model", tmp_path, "--out", tmp_path / "r.csv", "--engine", "spark")
    assert res.exit_code == 2 and "--engine spark: choose local or ray" in res.output


def test_an_address_where_nothing_answers_is_one_line_at_once():
    pytest.importorskip("ray.data", reason=NO_RAY)
    from kizu.engines.ray_predict import check_reachable

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(KizuError, match=f"--address ray://127.0.0.1:{port}: no Ray cluster answers there"):
        check_reachable(f"ray://127.0.0.1:{port}")
    check_reachable("auto")  # left to Ray
