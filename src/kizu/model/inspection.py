"""``InspectionModel``: the one path every score takes.

    images ──► Preprocessor ──► runtime.maps ──► score terms ──► calibration ──► Prediction
     (C, H, W)   (N, C, h, w)     (N, h, w)       rule, reference,   p-values,
     arrays                                       template           threshold

Every entry point (Python API, CLI, service, the exported-model check) goes through ``predict``;
``verdicts`` (``kizu.model.prediction``) then resizes maps and finds regions at the edge.
Build a model with ``kizu.fit_model``; save and load it with ``kizu.save_model`` / ``kizu.load_model``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..calibration.conformal import Calibration
from ..errors import KizuError
from ..runtime.base import Runtime
from ..scoring.reference import ReferenceTerm
from ..scoring.rule import RuleTerm
from ..scoring.template import TemplateTerm
from ..scoring.terms import Scored, ScoreTerm, apply_terms
from .config import TrainConfig
from .prediction import Prediction, Verdict, verdicts
from .preprocess import Preprocessor


class InspectionModel:
    """A trained, calibrated inspection model.

    ``preprocessor`` (what every image goes through), ``runtime`` (the tensor part: detector maps),
    ``terms`` (score terms, the score rule first), ``calibration`` (scores of held-out good images
    and the threshold), ``detector_name``/``detector_config`` (what the runtime runs), ``summary``
    (the training run), ``config`` (how it was trained) and ``check_images`` (a few good calibration
    images, ``(K, C, h, w)`` uint8 at the working size, that an export is checked on).
    """

    def __init__(self, preprocessor: Preprocessor, runtime: Runtime, terms: list[ScoreTerm],
                 calibration: Calibration, *, detector_name: str, detector_config: dict[str, Any],
                 summary: dict[str, Any] | None = None, config: TrainConfig | None = None,
                 check_images: np.ndarray | None = None):
        if not terms or not isinstance(terms[0], RuleTerm):
            raise KizuError("a model's score terms must start with the score rule")
        self.preprocessor = preprocessor
        self.runtime = runtime
        self.terms = list(terms)
        self.calibration = calibration
        self.detector_name = detector_name
        self.detector_config = dict(detector_config)
        self.summary = summary or {}
        self.config = config
        self.check_images = check_images

    # -- what the model holds --------------------------------------------------------------
    @property
    def detector(self):
        """The fitted detector object when the runtime runs it in PyTorch (else None)."""
        return getattr(self.runtime, "detector", None)

    @property
    def score_rule(self):
        return self.terms[0].rule

    @property
    def reference(self):
        """The score reference (``kizu.scoring.reference.ScoreReference``), or None."""
        term = self._term(ReferenceTerm)
        return None if term is None else term.reference

    @property
    def template(self) -> TemplateTerm | None:
        """The golden-template term, or None."""
        return self._term(TemplateTerm)

    def _term(self, kind: type) -> Any:
        return next((t for t in self.terms if isinstance(t, kind)), None)

    # -- inference -----------------------------------------------------------------------------
    def score(self, x: np.ndarray) -> Scored:
        """Preprocessed images ``(N, C, h, w)`` → their scores and display maps (``Scored``)."""
        maps, own = self.runtime.maps(x)
        return apply_terms(self.terms, Scored(maps, own), x)

    def predict(self, images: list[np.ndarray] | np.ndarray, paths: list | None = None) -> Prediction:
        """Images (``(C, H, W)`` arrays, or ``(N, C, H, W)`` / ``(N, H, W)``) → a ``Prediction``.
        ``paths`` only name images in errors (a size the model does not take, say)."""
        images = as_image_list(images)
        x = self.preprocessor.apply_all(images, paths)
        scored = self.score(x)
        cal = self.calibration
        shapes = [tuple(a.shape[1:]) for a in images]
        return Prediction(scored.scores, cal.p_values(scored.scores), cal.is_defective(scored.scores),
                          cal.normalized(scored.scores), scored.display, shapes, cal.pixel_threshold,
                          [self.preprocessor.turned(s) for s in shapes])

    def inspect(self, images: list[np.ndarray] | np.ndarray, paths: list | None = None) -> list[Verdict]:
        """``predict`` then one ``Verdict`` per image (map at the image's resolution, regions)."""
        return verdicts(self.predict(images, paths), paths)

    def reconstruct(self, images: list[np.ndarray] | np.ndarray) -> np.ndarray | None:
        """Reconstructions at the working resolution, for detectors that have them."""
        detector = self.detector
        if detector is None:
            return None
        return detector.reconstruct(self.preprocessor.apply_all(as_image_list(images)))

    def with_calibration(self, calibration: Calibration) -> "InspectionModel":
        """This model with another calibration (a new threshold; nothing else changes)."""
        return self.with_runtime(self.runtime, calibration)

    def with_runtime(self, runtime: Runtime, calibration: Calibration | None = None) -> "InspectionModel":
        """This model with another runtime for its tensor part (and calibration, if given)."""
        return InspectionModel(self.preprocessor, runtime, self.terms, calibration or self.calibration,
                               detector_name=self.detector_name, detector_config=self.detector_config,
                               summary=self.summary, config=self.config, check_images=self.check_images)

    def __repr__(self) -> str:
        c = self.calibration
        return (f"InspectionModel({self.detector_name}, size={self.preprocessor.size}, "
                f"channels={self.preprocessor.channels}, score={self.score_rule.reducer}, rule={c.rule}, "
                f"alpha={c.alpha}, threshold={c.threshold:.6g})")


def as_image_list(images) -> list[np.ndarray]:
    """``(N, C, H, W)`` / ``(N, H, W)`` arrays or a list of ``(C, H, W)`` / ``(H, W)`` → a list of
    ``(C, H, W)`` float32 arrays (the one place the model checks what it is given)."""
    if isinstance(images, np.ndarray):
        if images.ndim == 3:
            images = images[:, None]
        if images.ndim != 4:
            raise KizuError(f"images must be (N, C, H, W) or (N, H, W), got shape {images.shape}")
        return [np.asarray(a, dtype=np.float32) for a in images]
    out = []
    for a in images:
        a = np.asarray(a, dtype=np.float32)
        a = a[None] if a.ndim == 2 else a
        if a.ndim != 3 or a.shape[0] not in (1, 3):
            raise KizuError(f"each image must be (C, H, W) with C = 1 or 3, or (H, W), got shape {a.shape}")
        out.append(a)
    return out


