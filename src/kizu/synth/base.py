"""The in-memory form of a synthetic data set and its writer to the MVTec-AD layout."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io.atomic import atomic_directory
from ..io.images import write_image


def check_counts(**counts) -> None:
    """Raise ValueError naming the first count that is not a non-negative integer."""
    for name, n in counts.items():
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"{name} must be a non-negative integer, not {n!r}")


@dataclass
class SynthDataset:
    """Images are ``(N, H, W)`` float32 in [0, 1] (grey).

    ``test_labels``: (M,) int, 0 good / 1 defective; ``test_types``: "good" or the defect name;
    ``test_masks``: (M, H, W) bool defect masks, or None when the task has no pixel truth.
    """

    train: np.ndarray
    test: np.ndarray
    test_labels: np.ndarray
    test_types: list[str]
    test_masks: np.ndarray | None = None


def write_mvtec(ds: SynthDataset, out: str | Path) -> Path:
    """Write ``ds`` as ``out/train/good``, ``out/test/<type>``, ``out/ground_truth/<type>``.

    The folder appears complete or not at all (written beside, then renamed).
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(out, "output folder exists and is not empty")
    with atomic_directory(out) as tmp:
        for i, img in enumerate(ds.train):
            write_image(tmp / "train" / "good" / f"{i:04d}.png", img)
        counters: dict[str, int] = {}
        for j, (img, kind) in enumerate(zip(ds.test, ds.test_types)):
            k = counters.get(kind, 0)
            counters[kind] = k + 1
            write_image(tmp / "test" / kind / f"{k:04d}.png", img)
            if ds.test_masks is not None and kind != "good":
                write_image(tmp / "ground_truth" / kind / f"{k:04d}_mask.png", ds.test_masks[j])
    return out
