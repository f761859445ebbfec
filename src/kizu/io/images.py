"""Reading and writing image files, with clear errors for bad files.

Images come back as float32 arrays in [0, 1], shaped ``(C, H, W)`` with C = 1 (grey) or 3 (RGB).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import InputError

#: images with more pixels than this are refused before they are decoded
MAX_PIXELS = 100_000_000
#: Pillow formats kizu decodes (those of ``IMAGE_SUFFIXES``; cameras' MPO files open as JPEG)
FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "WEBP", "PPM")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm")


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def read_image(path: str | Path, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read one image file → ``(C, H, W)`` float32 in [0, 1]; C is 1 for grey files, else 3.

    Raises InputError naming the file for missing, truncated, oversized or non-image files.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file")
    return _decode(path, path, max_pixels)


def decode_image(data: bytes, source: str | Path, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """``read_image`` for the bytes of an image file (an upload); ``source`` names it in errors."""
    if not data:
        raise InputError(source, "empty file (0 bytes)", "empty")
    return _decode(io.BytesIO(data), source, max_pixels)


def image_format(data: bytes) -> str | None:
    """The Pillow format of encoded image bytes ("PNG", "JPEG", ...), from the header; None if it is
    not one of ``FORMATS``."""
    Image.init()
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as im:
            return im.format
    except Exception:  # noqa: BLE001 - any failure to identify means "not an image kizu reads"
        return None


def _decode(fp, source, max_pixels: int) -> np.ndarray:
    """Decode with Pillow's plugins for ``FORMATS`` only (others, such as EPS, run external programs),
    checking the pixel count from the header before any pixel is decoded."""
    Image.init()  # registers every plugin once, so ``formats`` can name them
    try:
        with Image.open(fp, formats=FORMATS) as im:
            if im.width * im.height > max_pixels:
                raise InputError(source, f"image is {im.width}x{im.height} px, more than the {max_pixels:,} "
                                         "pixels kizu reads (a decompression bomb, or not the image you meant)",
                                 "too_many_pixels")
            im.load()
            arr = _pil_to_array(im)
    except _OutOfRange as err:
        raise InputError(source, str(err), "unreadable") from None
    except Image.DecompressionBombError as err:
        raise InputError(source, f"too many pixels ({err})", "too_many_pixels") from None
    except UnidentifiedImageError:
        raise InputError(source, f"not an image file (not {', '.join(FORMATS)})", "not_image") from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise InputError(source, f"unreadable or truncated image ({err})", "unreadable") from None
    if arr.shape[1] < 2 or arr.shape[2] < 2:
        raise InputError(source, f"image is too small ({arr.shape[2]}x{arr.shape[1]} px)", "unreadable")
    return arr


def image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` of an image file from its header, without decoding it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file")
    Image.init()
    try:
        with Image.open(path, formats=FORMATS) as im:
            return im.size
    except (UnidentifiedImageError, Image.DecompressionBombError):
        raise InputError(path, "not an image file (Pillow cannot identify it)") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise InputError(path, f"unreadable image ({err})") from None


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
    more than one image (``kizu.fit_model`` reads each file twice instead of keeping
    hundreds of full-resolution images in memory)."""

    def __init__(self, paths: list[str | Path]):
        self.paths = [Path(p) for p in paths]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> np.ndarray:
        return read_image(self.paths[i])

    def __iter__(self):
        return (read_image(p) for p in self.paths)


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


