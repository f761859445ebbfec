"""kizu (傷, "flaw"): visual inspection by anomaly detection, learnt from good images only.

>>> from kizu import InspectionModel, synth
>>> data = synth.make_shapes(n_train=100, n_test_normal=5, n_test_anomaly=5)
>>> model = InspectionModel.train(data.train)            # doctest: +SKIP
>>> model.inspect(data.test[:1])[0].defective           # doctest: +SKIP
"""

__version__ = "0.1.0"

from . import detectors, synth  # noqa: E402
from .images import read_image  # noqa: E402
from .model import InspectionModel, Verdict  # noqa: E402


def load_images(paths):
    """Read image files → list of ``(C, H, W)`` float32 arrays in [0, 1]."""
    return [read_image(p) for p in paths]


__all__ = ["InspectionModel", "Verdict", "detectors", "synth", "load_images", "read_image", "__version__"]
