"""Resize / grey / RGB conversion, stored in the model and applied identically everywhere."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import defaults
from ..errors import InputError
from ..ops.resize import resize_image
from ..ops.tiling import extract_tiles

MAX_SIDE = defaults.MAX_SIDE


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """``(C, H, W)`` → ``(channels, H, W)``: grey is replicated, RGB becomes luminance (BT.601)."""
    c = image.shape[0]
    if c == channels:
        return image
    if channels == 3 and c == 1:
        return np.repeat(image, 3, axis=0)
    if channels == 1 and c == 3:
        return (0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2])[None].astype(np.float32)
    raise ValueError(f"cannot convert {c} channels to {channels}")


def is_effectively_grey(image: np.ndarray, tol: float = 1.0 / 255) -> bool:
    """True for one channel, or three nearly equal channels."""
    return image.shape[0] == 1 or bool(np.all(np.abs(image - image[:1]) <= tol))


@dataclass(frozen=True)
class Preprocessor:
    """What every image goes through before a detector sees it.

    ``channels``: 1 (grey) or 3 (RGB). ``size``: (H, W) the detector works at. ``resize``: when
    False, inputs must already be ``input_size`` (an error otherwise); when True, any input is
    resized to ``size``. ``input_size``: the training images' size when it differs from ``size``
    (large images inspected at a capped size, ``MAX_SIDE``); None means ``size``. ``orient``:
    ``"landscape"`` or ``"portrait"`` — an image of the other orientation is turned a quarter
    (``np.rot90``) before resizing, and its map turned back (``turned``). Maps are always resized
    back to each input's resolution.
    """

    channels: int
    size: tuple[int, int]
    resize: bool = False
    #: inspect as overlapping ``tile``-px tiles at ``tile_stride`` (None: the detector sees whole images)
    tile: int | None = None
    tile_stride: int | None = None
    input_size: tuple[int, int] | None = None
    orient: str | None = None

    @classmethod
    def for_training(cls, images: Sequence[np.ndarray], paths: list[Path], *, resize_to: tuple[int, int] | None = None,
                     channels: int | None = None, tile: int | None = None, tile_stride: int | None = None,
                     max_side: int | None = MAX_SIDE) -> "Preprocessor":
        """Choose channels (grey unless a training image has colour) and size from the training set:
        the images' own size, scaled down to ``max_side`` px on the longer side when they are larger
        (not when tiling: tiles exist to keep full resolution; ``None`` or 0: never)."""
        if not images:
            raise InputError(None, "no training images")
        if max_side and max_side < 16:
            raise InputError(None, f"max_side must be 0 (never scale down) or at least 16 px, not {max_side}")
        # one pass over the images (they may be files read on demand): their sizes and colour
        shapes, greys = zip(*((a.shape[1:], is_effectively_grey(a)) for a in images))
        if channels is None:
            channels = 1 if all(greys) else 3
        tiling = {}
        if tile is not None:
            tile = int(tile)
            stride = int(tile_stride) if tile_stride else max(1, (3 * tile) // 4)
            if tile < 8 or not 0 < stride <= tile:
                raise InputError(None, f"tile must be >= 8 px and 0 < stride <= tile "
                                       f"(got tile={tile}, stride={stride})")
            tiling = {"tile": tile, "tile_stride": stride}
        if resize_to is not None:
            pre = cls(channels, (int(resize_to[0]), int(resize_to[1])), True, **tiling)
            pre._check_tile()
            return pre
        if len(set(shapes)) > 1:
            if tile is not None:
                raise InputError(paths[0].parent, "--tile needs training images of one size (or --resize WxH)")
            return cls.for_mixed_sizes(shapes, channels, max_side)
        h, w = shapes[0]
        if tile is None and max_side and max(h, w) > max_side:
            f = max_side / max(h, w)
            return cls(channels, (max(1, round(h * f)), max(1, round(w * f))), False, input_size=(h, w))
        pre = cls(channels, (h, w), False, **tiling)
        pre._check_tile()
        return pre

    @classmethod
    def for_mixed_sizes(cls, shapes: list[tuple[int, int]], channels: int, max_side: int | None) -> "Preprocessor":
        """Training images of several sizes: the majority's orientation (the others turned a quarter)
        and their median height and width, scaled down to ``max_side`` — every image is resized to
        that, at training and at inspection alike."""
        landscape = sum(w > h for h, w in shapes) * 2 >= len(shapes)
        oriented = [(min(s), max(s)) if landscape else (max(s), min(s)) for s in shapes]
        h, w = (int(round(float(np.median([s[i] for s in oriented])))) for i in (0, 1))
        if max_side and max(h, w) > max_side:
            f = max_side / max(h, w)
            h, w = max(1, round(h * f)), max(1, round(w * f))
        return cls(channels, (h, w), True, orient="landscape" if landscape else "portrait")

    def turned(self, shape: tuple[int, int]) -> bool:
        """Whether an input of ``(H, W)`` is turned a quarter before inspection (``orient``)."""
        h, w = shape
        return h != w and self.orient is not None and (w > h) != (self.orient == "landscape")

    def describe(self) -> str:
        """What happens to every image, in words (``kizu train`` prints it)."""
        h, w = self.size
        parts = [f"{'grey' if self.channels == 1 else 'colour'} images inspected at {w}x{h} px"]
        if self.orient:
            parts.append(f"{'portrait' if self.orient == 'landscape' else 'landscape'} images turned to "
                         f"{self.orient} first")
        if self.resize:
            parts.append("any input size is resized to it")
        elif self.input_size:
            parts.append(f"from {self.input_size[1]}x{self.input_size[0]} px inputs")
        if self.tile:
            parts.append(f"as {self.tile}-px tiles at stride {self.tile_stride}")
        return "; ".join(parts)

    def _check_tile(self) -> None:
        if self.tile is not None and (self.tile > self.size[0] or self.tile > self.size[1]):
            raise InputError(None, f"tile {self.tile} px is larger than the images ({self.size[1]}x{self.size[0]} px)")

    def apply(self, image: np.ndarray, path: Path | str | None = None) -> np.ndarray:
        """One ``(C, H, W)`` image → ``(channels, *size)``; a size mismatch is an error naming ``path``."""
        self.check(image, path)
        image = to_channels(image, self.channels)
        if self.turned(image.shape[1:]):
            image = np.rot90(image, 1, axes=(1, 2))
        if image.shape[1:] != self.size:
            image = resize_image(image, self.size)
        return np.ascontiguousarray(image, dtype=np.float32)

    def check(self, image: np.ndarray, path: Path | str | None = None) -> None:
        """Raise InputError naming ``path`` if a ``(C, H, W)`` image does not have the size this model
        takes (any size is fine for a resizing model)."""
        expected = None if self.resize else (self.input_size or self.size)
        if expected is not None and tuple(image.shape[1:]) != tuple(expected):
            h, w = expected
            raise InputError(
                path, f"image is {image.shape[2]}x{image.shape[1]} px but the model expects {w}x{h} px "
                "(train with --resize to accept other sizes)")

    def apply_all(self, images: list[np.ndarray], paths: list | None = None) -> np.ndarray:
        """Many images → ``(N, channels, H, W)`` float32."""
        paths = paths or [None] * len(images)
        out = np.empty((len(images), self.channels, *self.size), np.float32)
        for i, (a, p) in enumerate(zip(images, paths)):
            out[i] = self.apply(a, p)
        return out

    def fit_view(self, x: np.ndarray) -> np.ndarray:
        """What the detector is fitted on: the images, or all their tiles when tiling."""
        if self.tile is None:
            return x
        return extract_tiles(x, self.tile, self.tile_stride)

    def to_json(self) -> dict:
        d = asdict(self)
        d["size"] = list(self.size)
        d["input_size"] = None if self.input_size is None else list(self.input_size)
        return d

    @classmethod
    def from_json(cls, d: dict) -> "Preprocessor":
        tile, stride, native = d.get("tile"), d.get("tile_stride"), d.get("input_size")
        orient = d.get("orient")
        if orient not in (None, "landscape", "portrait"):
            raise ValueError(f"orient must be landscape, portrait or null, not {orient!r}")
        return cls(int(d["channels"]), (int(d["size"][0]), int(d["size"][1])), bool(d.get("resize", False)),
                   None if tile is None else int(tile), None if stride is None else int(stride),
                   None if native is None else (int(native[0]), int(native[1])), orient)
