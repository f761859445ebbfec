"""Operator reviews saved as labelled images, and recalibration from the random audit sample.

Layout under the reviews folder::

    test/good/<file>, test/defective/<file>    every reviewed image, by the operator's label: the
                                              MVTec-AD ``test/`` layout that ``kizu threshold
                                              MODEL REVIEWS --rule f1|youden|cost|recall`` and
                                              ``kizu evaluate`` read
    audit/good/<file>, audit/defective/<file>  reviewed images of the random audit sample only
    audit/audit.jsonl                          one line per audit review (file, sha256, label, ...)

Why the audit sample: corrected false alarms are good images that scored *high*; adding only them
to the calibration scores would raise the threshold and let defects through. A random share of all
inspected images, confirmed good, is a fair sample of good production images, so only it may join
the calibration set (``recalibrate``).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import _kizu
from .history import InspectionRecord

LABELS = ("good", "defective")
MANIFEST = "audit.jsonl"
#: where recalibrations are recorded in the model's training summary
SUMMARY_KEY = "recalibration"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    return sha256(path.read_bytes())


class ReviewStore:
    """Writes reviewed uploads into the reviews folder (see the module docstring)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def save(self, rec: InspectionRecord, label: str) -> list[str]:
        """Save a reviewed upload under ``label`` (and under ``audit/`` when it is an audit sample);
        a second review of the same inspection replaces the first. Returns the files written,
        relative to the root."""
        if label not in LABELS:
            raise ValueError(f"label must be one of {', '.join(LABELS)}, not {label!r}")
        self._remove(rec.saved)
        stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{rec.id}-{Path(rec.name).stem}"[:120]
        written = [self._write(Path("test") / label / f"{stem}{rec.suffix}", rec.data)]
        if rec.audit:
            audit_file = Path("audit") / label / f"{stem}{rec.suffix}"
            written.append(self._write(audit_file, rec.data))
            self._append_manifest(audit_file, rec, label)
        return [p.as_posix() for p in written]

    def _write(self, rel: Path, data: bytes) -> Path:
        _kizu.atomic_write_bytes(self.root / rel, data)
        return rel

    def _remove(self, saved: list[str]) -> None:
        for rel in saved:
            (self.root / rel).unlink(missing_ok=True)

    def _append_manifest(self, audit_file: Path, rec: InspectionRecord, label: str) -> None:
        line = {"file": audit_file.relative_to("audit").as_posix(), "sha256": sha256(rec.data), "label": label,
                "inspection": rec.id, "name": rec.name, "model_id": rec.result.get("model_id"),
                "verdict": "defective" if rec.result.get("defective") else "good",
                "p_value": rec.result.get("p_value"), "reviewed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        path = self.root / "audit" / MANIFEST
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


# -- recalibration ---------------------------------------------------------------------------------
def audit_root(folder: str | Path) -> Path:
    """The audit folder (holding ``audit.jsonl`` and ``good/``) from itself or its ``good/``."""
    folder = Path(folder)
    for cand in (folder, folder.parent):
        if (cand / MANIFEST).is_file():
            return cand
    raise _kizu.InputError(folder, f"not an audit folder: no {MANIFEST} here or in its parent "
                                   "(kizu serve writes REVIEWS/audit/ when --audit-rate > 0)")


def audited_good(folder: str | Path) -> list[tuple[Path, str]]:
    """``(file, sha256)`` of every image in ``AUDIT/good/``, each checked against the manifest: its
    last audit review labels it good and its content is the one reviewed. Any other image there
    (copied in by hand, relabelled, changed) is refused, naming it: only a random audit sample keeps
    the threshold's guarantee."""
    root = audit_root(folder)
    labels = _manifest_labels(root / MANIFEST)
    good = root / "good"
    files = sorted(p for p in good.iterdir() if p.is_file() and _kizu.is_image_path(p)) if good.is_dir() else []
    if not files:
        raise _kizu.InputError(good, "no audited-good images yet")
    out = []
    for p in files:
        entry = labels.get(f"good/{p.name}")
        if entry is None or entry["label"] != "good":
            raise _kizu.InputError(p, "not an audited-good image (no 'good' audit review of it in "
                                      f"{MANIFEST}); only the random audit sample may recalibrate")
        digest = file_sha256(p)
        if digest != entry["sha256"]:
            raise _kizu.InputError(p, "changed since its audit review (sha256 differs); refusing it")
        out.append((p, digest))
    return out


def _manifest_labels(path: Path) -> dict[str, dict]:
    """file (relative to the audit folder) → its last manifest line."""
    labels: dict[str, dict] = {}
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            labels[str(entry["file"])] = entry
        except (json.JSONDecodeError, KeyError, TypeError):
            raise _kizu.InputError(path, f"line {i} is not a valid audit record") from None
    return labels


@dataclass
class Recalibration:
    """Outcome of ``recalibrate``."""

    added: int
    skipped: int  #: audited-good images already in the calibration set
    n_calibration: int
    old_threshold: float
    new_threshold: float
    statement: str


def recalibrate(model_dir: str | Path, audit_folder: str | Path) -> Recalibration:
    """Score the audited-good images not used before, append their scores to the model's calibration
    scores, refit the threshold at the model's alpha and save the model atomically. Which images
    were added (by sha256) is recorded in the model, so running it again adds only new ones."""
    _kizu.check_not_bundle(model_dir)
    model = _kizu.load_model(model_dir)
    files = audited_good(audit_folder)
    record = model.summary.setdefault(SUMMARY_KEY, {"audit_sha256": [], "history": []})
    used = set(record["audit_sha256"])
    new = [(p, d) for p, d in files if d not in used]
    new = list({d: (p, d) for p, d in new}.values())  # the same image reviewed twice counts once
    if not new:
        raise _kizu.KizuError(f"{audit_folder}: all {len(files)} audited-good images are already in the "
                              "calibration set; nothing to add")
    scores = np.asarray(_kizu.score_files(model, [p for p, _ in new]))
    model, old, thr = _kizu.refit_calibration(model, scores)
    record["audit_sha256"].extend(d for _, d in new)
    n_cal = _kizu.calibration_params(model)["n_calibration"]
    record["history"].append({"at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "added": len(new), "n_calibration": n_cal,
                              "threshold_before": _finite(old), "threshold_after": _finite(thr)})
    _kizu.save_model(model, model_dir)
    return Recalibration(len(new), len(files) - len(new), n_cal, old, thr,
                         _kizu.model_info(model)["calibration"]["statement"])


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None
