"""Built-in synthetic data sets, written in the MVTec-AD layout.

``shapes``: the seed post's ellipse (good) vs rectangle (defect) images.
``fine``: grey parts and textures with small defects and pixel masks.
``photo``: tiles of scikit-image's bundled photographs with painted defects.
"""

from .base import SynthDataset, write_mvtec
from .fine import make_fine
from .shapes import make_shapes, seed_anomaly, seed_normal

__all__ = ["SynthDataset", "make_fine", "make_shapes", "seed_anomaly", "seed_normal", "write_mvtec"]
