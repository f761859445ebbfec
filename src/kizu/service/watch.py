"""``kizu watch``: inspect images as a camera drops them into a folder.

The folder is polled (no OS-specific file events, so it works on network shares too). A file is
complete when its size and modification time are unchanged across two polls and it decodes; a file
that still does not decode on the next poll is corrupt: it is logged and moved to ``rejected/``, and
the watcher carries on. Each result is appended to a CSV with ``kizu predict``'s columns and flushed.

Exactly-once across restarts: before a result is written, a journal line (file name, size,
modification time, CSV row, destination) is appended to ``DIR/.kizu-watch.jsonl``. On start the
journal says which files were inspected (they are not inspected again), re-appends the last CSV row
if a crash lost it, and finishes a move that a crash interrupted.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import _kizu

JOURNAL = ".kizu-watch.jsonl"
SUBFOLDERS = ("good", "defective", "rejected")


@dataclass
class _Seen:
    """A file's size and mtime at the last poll, and whether it failed to decode at that state."""

    size: int
    mtime_ns: int
    stable: bool = False
    failed: str | None = None


@dataclass
class WatchStats:
    inspected: int = 0
    defective: int = 0
    rejected: int = 0
    recovered: list[str] = field(default_factory=list)


class Watcher:
    """Polls ``folder`` and inspects complete image files with ``model``, once each."""

    def __init__(self, model, folder: str | Path, out: str | Path, *, move: bool = False, interval: float = 1.0,
                 batch_size: int = 16, echo: Callable[[str], None] = print):
        self.model, self.folder, self.out = model, Path(folder), Path(out)
        self.move, self.interval, self.batch_size, self.echo = move, interval, batch_size, echo
        if not self.folder.is_dir():
            raise _kizu.InputError(self.folder, "no such folder")
        self.journal = self.folder / JOURNAL
        self.done: set[tuple[str, int, int]] = set()
        self.seen: dict[str, _Seen] = {}
        self.stats = WatchStats()
        self.stop_event = threading.Event()
        self._start_csv()
        self._recover()

    # -- start-up --------------------------------------------------------------------------------
    def _start_csv(self) -> None:
        """Write the header to a new CSV; check the header of an existing one."""
        if self.out.exists() and self.out.stat().st_size > 0:
            with open(self.out, newline="", encoding="utf-8") as fh:
                header = next(csv.reader(fh), [])
            if header != _kizu.CSV_COLUMNS:
                raise _kizu.InputError(self.out, f"exists with other columns ({', '.join(header)}); "
                                                 "give another --out")
            return
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._append_csv(_kizu.CSV_COLUMNS)

    def _recover(self) -> None:
        """Read the journal: inspected files, a CSV row lost by a crash, moves left half done."""
        if not self.journal.is_file():
            return
        entries = [json.loads(line) for line in self.journal.read_text(encoding="utf-8").splitlines() if line.strip()]
        for e in entries:
            self.done.add((e["name"], e["size"], e["mtime_ns"]))
            src = self.folder / e["name"]
            if e.get("dest") and _same_file(src, e["size"], e["mtime_ns"]):
                self._move(src, self.folder / e["dest"])
                self.stats.recovered.append(f"moved {e['name']} to {e['dest']}")
        rows = [e["row"] for e in entries if e.get("row")]
        if rows and self._last_csv_row() != rows[-1]:
            self._append_csv(rows[-1])
            self.stats.recovered.append(f"wrote the missing result of {entries[-1]['name']}")

    def _last_csv_row(self) -> list[str] | None:
        with open(self.out, "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - 65536))
            tail = fh.read().decode("utf-8", "replace").splitlines()
        return next(csv.reader(io.StringIO(tail[-1]))) if tail else None

    # -- main loop ---------------------------------------------------------------------------------
    def run(self, once: bool = False) -> WatchStats:
        """Poll until stopped (``stop()``, SIGTERM, Ctrl-C); with ``once``, until every image file
        present has been inspected or rejected."""
        with _stop_on_signals(self.stop_event):
            while not self.stop_event.is_set():
                pending = self.poll()
                if once and not pending:
                    break
                self.stop_event.wait(self.interval)
        return self.stats

    def stop(self) -> None:
        self.stop_event.set()

    def poll(self) -> int:
        """One pass over the folder: inspect the files that are complete. Returns how many image
        files are still waiting (not yet stable, or to be checked again)."""
        ready, waiting = [], 0
        for path in self._candidates():
            state = self._observe(path)
            if state is None or not state.stable:
                waiting += state is not None
                continue
            image = self._try_decode(path, state)
            if image is None:
                waiting += path.exists()
                continue
            ready.append((path, state, image))
            if len(ready) == self.batch_size:
                self._inspect(ready)
                ready = []
            if self.stop_event.is_set():
                return waiting
        if ready:
            self._inspect(ready)
        return waiting

    def _candidates(self) -> list[Path]:
        try:
            files = sorted(p for p in self.folder.iterdir() if p.is_file() and _kizu.is_image_path(p))
        except FileNotFoundError:
            raise _kizu.InputError(self.folder, "the watched folder disappeared") from None
        names = {p.name for p in files}
        for gone in set(self.seen) - names:
            del self.seen[gone]
        return files

    def _observe(self, path: Path) -> _Seen | None:
        """Update a file's record; None for a file already inspected (or vanished)."""
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        if (path.name, st.st_size, st.st_mtime_ns) in self.done:
            return None
        prev = self.seen.get(path.name)
        if prev is not None and (prev.size, prev.mtime_ns) == (st.st_size, st.st_mtime_ns):
            prev.stable = True
            return prev
        self.seen[path.name] = _Seen(st.st_size, st.st_mtime_ns)
        return self.seen[path.name]

    def _try_decode(self, path: Path, state: _Seen) -> np.ndarray | None:
        """The image, or None: a first failure waits one more poll, a second one rejects the file."""
        try:
            image = _kizu.read_image(path)
            _kizu.check_size(self.model, image, path.name)
            return image
        except _kizu.InputError as err:
            if state.failed is None:
                state.failed = str(err)
                return None
            self._reject(path, state, getattr(err, "problem", str(err)))
            return None

    # -- results -------------------------------------------------------------------------------------
    def _inspect(self, ready: list[tuple[Path, _Seen, np.ndarray]]) -> None:
        verdicts = _kizu.inspect(self.model, [im for _, _, im in ready], [p.name for p, _, _ in ready])
        for (path, state, _), v in zip(ready, verdicts):
            dest = self._free_name(SUBFOLDERS[1] if v.defective else SUBFOLDERS[0], path.name) if self.move else None
            shown = self.folder / dest if dest else path
            row = _kizu.csv_row(str(shown), v)
            self._journal(path.name, state, row=row, dest=dest)
            self._append_csv(row)
            if dest:
                self._move(path, self.folder / dest)
            self.stats.inspected += 1
            self.stats.defective += int(v.defective)
            self.echo(f"{path.name}: {'DEFECTIVE' if v.defective else 'good'} (p={v.p_value:.3g})")

    def _reject(self, path: Path, state: _Seen, reason: str) -> None:
        dest = self._free_name(SUBFOLDERS[2], path.name)
        self._journal(path.name, state, row=None, dest=dest, rejected=reason)
        self._move(path, self.folder / dest)
        self.stats.rejected += 1
        self.echo(f"{path.name}: rejected ({reason}) → {dest}")

    def _journal(self, name: str, state: _Seen, **fields) -> None:
        line = json.dumps({"name": name, "size": state.size, "mtime_ns": state.mtime_ns, **fields})
        with open(self.journal, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self.done.add((name, state.size, state.mtime_ns))
        self.seen.pop(name, None)

    def _append_csv(self, row: list[str]) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(row)
        with open(self.out, "a", encoding="utf-8", newline="") as fh:
            fh.write(buf.getvalue())
            fh.flush()
            os.fsync(fh.fileno())

    def _free_name(self, sub: str, name: str) -> str:
        """``sub/name``, or ``sub/<stem>-1<suffix>``, ... when taken (a camera reusing names)."""
        p = Path(name)
        for i in range(100000):
            cand = f"{sub}/{name if i == 0 else f'{p.stem}-{i}{p.suffix}'}"
            if not (self.folder / cand).exists():
                return cand
        raise _kizu.KizuError(f"{self.folder / sub}: no free name for {name}")

    @staticmethod
    def _move(src: Path, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dest)


def open_watcher(model_dir: str | Path, folder: str | Path, out: str | Path, **options) -> Watcher:
    """Load the model and set up a Watcher (``options``: those of ``Watcher``)."""
    return Watcher(_kizu.load_model(model_dir), folder, out, **options)


def _same_file(path: Path, size: int, mtime_ns: int) -> bool:
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    return (st.st_size, st.st_mtime_ns) == (size, mtime_ns)


class _stop_on_signals:
    """While active (in the main thread), SIGINT and SIGTERM set ``event`` instead of killing the
    process, so the watcher finishes the file in hand and stops cleanly."""

    def __init__(self, event: threading.Event):
        self.event, self.saved = event, {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.saved[sig] = signal.signal(sig, lambda *_: self.event.set())
        return self

    def __exit__(self, *exc):
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)
        return False
