"""Measuring a model on a labelled test set: metrics (``metrics``), figures (``plots``), the
self-contained report (``report``) and the whole evaluation (``run``: ``evaluate``). Names load on
first use: drawing an overlay (``plots``) needs matplotlib only, not the metrics' SciPy and
scikit-learn."""

from .._lazy import lazy_exports

_NAMES = {"Evaluation": ".run", "evaluate": ".run", "write_outputs": ".run"}
__getattr__ = lazy_exports(__name__, _NAMES)
__all__ = sorted(_NAMES)
