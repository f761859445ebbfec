"""The images a scaled-out ``kizu predict`` inspects: its INPUT arguments → one ``Source`` per
image file, and the bytes of a source.

An INPUT is a folder (searched recursively, as local ``kizu predict`` does), an image file, a glob
(``'data/**/*.png'``), a list of paths (a ``.txt`` file with one path a line, or a ``.csv`` file
with a ``path`` column, such as an earlier results.csv), or the URI of any of these on a
filesystem pyarrow opens (``s3://bucket/images/``, ``gs://...``, ``hdfs://...``, ``file:///...``).
Listing happens once, on the driver; workers only read the files they are given.
"""

from __future__ import annotations

import csv
import glob
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import InputError
from ..io.images import expand_inputs, is_image_path

#: INPUT files read as lists of image paths
LIST_SUFFIXES = (".txt", ".csv", ".lst")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")
_GLOB_CHARS = ("*", "?", "[")


@dataclass(frozen=True)
class Source:
    """One image file to inspect.

    ``path``: how results name it (the text local ``kizu predict`` writes for the same INPUT);
    ``location``: where a worker reads it (an absolute local path or a URI); ``relative``: its path
    under its INPUT folder, which ``--maps`` and ``--overlays`` mirror.
    """

    path: str
    location: str
    relative: str


def is_uri(text: str) -> bool:
    return bool(_URI.match(text))


def is_glob(text: str) -> bool:
    return any(c in text for c in _GLOB_CHARS)


def list_sources(inputs: list[str]) -> list[Source]:
    """Every image file the INPUTs name, in order, each once (by ``path``). Raises InputError
    naming an INPUT that names nothing."""
    seen: set[str] = set()
    out: list[Source] = []
    for item in inputs:
        for source in expand_input(str(item)):
            if source.path not in seen:
                seen.add(source.path)
                out.append(source)
    return out


def expand_input(item: str) -> list[Source]:
    """One INPUT → its sources."""
    if is_uri(item):
        return _expand_uri(item)
    path = Path(item)
    if path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
        return _expand_list(path.read_text(encoding="utf-8"), path.suffix.lower(), item, path.parent)
    if path.exists():
        return [_local(p, root) for p, root in expand_inputs([path])]
    if is_glob(item):
        return _expand_glob(item)
    raise InputError(item, "no such file or folder")


def _local(path: Path, root: Path) -> Source:
    return Source(str(path), os.path.abspath(path), path.relative_to(root).as_posix())


def _expand_glob(pattern: str) -> list[Source]:
    """A local glob (``**`` crosses folders); ``relative`` is under the pattern's fixed leading folders."""
    root = Path(_fixed_prefix(pattern))
    found = sorted(Path(p) for p in glob.glob(pattern, recursive=True))
    files = [p for p in found if p.is_file() and is_image_path(p)]
    if not files:
        raise InputError(pattern, "no image file matches this pattern")
    return [_local(p, root) for p in files]


def _fixed_prefix(pattern: str) -> str:
    """The folders of ``pattern`` before its first glob character (``"."`` when there are none)."""
    parts = PurePosixPath(pattern.replace(os.sep, "/")).parts
    fixed = []
    for part in parts[:-1]:
        if is_glob(part):
            break
        fixed.append(part)
    return str(PurePosixPath(*fixed)) if fixed else "."


def _expand_list(text: str, suffix: str, name: str, folder: Path | None) -> list[Source]:
    """The entries of a list file; a relative entry is relative to the list's own folder (a local
    one) or URI (``folder`` None: ``name`` is a URI)."""
    entries = _list_entries(text, suffix, name)
    if not entries:
        raise InputError(name, "lists no image paths")
    return [_list_entry(entry, name, folder) for entry in entries]


def _list_entries(text: str, suffix: str, name: str) -> list[str]:
    """Paths in a list: a ``.csv`` file's ``path`` column (else its first column), or the lines of
    a text file (blank lines and ``#`` comments skipped)."""
    if suffix != ".csv":
        return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    rows = [r for r in csv.reader(io.StringIO(text)) if r and any(c.strip() for c in r)]
    if not rows:
        return []
    header = [c.strip().lower() for c in rows[0]]
    if "path" in header:
        column = header.index("path")
        rows = rows[1:]
    else:
        column = 0
    if any(len(r) <= column for r in rows):
        raise InputError(name, f"a row has no column {column + 1} (the paths)")
    return [r[column].strip() for r in rows if r[column].strip()]


