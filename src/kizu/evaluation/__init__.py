"""Measuring a model on a labelled test set: metrics (``metrics``), figures (``plots``), the
self-contained report (``report``) and the whole evaluation (``evaluate``)."""

from .evaluate import Evaluation, evaluate, write_outputs

__all__ = ["Evaluation", "evaluate", "write_outputs"]
