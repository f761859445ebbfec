"""The trained model: preprocessing (``preprocess``), inference (``inspection``: ``InspectionModel``),
what it returns (``prediction``), how it is trained (``training``: ``fit_model``) and with what
settings (``config``: ``TrainConfig``). Names load on first use (inference needs no PyTorch)."""

from .._lazy import lazy_exports

_NAMES = {"InspectionModel": ".inspection", "Prediction": ".prediction", "Verdict": ".prediction",
          "verdicts": ".prediction", "TrainConfig": ".config", "TrainingStep": ".training", "fit_model": ".training"}
__getattr__ = lazy_exports(__name__, _NAMES)
__all__ = sorted(_NAMES)
