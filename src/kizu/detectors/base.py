"""The one interface every detector implements (scikit-learn / PyOD spirit).

Images in: ``(N, C, H, W)`` float32 in [0, 1]. Maps out: ``(N, H, W)`` float32, same H and W,
higher = more anomalous. Image scores normally come from maps through :mod:`kizu.scoring`; a
detector with its own exact image score (e.g. MT's MD) overrides ``image_scores``.

Hyper-parameters live in one frozen dataclass per detector (``Detector.Options``): its field
defaults are the detector's defaults, each field's ``help`` says what it does, ``__post_init__``
validates. Named presets (``Detector.presets``) override some fields; given options override the
preset. ``config()`` returns every value, so a saved model rebuilds exactly (``from_config``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, ClassVar

import numpy as np

from ..errors import OptionError

#: progress(step, total, info) — called while fitting; info holds e.g. {"loss": ..., "val_loss": ...}
ProgressFn = Callable[[int, int, dict[str, float]], None]


def option(default: Any, help: str) -> Any:
    """A hyper-parameter field with its default and a one-line explanation (``kizu detectors``)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Options:
    """Base of every detector's hyper-parameters. Subclasses add fields with :func:`option`."""

    preset: str = option("default", "named set of defaults the other options start from")

    def _set(self, name: str, value: Any) -> None:
        """Normalise a field in ``__post_init__`` (the dataclass is frozen)."""
        object.__setattr__(self, name, value)


def as_image_batch(images: np.ndarray) -> np.ndarray:
    """Validate and return ``(N, C, H, W)`` float32 with C = 1 or 3 (``(N, H, W)`` becomes C = 1)."""
    x = np.asarray(images, dtype=np.float32)
    if x.ndim == 3:
        x = x.reshape(len(x), 1, *x.shape[1:])  # not x[:, None]: see torch_utils.device_batch
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"images must be (N, C, H, W) with C = 1 or 3, got shape {x.shape}")
    return x


class Detector(ABC):
    """Base class. Subclasses set ``name``, ``Options`` (and ``presets``) and register with
    ``@register``. ``device`` ("auto", "cpu", "cuda") says where torch parts run; it is not a
    hyper-parameter: it is not saved, and a model fitted on a GPU loads on a CPU."""

    name: ClassVar[str]
    Options: ClassVar[type[Options]] = Options
    #: preset name → the options it changes from the ``Options`` defaults
    presets: ClassVar[dict[str, dict[str, Any]]] = {"default": {}}
    #: True when ``image_scores`` is the detector's own exact score (not derived from the map)
    has_own_image_score: ClassVar[bool] = False
    #: True when the detector runs torch code that ``device`` places
    uses_device: ClassVar[bool] = False
    #: how a model reduces this detector's maps to image scores by default (:mod:`kizu.scoring.rule`)
    default_reducer: ClassVar[str] = "max"
    #: True when ``training_maps`` maps each fitted image without what the detector learnt from it,
    #: as an unseen image (leave-own-out calibration, ``kizu.calibration.strategies.LeaveOwnOut``)
    leaves_own_out: ClassVar[bool] = False

    def __init__(self, *, device: str = "auto", **options: Any):
        self.options = self.make_options(options)
        self.device = device
        #: per-epoch history etc., JSON-able; stored in the model's training summary
        self.history: dict[str, list[float]] = {}

    @classmethod
    def make_options(cls, given: dict[str, Any]) -> Options:
        """The preset's values with ``given`` on top, validated; unknown names are an OptionError."""
        known = [f.name for f in fields(cls.Options)]
        unknown = [k for k in given if k not in known]
        if unknown:
            raise OptionError(f"detector {cls.name!r} has no option {', '.join(map(repr, unknown))}; "
                              f"its options: {', '.join(known)}")
        preset = given.get("preset", "default")
        if preset not in cls.presets:
            raise OptionError(f"unknown {cls.name} preset {preset!r}; choose one of {sorted(cls.presets)}")
        return cls.Options(**{**cls.presets[preset], **given})

    @property
    def params(self) -> dict[str, Any]:
        """The options as a dict (a copy)."""
        return asdict(self.options)

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
        """JSON-able hyper-parameters; ``from_config(config())`` rebuilds the unfitted detector."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.options).items()}

    @classmethod
    def from_config(cls, config: dict[str, Any], device: str = "auto") -> "Detector":
        return cls(device=device, **config)

    @classmethod
    def option_help(cls, preset: str = "default") -> list[tuple[str, Any, str]]:
        """``(name, value in preset, one-line help)`` of every option."""
        values = asdict(cls.make_options({"preset": preset}))
        return [(f.name, values[f.name], f.metadata.get("help", "")) for f in fields(cls.Options)]

    def to(self, device: str) -> "Detector":
        """Move to a compute device; detectors without torch parts ignore it."""
        self.device = device
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"
