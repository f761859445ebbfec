"""``kizu serve --keep DIR``: every upload and its result written to disk (off by default)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from . import _kizu
from .history import InspectionRecord


class KeepWriter:
    """Writes ``DIR/<date>/<id>-<name><suffix>`` and one line per image to ``DIR/inspections.jsonl``."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def save_all(self, records: list[InspectionRecord]) -> None:
        day = time.strftime("%Y-%m-%d")
        lines = []
        for rec in records:
            rel = Path(day) / f"{rec.id}-{Path(rec.name).stem}{rec.suffix}"
            _kizu.atomic_write_bytes(self.root / rel, rec.data)
            lines.append(json.dumps({**rec.result, "file": rel.as_posix()}) + "\n")
        with open(self.root / "inspections.jsonl", "a", encoding="utf-8") as fh:
            fh.writelines(lines)
            fh.flush()
            os.fsync(fh.fileno())
