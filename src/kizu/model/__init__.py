"""The trained model: preprocessing (``preprocess``), inference (``inspection``: ``InspectionModel``),
what it returns (``prediction``), how it is trained (``training``: ``fit_model``) and with what
settings (``config``: ``TrainConfig``)."""

from .config import TrainConfig
from .inspection import InspectionModel
from .prediction import Prediction, Verdict, verdicts
from .training import TrainingStep, fit_model

__all__ = ["InspectionModel", "Prediction", "TrainConfig", "TrainingStep", "Verdict", "fit_model", "verdicts"]
