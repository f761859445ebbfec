"""The runtime interface."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Runtime(Protocol):
    """Turns preprocessed images into detector maps."""

    #: True when ``maps`` also returns the detector's own image scores (then the score rule keeps them)
    own_score: bool

    def maps(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``(N, C, H, W)`` float32 → ``(N, H, W)`` float32 maps and ``(N,)`` own scores (or None)."""
        ...
