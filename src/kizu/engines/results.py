"""The results file of a scaled-out ``kizu predict`` and the parts it is assembled from.

While a run goes, each block of results is written as a Parquet part in ``OUT.parts/`` (to a
hidden temporary name, then renamed: a part on disk is complete). At the end every part, and with
``--resume`` the rows of an existing OUT, become OUT (CSV or Parquet by its suffix), written
atomically; then the parts folder goes. A killed run leaves its parts; ``--resume`` keeps their
rows and inspects only the files that have none, or whose row is an error.

Columns: those of local ``kizu predict`` (``kizu.files.CSV_COLUMNS``) and ``error`` (empty, or why
the file could not be inspected; the other columns are then empty). A CSV prints values as local
``kizu predict`` does; Parquet keeps them as numbers (``defective`` as a boolean).
"""

from __future__ import annotations

import csv
import io
import shutil
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import KizuError
from ..files import CSV_COLUMNS, csv_fields
from ..io.atomic import atomic_file, atomic_write_text

#: the columns of a results file, with their types
SCHEMA = pa.schema([("path", pa.string()), ("score", pa.float64()), ("p_value", pa.float64()),
                    ("defective", pa.bool_()), ("normalized_score", pa.float64()), ("regions", pa.string()),
                    ("error", pa.string())])
COLUMNS = SCHEMA.names
FORMATS = (".csv", ".parquet")


def output_format(out: Path) -> str:
    """``"csv"`` or ``"parquet"`` from OUT's suffix; KizuError for any other."""
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise KizuError(f"{out}: --out must end in .csv or .parquet (the format of the results file)")
    return suffix[1:]


def parts_folder(out: Path) -> Path:
    """Where the parts of OUT are written while a run goes."""
    return out.with_name(out.name + ".parts")


class ResultParts:
    """The parts folder of one run: ``write`` adds a part atomically; names sort in writing order
    across runs (a run's start time, then a counter), so a later row of a file wins."""

    def __init__(self, out: Path):
        self.folder = parts_folder(out)
        self.run = f"{time.time_ns():020d}"
        self.count = 0

    def write(self, table: pa.Table) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.count += 1
        path = self.folder / f"part-{self.run}-{self.count:06d}.parquet"
        with atomic_file(path) as tmp:
            pq.write_table(table.select(COLUMNS).cast(SCHEMA), tmp)
        return path


def start(out: Path, resume: bool) -> dict[str, dict]:
    """Prepare OUT's parts folder for a run; the rows already done, by path (with ``resume``: OUT's
    rows and the parts' rows that are not errors; without: none, and earlier parts are removed).
    Temporary files of a killed run are removed either way."""
    folder = parts_folder(out)
    if folder.exists() and not folder.is_dir():
        raise KizuError(f"{folder}: exists and is not a folder (kizu writes the parts of {out.name} there)")
    if not resume:
        shutil.rmtree(folder, ignore_errors=True)
        return {}
    for tmp in folder.glob(".*.tmp") if folder.is_dir() else []:
        tmp.unlink(missing_ok=True)
    return {path: row for path, row in latest_rows(out, keep_out=True).items() if row.get("error") is None}


def earlier_parts(out: Path) -> list[Path]:
    """The complete parts in OUT's parts folder, oldest first."""
    folder = parts_folder(out)
    return sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []


def latest_rows(out: Path, keep_out: bool) -> dict[str, dict]:
    """One row per path from OUT (with ``keep_out``, if it exists) and then its parts: a row
    without an error wins over an error row; otherwise the later row wins."""
    rows: dict[str, dict] = {}
    earlier = [read_results(out)] if keep_out and out.is_file() else []
    sources = earlier + [_read_part(p) for p in earlier_parts(out)]
    for table in sources:
        for row in table:
            old = rows.get(row["path"])
            if old is None or old.get("error") is not None or row.get("error") is None:
                rows[row["path"]] = row
    return rows


def _read_part(path: Path) -> list[dict]:
    try:
        return pq.read_table(path).cast(SCHEMA).to_pylist()
    except (pa.ArrowException, OSError) as err:
        raise KizuError(f"{path}: unreadable results part ({err}); remove it to inspect its files again") from None


def read_results(path: Path) -> list[dict]:
    """The rows of a results file (CSV or Parquet, from kizu predict with either engine)."""
    if output_format(path) == "parquet":
        try:
            return pq.read_table(path).to_pylist()
        except (pa.ArrowException, OSError) as err:
            raise KizuError(f"{path}: unreadable Parquet results file ({err})") from None
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or "path" not in reader.fieldnames:
            raise KizuError(f"{path}: not a kizu results file (no path column)")
        return [_typed(r) for r in reader]


def _typed(row: dict[str, str]) -> dict:
    """A results.csv row with its values as numbers (empty text: None)."""
    def num(key: str) -> float | None:
        text = row.get(key) or ""
        return float(text) if text else None

    defective = row.get("defective") or ""
    return {"path": row["path"], "score": num("score"), "p_value": num("p_value"),
            "defective": bool(int(defective)) if defective else None, "normalized_score": num("normalized_score"),
            "regions": row.get("regions") or None, "error": row.get("error") or None}


def finish(out: Path, order: list[str], keep_out: bool) -> list[dict]:
    """Assemble OUT from its parts (and, with ``keep_out`` (``--resume``), its earlier rows): one
    row per path, files in ``order`` first (the INPUT order), any others after by path; written
    atomically, then the parts folder is removed. Returns the rows."""
    rows = list(latest_rows(out, keep_out).values())
    rank = {path: i for i, path in enumerate(order)}
    rows.sort(key=lambda r: (rank.get(r["path"], len(rank)), r["path"]))
    write_results(out, rows)
    shutil.rmtree(parts_folder(out), ignore_errors=True)
    return rows


def write_results(out: Path, rows: list[dict]) -> None:
    """OUT as CSV or Parquet (by its suffix), written atomically."""
    if output_format(out) == "parquet":
        table = pa.Table.from_pylist(rows, schema=SCHEMA)
        with atomic_file(out) as tmp:
            pq.write_table(table, tmp)
        return
    atomic_write_text(out, csv_text(rows))


def csv_text(rows: list[dict]) -> str:
    """Results as CSV text: local ``kizu predict``'s columns, printed alike, then ``error``."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*CSV_COLUMNS, "error"])
    for r in rows:
        if r.get("error") is not None:
            writer.writerow([r["path"], "", "", "", "", "", r["error"]])
        else:
            values = {k: r[k] for k in CSV_COLUMNS[1:]}
            writer.writerow([*csv_fields(r["path"], **values), ""])
    return buf.getvalue()


def check_destination(out: Path) -> None:
    """Refuse, before any work, an OUT that is a folder or has an unknown suffix."""
    output_format(out)
    if out.is_dir():
        raise KizuError(f"{out}: is a folder; --out names the results file to write")
