"""Shared CLI plumbing: one-line errors, training progress, option parsing, the confusion lines.

Only light modules are imported here: ``kizu --help`` must not wait for PyTorch.
"""

from __future__ import annotations

import functools
import json
import sys
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from ..errors import KizuError

console = Console(stderr=True, highlight=False)
#: plain text (no Rich markup): what it prints holds paths, and a path like ``a[/b].png`` is not markup
out_console = Console(highlight=False, soft_wrap=True, markup=False)


def fail(message: str, code: int = 2) -> None:
    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def warn(message: str) -> None:
    console.print(f"[bold yellow]warning:[/] {escape(message)}", soft_wrap=True)


def friendly_errors(fn):
    """Turn kizu's errors, bad values and file-system errors into one clear line and exit status 2
    (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (KizuError, ValueError) as err:
            fail(str(err))
        except OSError as err:  # a folder where a file is expected, a full disk, no permission, ...
            where = err.filename if err.filename is not None else ""
            fail(f"{where}: {err.strerror or err}" if where else str(err))
        except KeyboardInterrupt:
            fail("interrupted", 130)

    return wrapper


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``["k=v", ...]`` → dict; values are JSON when they parse (numbers, lists, true, null), else
    strings; ``None`` / ``none`` also mean null (Python users type it)."""
    opts: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise KizuError(f"--option {pair!r}: expected KEY=VALUE")
        k, v = pair.split("=", 1)
        if v.strip() in ("None", "none"):
            v = "null"
        try:
            opts[k.strip().replace("-", "_")] = json.loads(v)
        except json.JSONDecodeError:
            opts[k.strip().replace("-", "_")] = v
    return opts


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``"64"`` or ``"96x64"`` (width x height) → (H, W)."""
    if not text:
        return None
    try:
        if "x" in text.lower():
            w, h = (int(t) for t in text.lower().split("x"))
        else:
            w = h = int(text)
    except ValueError:
        raise KizuError(f"--resize {text!r}: expected PX or WIDTHxHEIGHT") from None
    if w < 4 or h < 4:
        raise KizuError(f"--resize {text!r}: too small")
    return (h, w)


@contextmanager
def training_progress(quiet: bool):
    """Yields a callback for ``kizu.model.TrainingStep`` events drawing one Rich bar on stderr over
    the whole training (every fold, the template, the final fit) with the time left."""
    if quiet or not sys.stderr:
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    cols = [TextColumn("[bold]{task.fields[stage]:<16}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn()]
    prog = Progress(*cols, console=console, transient=False)
    task = None

    def update(step) -> None:
        nonlocal task
        if task is None:  # drawn from the first event on: an input error before it leaves no bar behind
            prog.start()
            task = prog.add_task("train", total=100, stage="", detail="")
        prog.update(task, completed=100 * step.fraction, stage=step.stage, detail=_detail(step))

    try:
        yield update
    finally:
        if task is not None:
            prog.update(task, completed=100, stage="done", detail="")
            prog.stop()


def _detail(step) -> str:
    parts = [f"fit {step.fit}/{step.fits}"]
    loss = step.info.get("loss")
    if loss is not None:
        parts.append(f"loss {loss:.5f}")
    return "  ".join(parts)


def print_confusion(metrics: dict) -> None:
    """The seed's console lines, plus the headline metrics."""
    thr = metrics.get("threshold")
    out_console.print(f"Threshold: {thr:.6f}" if thr is not None else "Threshold: none (nothing can be flagged)")
    out_console.print(f"True Positives (TP): {metrics['tp']}")
    out_console.print(f"False Positives (FP): {metrics['fp']}")
    out_console.print(f"False Negatives (FN): {metrics['fn']}")
    out_console.print(f"True Negatives (TN): {metrics['tn']}")
    parts = [f"{k}={metrics[k]:.4f}" for k in ("image_auroc", "image_aupr", "precision", "recall", "f1", "fpr",
                                               "pixel_auroc", "aupro")
             if isinstance(metrics.get(k), float) and metrics[k] == metrics[k]]
    out_console.print("  ".join(parts))
