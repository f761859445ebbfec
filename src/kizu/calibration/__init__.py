"""Where thresholds are decided: conformal calibration on good images the model did not fit.

``conformal`` (p-values, thresholds, the stored ``Calibration``), ``strategies`` (hold-out and
cross-conformal schemes), ``guarantees`` (what a threshold promises, in plain words), ``rules``
(changing the operating point), ``operating_points`` (label-based thresholds), ``drift``.
"""

from .conformal import Calibration, conformal_p_values, conformal_threshold
from .strategies import CrossConformal, HoldOut, LeaveOwnOut, choose_strategy

__all__ = ["Calibration", "CrossConformal", "HoldOut", "LeaveOwnOut", "choose_strategy", "conformal_p_values",
           "conformal_threshold"]
