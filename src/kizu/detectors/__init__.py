"""Detectors behind one interface (``base.Detector``), by name (``registry``); importing this package
registers them all. ``_components`` holds their internals (features, backbones, coreset, losses)."""

from ..defaults import DETECTOR as DEFAULT_DETECTOR
from . import autoencoder, mt, patch_gaussian, patch_knn  # noqa: F401  (each registers itself)
from ._components.torch_utils import resolve_device
from .base import Detector
from .registry import available, create, detector_class, register

__all__ = ["DEFAULT_DETECTOR", "Detector", "available", "create", "detector_class", "register", "resolve_device"]
