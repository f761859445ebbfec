"""kizu (傷, "flaw"): visual inspection by anomaly detection, learnt from good images only.

>>> import kizu
>>> data = kizu.synth.make_shapes(n_train=100, n_test_normal=5, n_test_anomaly=5)
>>> model = kizu.fit_model(data.train)                          # doctest: +SKIP
>>> model.inspect(data.test[:1])[0].defective                   # doctest: +SKIP

The names below are imported on first use, so ``import kizu`` (and ``kizu --help``) stay fast.
"""

from __future__ import annotations

import importlib

__version__ = "0.2.0"

_API = {
    "InspectionModel": "kizu.model", "Prediction": "kizu.model", "TrainConfig": "kizu.model",
    "TrainingStep": "kizu.model", "Verdict": "kizu.model", "fit_model": "kizu.model", "verdicts": "kizu.model",
    "load_model": "kizu.io", "save_model": "kizu.io", "read_image": "kizu.io", "decode_image": "kizu.io",
    "inspect_files": "kizu.files", "score_files": "kizu.files",
    "detectors": "kizu.detectors", "synth": "kizu.synth",
}


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'kizu' has no attribute {name!r}")
    module = importlib.import_module(_API[name])
    return module if module.__name__.endswith("." + name) else getattr(module, name)


def load_images(paths) -> list:
    """Read image files → list of ``(C, H, W)`` float32 arrays in [0, 1]."""
    from .io import read_image

    return [read_image(p) for p in paths]


__all__ = sorted([*_API, "load_images", "__version__"])
