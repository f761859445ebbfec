"""Errors that kizu reports to people: one line, naming the file and the problem."""

from __future__ import annotations

from pathlib import Path


class KizuError(Exception):
    """Base class; the CLI prints ``str(err)`` on one line and exits non-zero."""


class InputError(KizuError):
    """Bad input data: an unreadable image, an empty folder, mixed sizes..."""

    def __init__(self, path: str | Path | None, problem: str, reason: str = "invalid"):
        self.path = None if path is None else Path(path)
        self.problem = problem
        #: what kind of problem (a service maps it to an HTTP status): "invalid" (the default),
        #: "empty", "not_image", "too_many_pixels", "unreadable", "size"
        self.reason = reason
        super().__init__(f"{path}: {problem}" if path is not None else problem)


class OptionError(KizuError, ValueError):
    """A detector option with a value of the wrong type or out of range (also a ValueError)."""


class ModelFileError(KizuError):
    """A saved model that is missing, damaged or from an incompatible version."""

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")
