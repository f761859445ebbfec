"""The one interface every detector implements (scikit-learn / PyOD spirit).

Images in: ``(N, C, H, W)`` float32 in [0, 1]. Maps out: ``(N, H, W)`` float32, same H and W,
higher = more anomalous. Image scores normally come from maps through ``kizu.scoring``; a detector
with its own exact image score (e.g. MT's MD) overrides ``image_scores``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, ClassVar

import numpy as np

#: progress(step, total, info) — called while fitting; info holds e.g. {"loss": ..., "val_loss": ...}
ProgressFn = Callable[[int, int, dict[str, float]], None]


class Detector(ABC):
    """Base class. Subclasses set ``name`` and register with ``@register``.

    Constructor keyword arguments are the detector's hyper-parameters; ``config()`` returns them
    (JSON-able) and ``from_config`` rebuilds an unfitted detector from them.
    """

    name: ClassVar[str]
    #: True when ``image_scores`` is the detector's own exact score (not derived from the map)
    has_own_image_score: ClassVar[bool] = False
    #: the image-score rule a model uses by default (:mod:`kizu.scoring`); None = the model's choice
    #: (mean for the autoencoder, as in the seed; max of the smoothed map otherwise)
    default_reducer: ClassVar[str | None] = None

    def __init__(self, **params: Any):
        self.params = params
        #: per-epoch history etc., JSON-able; stored in the model's training summary
        self.history: dict[str, list[float]] = {}

    # -- fitting and scoring -------------------------------------------------------------
    @abstractmethod
    def fit(self, images: np.ndarray, *, seed: int | None = None, progress: ProgressFn | None = None) -> "Detector":
        """Learn "normal" from good images ``(N, C, H, W)``."""

    @abstractmethod
    def anomaly_maps(self, images: np.ndarray) -> np.ndarray:
        """``(N, C, H, W)`` → ``(N, H, W)`` float32 per-pixel anomaly, at the input's H and W."""

    def training_maps(self, images: np.ndarray, indices: np.ndarray) -> np.ndarray:
        """Maps of images the detector was just fitted on (``indices``: their positions among the
        fitted images), as close as the detector can make them to the maps of *unseen* good images
        (e.g. leaving each image's own memory out). Used to set image-score scales that fit new
        images. Default: ``anomaly_maps`` (in-sample)."""
        return self.anomaly_maps(images)

    def image_scores(self, images: np.ndarray) -> np.ndarray | None:
        """The detector's own ``(N,)`` image score, or None to derive it from the map."""
        return None

    def reconstruct(self, images: np.ndarray) -> np.ndarray | None:
        """Reconstructions ``(N, C, H, W)`` for detectors that have them (for the figures)."""
        return None

    # -- persistence -----------------------------------------------------------------------
    @abstractmethod
    def state_dict(self) -> dict[str, np.ndarray]:
        """Fitted state as named arrays (saved with safetensors; no pickle)."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore the fitted state written by ``state_dict``."""

    def config(self) -> dict[str, Any]:
        """JSON-able hyper-parameters; ``type(self)(**config())`` rebuilds the unfitted detector."""
        return dict(self.params)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Detector":
        return cls(**config)

    def to(self, device: str) -> "Detector":  # noqa: D401 - trivial default
        """Move to a compute device; detectors without torch parts ignore it."""
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"
