"""kizu (傷, "flaw"): visual inspection by anomaly detection, learnt from good images only.

>>> import kizu
>>> data = kizu.synth.make_shapes(n_train=100, n_test_normal=5, n_test_anomaly=5)
>>> model = kizu.fit_model(data.train)                          # doctest: +SKIP
>>> model.inspect(data.test[:1])[0].defective                   # doctest: +SKIP

The names below are imported on first use, so ``import kizu`` (and ``kizu --help``) stay fast.
"""

from __future__ import annotations

import os

# Idle PyTorch (OpenMP) threads sleep instead of spinning: on a line PC that shares its cores with
# camera and PLC software, spinning threads made inference several times slower (bench/throughput.py).
# Set before PyTorch is first imported; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from ._lazy import lazy_exports  # noqa: E402

__version__ = "0.2.0"

_API = {
    "InspectionModel": "kizu.model.inspection", "Prediction": "kizu.model.prediction",
    "TrainConfig": "kizu.model.config", "TrainingStep": "kizu.model.training", "Verdict": "kizu.model.prediction",
    "fit_model": "kizu.model.training", "verdicts": "kizu.model.prediction",
    "load_model": "kizu.io.model_file", "save_model": "kizu.io.model_file", "load_bundle": "kizu.io.bundle",
    "read_image": "kizu.io.images", "decode_image": "kizu.io.images",
    "inspect_files": "kizu.files", "score_files": "kizu.files",
    "detectors": "kizu.detectors", "synth": "kizu.synth", "defaults": "kizu.defaults",
}
__getattr__ = lazy_exports(__name__, _API)


def load_images(paths) -> list:
    """Read image files → list of ``(C, H, W)`` float32 arrays in [0, 1]."""
    return [__getattr__("read_image")(p) for p in paths]


__all__ = sorted([*_API, "load_images", "__version__"])
