"""Reading images and MVTec-AD-style folders, with clear errors for bad files.

Images come back as float32 arrays in [0, 1], shaped ``(C, H, W)`` with C = 1 (grey) or 3 (RGB).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm")


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def read_image(path: str | Path) -> np.ndarray:
    """Read one image file → ``(C, H, W)`` float32 in [0, 1]; C is 1 for grey files, else 3.

    Raises InputError naming the file for missing, truncated or non-image files.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file")
    try:
        with Image.open(path) as im:
            im.load()
            arr = _pil_to_array(im)
    except _OutOfRange as err:
        raise InputError(path, str(err)) from None
    except UnidentifiedImageError:
        raise InputError(path, "not an image file (Pillow cannot identify it)") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise InputError(path, f"unreadable or truncated image ({err})") from None
    if arr.shape[1] < 2 or arr.shape[2] < 2:
        raise InputError(path, f"image is too small ({arr.shape[2]}x{arr.shape[1]} px)")
    return arr


class _OutOfRange(Exception):
    """Pixel values that no fixed scale maps into [0, 1] (turned into an InputError naming the file)."""


def _pil_to_array(im: Image.Image) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.float64)
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise _OutOfRange(f"32-bit integer image with values {a.min():g}..{a.max():g}, outside 0..65535; "
                              "save it as an 8- or 16-bit image")
        peak = 65535.0 if a.max(initial=0) > 255 or im.mode.startswith("I;16") else 255.0
        return (a / peak).astype(np.float32)[None]
    if im.mode == "F":
        a = np.asarray(im, dtype=np.float32)
        if a.size and not np.isfinite(a).all():
            raise _OutOfRange("floating-point image with NaN or infinite pixels")
        if a.size and (a.min() < -1e-6 or a.max() > 1 + 1e-6):
            # clipping would silently flatten every brighter pixel to 1
            raise _OutOfRange(f"floating-point image with values {a.min():g}..{a.max():g}; kizu reads float "
                              "images as intensities in [0, 1]: scale it, or save it as an 8- or 16-bit image")
        return np.clip(a, 0.0, 1.0)[None]
    if im.mode in ("1", "L", "P", "LA") and (im.mode != "P" or _palette_is_grey(im)):
        return (np.asarray(im.convert("L"), dtype=np.float32) / 255.0)[None]
    rgb = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    return rgb.transpose(2, 0, 1).copy()


def _palette_is_grey(im: Image.Image) -> bool:
    rgb = np.asarray(im.convert("RGB"))
    return bool(np.all(rgb[..., 0] == rgb[..., 1]) and np.all(rgb[..., 1] == rgb[..., 2]))


class ImageFiles:
    """Image files read on demand, one at a time: a sequence of ``(C, H, W)`` arrays that never holds
    more than one image (``InspectionModel.train_files`` reads each file twice instead of keeping
    hundreds of full-resolution images in memory)."""

    def __init__(self, paths: list[str | Path]):
        self.paths = [Path(p) for p in paths]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> np.ndarray:
        return read_image(self.paths[i])

    def __iter__(self):
        return (read_image(p) for p in self.paths)


def read_images(paths: list[Path]) -> list[np.ndarray]:
    """Read many files; each is ``(C, H, W)``. Sizes may differ (see ``stack_same_size``)."""
    return [read_image(p) for p in paths]


def stack_same_size(arrays: list[np.ndarray], paths: list[Path]) -> np.ndarray:
    """Stack ``(C, H, W)`` arrays into ``(N, C, H, W)``; mixed sizes are an error naming a file.

    Grey and colour may be mixed: grey images are then replicated to 3 channels.
    """
    if not arrays:
        raise InputError(None, "no images")
    h, w = arrays[0].shape[1:]
    for a, p in zip(arrays, paths):
        if a.shape[1:] != (h, w):
            raise InputError(
                p,
                f"image is {a.shape[2]}x{a.shape[1]} px but {paths[0].name} is {w}x{h} px; "
                "all training images must have one size (or pass --resize)",
            )
    channels = max(a.shape[0] for a in arrays)
    out = np.empty((len(arrays), channels, h, w), dtype=np.float32)
    for i, a in enumerate(arrays):
        out[i] = a if a.shape[0] == channels else np.repeat(a, channels, axis=0)
    return out


def list_images(folder: str | Path, *, recursive: bool = True) -> list[Path]:
    """Image files under ``folder`` (sorted). Raises InputError if there is none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "no such folder")
    it = folder.rglob("*") if recursive else folder.iterdir()
    files = sorted(p for p in it if p.is_file() and is_image_path(p))
    if not files:
        raise InputError(folder, f"no image files ({', '.join(IMAGE_SUFFIXES[:4])}, ...) in this folder")
    return files


def expand_inputs(inputs: list[str | Path]) -> list[tuple[Path, Path]]:
    """Files and folders → ``[(file, its root)]``; a folder is searched recursively.

    The root is the folder the file was found under (its own parent for a plain file),
    so outputs can mirror the input layout.
    """
    found: list[tuple[Path, Path]] = []
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            found.extend((p, item) for p in list_images(item))
        elif item.is_file():
            found.append((item, item.parent))
        else:
            raise InputError(item, "no such file or folder")
    return found


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


def write_image(path: str | Path, image: np.ndarray) -> None:
    """Write ``(H, W)`` or ``(C, H, W)`` floats in [0, 1] (or bool) as an 8-bit PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.asarray(image)
    if a.dtype == bool:
        a = a.astype(np.float32)
    if a.ndim == 3:
        a = a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)
    u8 = np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)
    Image.fromarray(u8).save(path)


def default_mode(directory: bool = False) -> int:
    """Permissions a plain ``open``/``mkdir`` would give (temp files are private by default)."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write a file so readers see either the old or the complete new content."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, default_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
