"""Detector internals: local features and backbones, coreset and nearest-neighbour search, losses,
Taguchi's orthogonal arrays, PyTorch helpers. Not part of the public API."""
