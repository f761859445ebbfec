"""bench/detectors.py: the detector benchmark runs end to end and checks its arguments first."""

import json

import pytest

import detectors as script


def test_detectors_benchmark_runs_and_writes_rows(tmp_path):
    out = tmp_path / "rows.json"
    assert script.main(["--sizes", "20", "--no-peers", "--no-fine", "--only", "mt", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert {r["task"] for r in rows} == {"shapes-seed-n20", "shapes-intended-n20"}
    assert all(r["detector"] == "mt" and 0.5 < r["image_auroc"] <= 1.0 for r in rows)


@pytest.mark.parametrize("flag, value", [("--seeds", "-1"), ("--sizes", "0")])
def test_detectors_benchmark_rejects_bad_seeds_and_sizes_before_any_work(tmp_path, flag, value):
    with pytest.raises(SystemExit) as exit_info:
        script.main([flag, value, "--no-peers", "--no-fine", "--out", str(tmp_path / "rows.json")])
    assert exit_info.value.code == 2 and not (tmp_path / "rows.json").exists()
