"""Folder layouts: good training images (MVTec-AD ``train/good`` or a flat folder) and labelled
test sets (``test/good``, ``test/<defect>``, masks under ``ground_truth/<defect>``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from .images import is_image_path, list_images, read_image


def training_image_paths(data: str | Path) -> list[Path]:
    """Good images for training: ``DATA/train/good`` of an MVTec-AD category, or a flat folder."""
    data = Path(data)
    if not data.is_dir():
        raise InputError(data, "no such folder")
    good = data / "train" / "good"
    if good.is_dir():
        return list_images(good)
    if (data / "train").is_dir() or (data / "test").is_dir():
        raise InputError(data, "looks like an MVTec-AD folder but has no train/good sub-folder")
    return list_images(data, recursive=False)


@dataclass
class LabelledSet:
    """A test set: image paths, labels (0 good / 1 defective), defect types and optional masks."""

    paths: list[Path]
    labels: np.ndarray
    defect_types: list[str]
    mask_paths: list[Path | None] = field(default_factory=list)

    @property
    def has_masks(self) -> bool:
        return any(m is not None for m in self.mask_paths)


def test_set(data: str | Path) -> LabelledSet:
    """Read the ``test/`` part of an MVTec-AD category: ``test/good`` and ``test/<defect>``, with masks
    from ``ground_truth/<defect>/`` where they exist (``_mask_path``)."""
    data = Path(data)
    test = data / "test"
    if not test.is_dir():
        raise InputError(data, "no test/ sub-folder (expected the MVTec-AD layout test/good, test/<defect>)")
    paths, labels, types, masks = [], [], [], []
    for sub in sorted(p for p in test.iterdir() if p.is_dir()):
        files = sorted(p for p in sub.iterdir() if p.is_file() and is_image_path(p))
        for f in files:
            paths.append(f)
            labels.append(0 if sub.name == "good" else 1)
            types.append(sub.name)
            masks.append(_mask_path(data / "ground_truth" / sub.name, f))
    if not paths:
        raise InputError(test, "no test images")
    if 0 not in labels:
        raise InputError(test, "no test/good images: cannot measure false alarms")
    return LabelledSet(paths, np.asarray(labels, dtype=np.int64), types, masks)


def _mask_path(folder: Path, image: Path) -> Path | None:
    """``folder/<stem>_mask.png`` (MVTec AD), else ``<stem>.png`` or the image's own name (layouts
    such as BTAD's), else None."""
    for name in (f"{image.stem}_mask.png", f"{image.stem}.png", image.name):
        if (folder / name).is_file():
            return folder / name
    return None


def read_mask(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """A ground-truth mask → ``(H, W)`` bool, checked against the image's ``shape``: pixels above half
    of white (0/255 masks), or, in masks whose brightest pixel is darker than that (0/1 label
    masks), above half of their brightest; in colour masks, any channel counts."""
    grey = read_image(path).max(axis=0)
    peak = float(grey.max())
    m = grey > (0.5 if peak > 0.5 else 0.5 * peak)
    if m.shape != shape:
        raise InputError(path, f"mask is {m.shape[1]}x{m.shape[0]} px but its image is {shape[1]}x{shape[0]} px")
    return m


