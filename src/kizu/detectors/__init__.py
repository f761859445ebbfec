"""Detectors behind one interface; importing this package registers them all."""

from . import autoencoder  # noqa: F401  (registers "autoencoder")
from .base import Detector
from .registry import available, create, detector_class, register

for _optional in ("mt", "patch_gaussian", "patch_knn"):
    try:  # each detector registers itself on import
        __import__(f"{__name__}.{_optional}")
    except ImportError as _err:  # pragma: no cover - only while a module is missing
        if _optional not in str(_err):
            raise

#: what ``kizu train`` uses without ``--detector`` (chosen by bench/detectors.py; see the README)
DEFAULT_DETECTOR = "patch-knn"
DEFAULT_OPTIONS: dict = {"backbone": "lite0", "feature_dim": None, "brightness": 2.0, "brightness_surround": 15,
                         "max_memory": 16000}


def default_options(detector: str) -> dict:
    """The options kizu adds for ``detector`` when the user gives none: ``DEFAULT_OPTIONS`` for the
    default detector, nothing for the others (a copy; user options go on top)."""
    return dict(DEFAULT_OPTIONS) if detector == DEFAULT_DETECTOR else {}

__all__ = ["DEFAULT_DETECTOR", "DEFAULT_OPTIONS", "Detector", "available", "create", "default_options", "detector_class",
           "register"]
