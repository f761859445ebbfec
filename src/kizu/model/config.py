"""The training configuration: one frozen object shared by the Python API, the CLI, the demo and
``model.json``. Its field defaults are kizu's defaults; ``__post_init__`` is the one place options
are checked."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from .. import defaults
from ..calibration.conformal import THRESHOLD_RULES
from ..errors import KizuError
from ..scoring.rule import REDUCERS

CALIBRATIONS = ("auto", "holdout", "cross", "loo")


@dataclass(frozen=True)
class TrainConfig:
    """How ``fit_model`` learns and calibrates a model.

    ``detector`` and its ``options`` (on top of the detector's defaults, ``kizu detectors``);
    ``seed`` (the same seed gives the same model and scores); ``alpha`` (target false-alarm rate)
    under ``threshold_rule`` (``conformal``, ``conditional`` with ``delta``, ``train-quantile``);
    ``calibration`` (``auto``, ``holdout`` with ``calibration_fraction``, ``cross`` with ``folds``,
    ``loo``);
    ``score``/``sigma``/``topk`` (the image-score rule; None: the detector's reduction and
    ``defaults.SIGMA``); ``resize`` (H, W) for
    every image, ``max_side`` (larger images are inspected scaled down; 0/None: never), ``tile`` and
    ``tile_stride`` (px); ``reference`` and ``template`` (score terms; None: automatic).
    """

    detector: str = defaults.DETECTOR
    options: dict[str, Any] = field(default_factory=dict)
    seed: int = defaults.SEED
    alpha: float = defaults.ALPHA
    threshold_rule: str = defaults.THRESHOLD_RULE
    delta: float = defaults.DELTA
    calibration: str = defaults.CALIBRATION
    calibration_fraction: float = defaults.CALIBRATION_FRACTION
    folds: int = defaults.FOLDS
    score: str | None = None
    sigma: float | None = None
    topk: float = defaults.TOPK
    resize: tuple[int, int] | None = None
    max_side: int | None = defaults.MAX_SIDE
    tile: int | None = None
    tile_stride: int | None = None
    reference: bool | None = None
    template: bool | None = None

    def __post_init__(self):
        if not 0 < self.alpha < 1:
            raise KizuError(f"alpha must be in (0, 1), not {self.alpha}")
        if not 0 < self.delta < 1:
            raise KizuError(f"delta must be in (0, 1), not {self.delta}")
        if self.threshold_rule not in THRESHOLD_RULES:
            raise KizuError(f"unknown threshold rule {self.threshold_rule!r}; choose one of {THRESHOLD_RULES}")
        if self.calibration not in CALIBRATIONS:
            raise KizuError(f"calibration must be 'auto', 'holdout', 'cross' or 'loo', not {self.calibration!r}")
        if not 0 <= self.calibration_fraction < 1:
            raise KizuError(f"calibration fraction must be in [0, 1), not {self.calibration_fraction}")
        if self.score is not None and self.score not in REDUCERS:
            raise KizuError(f"unknown score {self.score!r}; choose one of {REDUCERS}")
        if self.sigma is not None and not (math.isfinite(self.sigma) and self.sigma >= 0):
            raise KizuError(f"sigma must be >= 0, not {self.sigma}")
        if self.max_side and self.max_side < 16:
            raise KizuError(f"max_side must be 0 (never scale down) or at least 16 px, not {self.max_side}")
        object.__setattr__(self, "options", dict(self.options))
        if self.resize is not None:
            object.__setattr__(self, "resize", (int(self.resize[0]), int(self.resize[1])))

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with ``changes``."""
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["resize"] = None if self.resize is None else list(self.resize)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if values.get("resize") is not None:
            values["resize"] = tuple(values["resize"])
        return cls(**values)
