"""The tensor part of inference behind one interface: a preprocessed batch ``(N, C, H, W)`` in,
the detector's raw maps ``(N, H, W)`` (and its own image scores, if it has them) out. ``TorchRuntime``
runs the detector itself; everything after the tensor part is the same code for every runtime."""

from .base import Runtime

__all__ = ["Runtime"]