def _list_entry(entry: str, list_name: str, folder: Path | None) -> Source:
    """One list entry → its source (it is checked when read: a missing file becomes an error row)."""
    if is_uri(entry):
        return Source(entry, entry, PurePosixPath(entry.split("://", 1)[1]).name)
    if folder is None:  # a relative entry of a list given as a URI
        base = list_name.rsplit("/", 1)[0]
        uri = entry if entry.startswith("/") else f"{base}/{entry}"
        return Source(uri, uri, PurePosixPath(entry).name if entry.startswith("/") else entry)
    path = Path(entry)
    if path.is_absolute():
        return Source(entry, os.path.abspath(path), path.name)
    shown = folder / path
    inside = ".." not in path.parts
    return Source(str(shown), os.path.abspath(shown), path.as_posix() if inside else path.name)


# -- other filesystems -----------------------------------------------------------------------------
def _filesystem(uri: str):
    """``(pyarrow filesystem, path on it)`` of a URI; InputError for a scheme pyarrow does not open."""
    from pyarrow import ArrowException
    from pyarrow.fs import FileSystem

    try:
        return FileSystem.from_uri(uri)
    except (ArrowException, ValueError, OSError) as err:
        raise InputError(uri, f"pyarrow cannot open this URI ({err})") from None


def _expand_uri(uri: str) -> list[Source]:
    """A URI of a folder (listed recursively), a file, a list of paths or a glob."""
    from pyarrow.fs import FileType

    head, tail = _split_uri_glob(uri)
    fs, base = _filesystem(head)
    if tail:
        return _uri_glob(fs, base, head, tail, uri)
    info = fs.get_file_info(base)
    if info.type == FileType.NotFound:
        raise InputError(uri, "no such file or folder")
    if info.type == FileType.Directory:
        files = _uri_files(fs, base)
        if not files:
            raise InputError(uri, "no image files in this folder")
        prefix = uri.rstrip("/")
        return [Source(f"{prefix}/{rel}", f"{prefix}/{rel}", rel) for rel in files]
    suffix = PurePosixPath(base).suffix.lower()
    if suffix in LIST_SUFFIXES:
        return _expand_list(read_location(uri, uri).decode("utf-8"), suffix, uri, None)
    return [Source(uri, uri, PurePosixPath(base).name)]


def _uri_files(fs, base: str) -> list[str]:
    """Image files under a folder of a pyarrow filesystem, as sorted paths relative to it."""
    from pyarrow.fs import FileSelector

    infos = fs.get_file_info(FileSelector(base, recursive=True))
    base = base.rstrip("/")
    rel = (PurePosixPath(i.path).relative_to(base).as_posix() for i in infos if i.is_file)
    return sorted(r for r in rel if is_image_path(PurePosixPath(r)))


def _split_uri_glob(uri: str) -> tuple[str, str]:
    """``scheme://fixed/folders`` and the rest of a URI from its first folder with a glob character."""
    scheme, rest = uri.split("://", 1)
    parts = rest.split("/")
    for i, part in enumerate(parts):
        if is_glob(part):
            return f"{scheme}://{'/'.join(parts[:i])}", "/".join(parts[i:])
    return uri, ""


def _uri_glob(fs, base: str, head: str, pattern: str, uri: str) -> list[Source]:
    """Files under ``head`` whose path below it matches ``pattern`` (``**`` crosses folders)."""
    regex = re.compile(_glob_regex(pattern))
    files = [rel for rel in _uri_files(fs, base) if regex.fullmatch(rel)]
    if not files:
        raise InputError(uri, "no image file matches this pattern")
    prefix = head.rstrip("/")
    return [Source(f"{prefix}/{rel}", f"{prefix}/{rel}", rel) for rel in files]


def _glob_regex(pattern: str) -> str:
    """A glob over ``/``-separated paths as a regular expression: ``**/`` is any number of folders,
    ``*`` and ``?`` stay within one name, ``[...]`` is a set of characters (``[!...]`` its complement)."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] in "*?":
            out.append("[^/]*" if pattern[i] == "*" else "[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 2:]:
            close = pattern.index("]", i + 2)
            body = pattern[i + 1:close]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body).replace("\\", "\\\\") + "]")
            i = close + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


# -- reading ----------------------------------------------------------------------------------------
def read_location(location: str, shown: str) -> bytes:
    """The bytes of a source (a local path or a URI); InputError naming ``shown`` if it cannot be read."""
    if not is_uri(location):
        try:
            return Path(location).read_bytes()
        except FileNotFoundError:
            raise InputError(shown, "no such file") from None
        except OSError as err:
            raise InputError(shown, f"cannot read this file ({err.strerror or err})", "unreadable") from None
    from pyarrow import ArrowException

    fs, path = _filesystem(location)
    try:
        with fs.open_input_stream(path) as stream:
            return stream.read()
    except FileNotFoundError:
        raise InputError(shown, "no such file") from None
    except (OSError, ArrowException) as err:
        raise InputError(shown, f"cannot read this file ({err})", "unreadable") from None
