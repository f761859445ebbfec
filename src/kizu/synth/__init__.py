"""Built-in synthetic data sets, written in the MVTec-AD layout.

``shapes``: the seed post's ellipse (good) vs rectangle (defect) images.
``fine``: grey parts and textures with small defects and pixel masks.
"""

from .base import SynthDataset, write_mvtec
from .shapes import make_shapes, seed_anomaly, seed_normal

__all__ = ["SynthDataset", "write_mvtec", "make_shapes", "seed_normal", "seed_anomaly"]

try:  # the fine-defect generator lives in its own module
    from .fine import make_fine  # noqa: F401

    __all__.append("make_fine")
except ImportError:  # pragma: no cover - only while fine.py does not exist yet
    pass
