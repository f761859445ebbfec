"""Reviews on disk (MVTec layout that kizu threshold reads), the audit sample and kizu recalibrate."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from kizu.cli import app
from kizu.service import _kizu
from kizu.service.reviews import MANIFEST, audited_good, recalibrate

from .conftest import png

runner = CliRunner()


def inspect(client, body, name="x.png"):
    r = client.post("/v1/inspect", files={"file": (name, body, "image/png")})
    assert r.status_code == 200, r.text
    return r.json()


def review(client, rid, label):
    r = client.post(f"/v1/inspections/{rid}/review", json={"label": label})
    assert r.status_code == 200, r.text
    return r.json()


def test_review_saves_labelled_image(client, tmp_path, bad_png):
    r = inspect(client, bad_png, "cam1.png")
    saved = review(client, r["id"], "good")  # the operator says: false alarm
    assert saved["verdict_was_wrong"] and not saved["audit"]
    (path,) = saved["saved"]
    assert path.startswith("test/good/") and path.endswith("-cam1.png")
    assert (tmp_path / "reviews" / path).read_bytes() == bad_png
    saved = review(client, r["id"], "defective")  # changed their mind: the file moves
    assert not (tmp_path / "reviews" / path).exists()
    assert (tmp_path / "reviews" / saved["saved"][0]).parent.name == "defective"
    assert client.get("/v1/service").json()["reviewed"] == 1
    assert client.get(f"/v1/inspections/{r['id']}").json()["review"] == "defective"
    assert not (tmp_path / "reviews" / "audit").exists()


def test_threshold_accepts_the_reviews_folder(client, tmp_path, model_dir, data):
    for i, a in enumerate(data.test):
        r = inspect(client, png(a), f"{i}.png")
        review(client, r["id"], "good" if i < 6 else "defective")
    res = runner.invoke(app, ["threshold", str(model_dir), str(tmp_path / "reviews"), "--rule", "f1"])
    assert res.exit_code == 0, res.output
    assert "rule f1" in res.output


def test_audit_sample_is_random_and_saved_with_manifest(make_client, tmp_path, good_png):
    client = make_client(audit_rate=0.5, seed=1)
    results = [inspect(client, good_png) for _ in range(40)]
    audited = [r for r in results if r["audit"]]
    assert 8 <= len(audited) <= 32  # about half, drawn at random
    saved = review(client, audited[0]["id"], "good")
    assert saved["audit"] and {p.split("/")[0] for p in saved["saved"]} == {"test", "audit"}
    line = json.loads((tmp_path / "reviews" / "audit" / MANIFEST).read_text().splitlines()[-1])
    assert line["label"] == "good" and line["inspection"] == audited[0]["id"] and line["file"].startswith("good/")
    not_audit = next(r for r in results if not r["audit"])
    assert review(client, not_audit["id"], "good")["saved"][0].startswith("test/")


@pytest.fixture
def audit_dir(make_client, tmp_path, data):
    """An audit folder with 12 audited-good images (all inspected images are audit samples)."""
    client = make_client(audit_rate=1.0)
    rng = np.random.default_rng(5)
    for i in range(12):
        a = np.clip(data.train[i] + rng.normal(0, 0.02, data.train[i].shape), 0, 1)
        review(client, inspect(client, png(a), f"a{i}.png")["id"], "good")
    review(client, inspect(client, png(data.test[-1]), "d.png")["id"], "defective")
    return tmp_path / "reviews" / "audit"


def test_recalibrate_adds_audited_good_images(model_dir, audit_dir):
    before = _kizu.load_model(model_dir)
    n0 = len(before.calibration.scores)
    res = runner.invoke(app, ["recalibrate", str(model_dir), str(audit_dir)])
    assert res.exit_code == 0, res.output
    assert "added 12 audited-good images (0 already in): 32 calibration images" in res.output
    after = _kizu.load_model(model_dir)
    assert len(after.calibration.scores) == n0 + 12 and after.calibration.alpha == before.calibration.alpha
    expected = _kizu.score_files(before, [p for p, _ in audited_good(audit_dir)])
    np.testing.assert_allclose(sorted(after.calibration.scores[n0:]), sorted(expected))
    from kizu.calibration import conformal_threshold

    assert after.calibration.threshold == conformal_threshold(after.calibration.scores, 0.05)
    assert after.summary["recalibration"]["history"][0]["added"] == 12
    again = runner.invoke(app, ["recalibrate", str(model_dir), str(audit_dir / "good")])
    assert again.exit_code == 2 and "already in the calibration set" in again.output


def test_recalibrate_refuses_images_not_audited_good(model_dir, audit_dir, data, tmp_path):
    stray = audit_dir / "good" / "false-alarm.png"
    stray.write_bytes(png(data.test[-1]))  # a corrected false alarm copied in by hand
    res = runner.invoke(app, ["recalibrate", str(model_dir), str(audit_dir)])
    assert res.exit_code == 2 and "false-alarm.png: not an audited-good image" in res.output
    stray.unlink()
    moved = audit_dir / "good" / sorted(p.name for p in (audit_dir / "defective").iterdir())[0]
    shutil.copy(audit_dir / "defective" / moved.name, moved)  # a defective audit image moved to good/
    res = runner.invoke(app, ["recalibrate", str(model_dir), str(audit_dir)])
    assert res.exit_code == 2 and "not an audited-good image" in res.output
    moved.unlink()
    victim = sorted((audit_dir / "good").iterdir())[0]
    victim.write_bytes(png(data.test[0]))  # changed after review
    with pytest.raises(_kizu.InputError, match="changed since its audit review"):
        recalibrate(model_dir, audit_dir)
    with pytest.raises(_kizu.InputError, match="not an audit folder"):
        recalibrate(model_dir, tmp_path)


def test_drift_reads_the_audit_folder(model_dir, audit_dir):
    res = runner.invoke(app, ["drift", str(model_dir), str(audit_dir / "good")])
    assert res.exit_code == 0, res.output
