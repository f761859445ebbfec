"""Golden-template comparison: the registered mean of the good images, for parts in a fixture.

When every good image shows the same part in the same place (a fixture, small shifts), the mean of
the good images, each shifted onto it, predicts a new image pixel by pixel up to a brightness
factor. A faint, wide stain that the patch detectors place among good patches (it looks like
surface somewhere else on the part) still departs from that prediction where it lies.

``GoldenTemplate`` (pure arrays in, arrays out):

* grey images ``(N, H, W)`` (colour is averaged; larger than ``TEMPLATE_MAX_SIDE`` px, block-averaged by
  an integer factor to at most that), registered onto the template by phase correlation (sub-pixel
  shift), blurred with a Gaussian of ``sigma`` px;
* residual = image − g · mean, with g the least-squares brightness factor of that image;
* standardised by each pixel's spread over the good images (plus a floor of 1 % of the mean
  brightness); an image's score is its largest departure either way.

``MapTerm`` adds the size of the departures, moved back into each image's frame, to a model's
display map (the smoothed detector map that regions, overlays and ``--maps`` show), in units of
held-out good images' pixels, so a stain the template finds is shown where it is.

``TemplateTerm`` puts both into a model (``InspectionModel``, ``template=``; ``apply``): with the
``max+mean`` score, the image score's max part is taken on the joined map; with other rules (and
in a term without a map part) the template's score joins the image score as a soft maximum
of the two standardised scores. Every statistic comes from good images that neither the template
nor the detector saw, and each of those images' own score uses the *others'* statistics
(``own_combined``, ``MapTerm.fit``), so calibration scores stay exchangeable with new images'.

It is worth it only where the template explains the good images almost completely:
``explained_variance`` (R² of held-out good images) must reach ``MIN_EXPLAINED`` for the automatic
choice to turn it on (``bench/template_gate.py`` measures R² on the built-in tasks; parts in a
fixture reach it, textures and photographs do not).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from ..errors import KizuError
from ..ops.maps import gaussian_filter, map_peaks
from ..ops.registration import phase_cross_correlation, shift_linear
from ..ops.resize import resize_maps
from .terms import HeldOut, Scored, ScoreTerm

#: held-out good images must be explained to at least this R² for ``template=auto`` to turn it on
MIN_EXPLAINED = 0.99
#: at least this many held-out good images to estimate the term's statistics from
MIN_HELD_OUT = 8
#: floor of the per-pixel spread, as a share of the template's mean brightness
SPREAD_FLOOR = 0.01
#: weight of the template's departure map beside the detector's display map, both in units of
#: their held-out good pixels' spread
MAP_WEIGHT = 0.5
#: floor of the spreads of departures (held-out maps' pixels and image scores, in units of the good
#: pixels' spread): noise-free good images (identical renders) depart from the template by ~0, and
#: dividing by that spread would give a small defect an astronomical score. Real good images'
#: spreads are several times larger.
DEPARTURE_SD_FLOOR = 0.1
#: larger images are block-averaged to at most this many px a side (a wide stain survives; the
#: registrations of a large training set stay cheap)
TEMPLATE_MAX_SIDE = 128


def default_sigma(h: int, w: int) -> float:
    """Blur in px: 2 px at 64 px (a faint stain's scale in ``synth fine``), scaled with size, >= 1."""
    return max(1.0, min(h, w) / 32.0)


def reduction(h: int, w: int) -> int:
    """The integer block size that brings ``(h, w)`` to at most ``TEMPLATE_MAX_SIDE`` px a side (never below
    1 px: a thin strip keeps its short side)."""
    return max(1, min(-(-max(h, w) // TEMPLATE_MAX_SIDE), h, w))


def grey(images: np.ndarray, factor: int = 1, chunk: int = 64) -> np.ndarray:
    """``(N, C, H, W)`` or ``(N, H, W)`` → ``(N, H // factor, W // factor)`` float64: the channel
    mean, averaged over ``factor``-px blocks (a remainder at the bottom and right is dropped).
    Works ``chunk`` images at a time, so a large set is never copied whole."""
    n = len(images)
    shape = np.shape(images)[-2:]
    h, w = shape[0] // factor, shape[1] // factor
    out = np.empty((n, h, w))
    for i in range(0, n, chunk):
        x = np.asarray(images[i : i + chunk], dtype=np.float32)
        g = x.mean(axis=1) if x.ndim == 4 else x
        if factor > 1:
            g = g[:, : h * factor, : w * factor].reshape(len(g), h, factor, w, factor).mean(axis=(2, 4))
        out[i : i + chunk] = g
    return out


def register_images(images: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``(N, H, W)`` shifted (sub-pixel, bilinear, edges extended) onto ``reference`` ``(H, W)``."""
    return _register(images, reference)[0]


def _register(images: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``register_images`` and the ``(N, 2)`` shifts (px, rows then columns) that it applied."""
    out, shifts = np.empty_like(images), np.zeros((len(images), 2))
    flat_reference = np.ptp(reference) == 0
    for i, im in enumerate(images):
        if flat_reference or np.ptp(im) == 0:  # nothing to align
            out[i] = im
            continue
        shifts[i] = phase_cross_correlation(reference, im, upsample_factor=10)
        out[i] = shift_linear(im, shifts[i])
    return out, shifts


@dataclass(frozen=True)
class GoldenTemplate:
    """``reference`` (registration target), ``mean`` (blurred mean image) and ``spread``, all ``(h, w)``
    (the images' size divided by ``factor``)."""

    reference: np.ndarray
    mean: np.ndarray
    spread: np.ndarray
    sigma: float
    factor: int = 1

    @classmethod
    def fit(cls, images: np.ndarray, sigma: float | None = None) -> "GoldenTemplate":
        """From good images ``(N, C, H, W)`` (N >= 2)."""
        factor = reduction(*np.shape(images)[-2:])
        return cls.fit_grey(grey(images, factor), factor, sigma)

    @classmethod
    def fit_grey(cls, g: np.ndarray, factor: int, sigma: float | None = None) -> "GoldenTemplate":
        """From good images already through ``grey(images, factor)``: ``(N, h, w)``."""
        if len(g) < 2:
            raise ValueError(f"a golden template needs at least 2 good images, not {len(g)}")
        sigma = default_sigma(*g.shape[1:]) if sigma is None else float(sigma)
        reference = g.mean(axis=0)
        for _ in range(2):  # onto the plain mean, then onto the mean of the registered images
            reference = register_images(g, reference).mean(axis=0)
        blurred = _blur(register_images(g, reference), sigma)
        mean = blurred.mean(axis=0)
        spread = _residuals(blurred, mean).std(axis=0) + SPREAD_FLOOR * max(float(mean.mean()), 1e-6)
        return cls(reference, mean, spread, sigma, factor)

    def _blurred(self, images: np.ndarray, is_grey: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Registered, blurred grey images ``(N, h, w)`` and the ``(N, 2)`` shifts applied."""
        g = images if is_grey else grey(images, self.factor)
        if g.shape[1:] != self.mean.shape:
            raise ValueError(f"template is {self.mean.shape} (images / {self.factor}), images give {g.shape[1:]}")
        registered, shifts = _register(g, self.reference)
        return _blur(registered, self.sigma), shifts

    def departures(self, images: np.ndarray, is_grey: bool = False) -> np.ndarray:
        """``(N, h, w)``: each pixel's departure from the template in units of the good images'
        spread, in the template's frame (``is_grey``: ``images`` are already ``grey(images, factor)``)."""
        return _residuals(self._blurred(images, is_grey)[0], self.mean) / self.spread

    def scores(self, images: np.ndarray, is_grey: bool = False) -> np.ndarray:
        """``(N,)`` largest departure either way (darker or brighter)."""
        return map_peaks(np.abs(self.departures(images, is_grey)))

    def scores_and_maps(self, images: np.ndarray, is_grey: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``scores`` and ``(N, h, w)`` float32 maps of the size of each departure (either way),
        shifted back into each image's own frame (still at ``1 / factor`` of its resolution)."""
        blurred, shifts = self._blurred(images, is_grey)
        z = _residuals(blurred, self.mean) / self.spread
        maps = np.stack([shift_linear(np.abs(zi), -si) for zi, si in zip(z, shifts)]) \
            if len(z) else np.zeros((0, *self.mean.shape))
        return map_peaks(np.abs(z)), maps.astype(np.float32)

    def explained_variance(self, images: np.ndarray, is_grey: bool = False) -> np.ndarray:
        """``(N,)`` R²: share of each image's (blurred) pixel variance that the template explains."""
        b = self._blurred(images, is_grey)[0]
        total = ((b - b.mean(axis=(1, 2), keepdims=True)) ** 2).sum(axis=(1, 2))
        return 1.0 - (_residuals(b, self.mean) ** 2).sum(axis=(1, 2)) / np.maximum(total, 1e-12)

    def state_dict(self) -> dict[str, np.ndarray]:
        """float64 arrays, so a saved and loaded model gives exactly the same scores."""
        return {"reference": self.reference, "mean": self.mean, "spread": self.spread}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray], sigma: float, factor: int = 1) -> "GoldenTemplate":
        arrays = [np.asarray(state[k], dtype=np.float64) for k in ("reference", "mean", "spread")]
        if arrays[0].ndim != 2 or any(a.shape != arrays[0].shape for a in arrays) or not np.all(arrays[2] > 0) \
                or not all(np.isfinite(a).all() for a in arrays):
            raise ValueError("template arrays do not fit together (shapes, finite values, spread > 0)")
        if not (np.isfinite(sigma) and sigma > 0) or int(factor) != factor or factor < 1:
            raise ValueError(f"template sigma must be > 0 and factor a positive integer, not {sigma}, {factor}")
        return cls(*arrays, float(sigma), int(factor))


def _blur(g: np.ndarray, sigma: float) -> np.ndarray:
    return gaussian_filter(np.asarray(g, dtype=np.float64), sigma)


def _residuals(blurred: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """``(N, H, W)`` image − g · mean, g the least-squares brightness factor of each image."""
    gain = (blurred * mean).sum(axis=(1, 2)) / max(float((mean * mean).sum()), 1e-12)
    return blurred - gain[:, None, None] * mean


#: a split of good images: a template fitted on ``fit`` (index array) scores ``held``
Split = tuple[np.ndarray, np.ndarray]


def held_out_fit(images: np.ndarray, splits: Iterable[Split], stop_below: float | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``(N,)`` template scores and R² of each of ``images`` ``(N, C, H, W)`` from templates fitted on
    the other images of each split (``(fit, held)`` index pairs, e.g. cross-calibration folds).
    With ``stop_below``, the splits after one whose median R² is below it are skipped (NaN there):
    the template does not explain these images, and the other splits' work would be wasted."""
    factor = reduction(*np.shape(images)[-2:])
    return held_out_fit_grey(grey(images, factor), factor, splits, stop_below, maps=False)[:2]


def held_out_fit_grey(g: np.ndarray, factor: int, splits: Iterable[Split], stop_below: float | None = None,
                      maps: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``held_out_fit`` on images already through ``grey(images, factor)``, with (``maps``) the
    held-out images' departure maps too (``GoldenTemplate.scores_and_maps``; NaN where not scored)."""
    scores, explained = np.full(len(g), np.nan), np.full(len(g), np.nan)
    out_maps = np.full(g.shape, np.nan, dtype=np.float32) if maps else None
    for rest, held in splits:
        tpl = GoldenTemplate.fit_grey(g[rest], factor)
        if out_maps is None:
            scores[held] = tpl.scores(g[held], is_grey=True)
        else:
            scores[held], out_maps[held] = tpl.scores_and_maps(g[held], is_grey=True)
        explained[held] = tpl.explained_variance(g[held], is_grey=True)
        if stop_below is not None and np.median(explained[held]) < stop_below:
            break
    return scores, explained, out_maps


def template_to_display(template_maps: np.ndarray, size: tuple[int, int], factor: int = 1) -> np.ndarray:
    """``(N, h, w)`` maps at ``1 / factor`` resolution → ``(N, *size)`` float32: bilinear over the
    ``(h · factor, w · factor)`` pixels that ``grey``'s blocks averaged, then the last row and column
    repeated over the remainder it dropped (``factor`` 1: resized to ``size``)."""
    t = np.asarray(template_maps, dtype=np.float32)
    size = tuple(int(v) for v in size)
    inner = size if factor == 1 else (min(t.shape[1] * factor, size[0]), min(t.shape[2] * factor, size[1]))
    t = resize_maps(t, inner)
    if inner != size:
        t = np.pad(t, ((0, 0), (0, size[0] - inner[0]), (0, size[1] - inner[1])), mode="edge")
    return t


@dataclass(frozen=True)
class MapTerm:
    """The template's departure maps ``t`` added to a model's display maps ``d``:
    ``d + scale · weight · rel_sd · (t − t_mean) / t_sd``. ``scale`` is the model's own scale of
    ``d`` (``InspectionModel._map_scale``: the ``max+mean`` rule's mean peak of good images where
    the image score is that rule's, else 1), so models fitted on more or fewer images (the final
    model, the cross-calibration folds) add the template alike; ``rel_sd`` is the spread of
    ``d / scale`` and ``t_mean``, ``t_sd`` those of ``t``, over held-out good images' pixels
    (``t_sd`` at least ``DEPARTURE_SD_FLOOR``). Template maps come at ``1 / factor`` resolution in each image's
    frame (``GoldenTemplate.scores_and_maps``) and are upsampled (bilinear) over the pixels their
    blocks averaged, the edge repeated over any remainder (``template_to_display``)."""

    t_mean: float
    t_sd: float
    rel_sd: float
    weight: float = MAP_WEIGHT

    @classmethod
    def fit(cls, display: np.ndarray, template_maps: np.ndarray, scales: np.ndarray, factor: int = 1,
            weight: float = MAP_WEIGHT) -> tuple["MapTerm", np.ndarray]:
        """From held-out good images' display maps ``(N, H, W)``, template maps ``(N, h, w)`` and
        the scales ``(N,)`` of the models that made the display maps (N >= 3): the term, and each
        image's own combined display map's peak ``(N,)`` with the statistics of the *other* images
        (exchangeable with a new image's peak, as in ``TemplateTerm.own_combined``)."""
        n = len(display)
        if n < 3 or len(template_maps) != n or len(scales) != n:
            raise ValueError(f"need >= 3 held-out images with both maps and a scale, got {n}, "
                             f"{len(template_maps)} and {len(scales)}")
        size = display.shape[1:]
        pixels = float(np.prod(size))
        sums = np.zeros((4, n))  # per image: sum and sum of squares of d / scale, then of t
        for i in range(n):
            d = display[i].astype(np.float64) / scales[i]
            t = template_to_display(template_maps[i:i + 1], size, factor)[0].astype(np.float64)
            sums[:, i] = d.sum(), (d * d).sum(), t.sum(), (t * t).sum()

        def stats(total: np.ndarray, count: float, floor: float = 1e-12) -> tuple[np.ndarray, np.ndarray]:
            mean = total[0] / count
            return mean, np.maximum(np.sqrt(np.maximum(total[1] / count - mean * mean, 0.0)) + 1e-12, floor)

        rel_sd = stats(sums[:2].sum(axis=1), n * pixels)[1]
        t_mean, t_sd = stats(sums[2:].sum(axis=1), n * pixels, DEPARTURE_SD_FLOOR)
        term = cls(float(t_mean), float(t_sd), float(rel_sd), float(weight))
        others = sums.sum(axis=1, keepdims=True) - sums
        rel_sd_o = stats(others[:2], (n - 1) * pixels)[1]
        t_mean_o, t_sd_o = stats(others[2:], (n - 1) * pixels, DEPARTURE_SD_FLOOR)
        peaks = np.array([float(cls(t_mean_o[i], t_sd_o[i], rel_sd_o[i], weight).combine(
            display[i:i + 1], template_maps[i:i + 1], float(scales[i]), factor).max()) for i in range(n)])
        return term, peaks

    def combine(self, display: np.ndarray, template_maps: np.ndarray, scale: float = 1.0, factor: int = 1
                ) -> np.ndarray:
        """``(N, H, W)`` display maps and ``(N, h, w)`` template maps → ``(N, H, W)`` float32."""
        t = template_to_display(template_maps, display.shape[1:], factor)
        gain = scale * self.weight * self.rel_sd / self.t_sd
        return (display + gain * (t - self.t_mean)).astype(np.float32)

    def to_json(self) -> dict:
        return {"t_mean": self.t_mean, "t_sd": self.t_sd, "rel_sd": self.rel_sd, "weight": self.weight}

    @classmethod
    def from_json(cls, data: dict) -> "MapTerm":
        keys = ("t_mean", "t_sd", "rel_sd", "weight")
        values = [data.get(k) if isinstance(data, dict) else None for k in keys]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise ValueError(f"invalid template map term: {keys} must be numbers, not {data!r}")
        t_mean, t_sd, rel_sd, weight = (float(v) for v in values)
        with np.errstate(over="ignore", divide="ignore"):  # spreads are >= 1e-12 as fitted
            gain = np.float32(weight * rel_sd / t_sd) if t_sd >= 1e-12 else np.inf
        if not (np.isfinite([t_mean, t_sd, rel_sd, weight, gain]).all() and rel_sd >= 1e-12 and weight >= 0):
            raise ValueError(f"invalid template map term ({dict(zip(keys, values))})")
        return cls(t_mean, t_sd, rel_sd, weight)


@dataclass(frozen=True)
class HeldOutTemplate:
    """The golden template of the fitted images (None: off), the held-out images' median R² (None:
    not measured), and the calibration images' template scores ``(N,)`` and departure maps
    ``(N, h, w)`` from templates that did not see them."""

    template: GoldenTemplate | None
    explained: float | None
    scores: np.ndarray
    maps: np.ndarray

    OFF: ClassVar["HeldOutTemplate"]


HeldOutTemplate.OFF = HeldOutTemplate(None, None, np.zeros(0), np.zeros((0, 0, 0)))


def held_out_template(images: np.ndarray, side_fits: list[Split], final_fit: np.ndarray, final_held: np.ndarray,
                      forced: bool) -> HeldOutTemplate:
    """The golden template of ``images[final_fit]`` and the calibration images' held-out comparisons:
    from templates of the ``side_fits`` (cross-calibration folds, each ``(fit, held)``) or, without
    them, from the final template (hold-out calibration of ``final_held``). Unless ``forced``, off
    where the held-out images' median R² is below ``MIN_EXPLAINED`` — with folds, in any fold (the
    folds after the first such fold are not computed)."""
    n_held = len(images) if side_fits else len(final_held)
    if n_held < MIN_HELD_OUT:
        if forced:
            raise KizuError(f"the golden template needs at least {MIN_HELD_OUT} calibration images, not {n_held}")
        return HeldOutTemplate.OFF
    factor = reduction(*images.shape[-2:])
    g = grey(images, factor)  # once, small: (N, h, w) at most TEMPLATE_MAX_SIDE px a side
    if side_fits:
        t_cal, r2, t_maps = held_out_fit_grey(g, factor, side_fits, stop_below=None if forced else MIN_EXPLAINED)
        explained = float(np.nanmedian(r2))
        worst_fold = min(float(np.median(r2[held])) if not np.isnan(r2[held]).all() else -np.inf
                         for _, held in side_fits)
        template = GoldenTemplate.fit_grey(g, factor) if forced or worst_fold >= MIN_EXPLAINED else None
    else:
        template = GoldenTemplate.fit_grey(g[final_fit], factor)
        t_cal, t_maps = template.scores_and_maps(g[final_held], is_grey=True)
        explained = float(np.median(template.explained_variance(g[final_held], is_grey=True)))
        template = template if forced or explained >= MIN_EXPLAINED else None
    return HeldOutTemplate(template, explained, t_cal, t_maps)


@dataclass(frozen=True)
class TemplateTerm(ScoreTerm):
    """The ``GoldenTemplate`` as a score term (``apply``): its ``MapTerm`` (``map``) and, where the
    image score is not the display map's ``max+mean`` (or ``map`` is None), the soft maximum of the
    model's image score and the template's score, both standardised, back in the units of the
    model's score: ``mean_s + sd_s · log(exp(z_s) + exp(z_t))`` (``combine``). Where both rise a
    little (a faint stain) it adds them; where only one rises (a small spot the template blurs
    away) that one decides, so a strong cue is not diluted by the other's noise."""

    template: GoldenTemplate
    mean: float  # of held-out good images' template scores
    sd: float  # their standard deviation (at least DEPARTURE_SD_FLOOR)
    score_mean: float  # of held-out good images' own image scores
    score_sd: float  # their standard deviation
    explained: float  # median R² of the held-out good images
    map: MapTerm | None = None  # None: display maps are the detector's alone
    kind = "template"

    @classmethod
    def fit(cls, held: HeldOut, held_template: HeldOutTemplate) -> tuple["TemplateTerm", HeldOut]:
        """From the calibration images as scored so far (``held``, display maps kept) and their
        held-out template comparisons: the term, and the images' scores and display-map peaks as new
        images would get them, each with the statistics of the *other* images (``own_combined``,
        ``MapTerm.fit``) so they stay exchangeable with new images'."""
        tpl = held_template
        map_term, joined_peaks = MapTerm.fit(held.display, tpl.maps, held.scales, tpl.template.factor)
        term = replace(cls.fit_statistics(tpl.template, tpl.scores, held.scores, tpl.explained), map=map_term)
        if held.peak_scaled:
            scores = held.scores + (joined_peaks - held.peaks) / held.scales
        else:
            scores = cls.own_combined(held.scores, tpl.scores)
        return term, replace(held, scores=scores, peaks=joined_peaks, display=None)

    @classmethod
    def fit_statistics(cls, template: GoldenTemplate, held_out_template_scores: np.ndarray,
                       held_out_scores: np.ndarray, explained: float) -> "TemplateTerm":
        """The term without a map part, from held-out good images' template and image scores."""
        t = np.asarray(held_out_template_scores, dtype=np.float64)
        s = np.asarray(held_out_scores, dtype=np.float64)
        if len(t) < 2 or t.shape != s.shape:
            raise ValueError(f"need >= 2 held-out images with both scores, got {t.shape} and {s.shape}")
        return cls(template, float(t.mean()), float(max(t.std(), DEPARTURE_SD_FLOOR)), float(s.mean()),
                   float(max(s.std(), 1e-12)), float(explained))

    def combine(self, scores: np.ndarray, template_scores: np.ndarray) -> np.ndarray:
        """``(N,)`` image scores and ``(N,)`` template scores → ``(N,)`` combined scores."""
        z_s = (np.asarray(scores, dtype=np.float64) - self.score_mean) / self.score_sd
        z_t = (np.asarray(template_scores, dtype=np.float64) - self.mean) / self.sd
        return self.score_mean + self.score_sd * np.logaddexp(z_s, z_t)

    def apply(self, scored: Scored, images: np.ndarray) -> Scored:
        """The batch's scores and display maps with the template.

        With a ``MapTerm`` the template's departures join the display maps; where the score rule
        has a peak scale (``max+mean``: its max part is the display map's peak / ``peak_scale``)
        the score gains ``(peak(joined) − peak(display)) / peak_scale`` — its max part taken on the
        joined map — so the score and the map show the same departures. Otherwise (and in models
        saved without a map term) the image score is the soft maximum of ``combine``."""
        if self.map is None:
            return replace(scored, scores=self.combine(scored.scores, self.template.scores(images)))
        template_scores, template_maps = self.template.scores_and_maps(images)
        joined = self.map.combine(scored.display, template_maps, scored.map_scale, self.template.factor)
        if scored.peak_scale is None:
            return replace(scored, scores=self.combine(scored.scores, template_scores), display=joined)
        gain = (map_peaks(joined) - map_peaks(scored.display)) / scored.peak_scale
        return replace(scored, scores=np.asarray(scored.scores, dtype=np.float64) + gain, display=joined)

    @staticmethod
    def own_combined(scores: np.ndarray, template_scores: np.ndarray) -> np.ndarray:
        """The held-out good images' own combined scores, each standardised by the *other* images'
        statistics — as a new image is standardised by statistics it is not part of, so calibration
        scores stay exchangeable with new images' scores (with statistics that include each image
        itself, a small calibration set's threshold flags more new good images than alpha: tested)."""
        s = np.asarray(scores, dtype=np.float64)
        t = np.asarray(template_scores, dtype=np.float64)
        s_mean, s_sd = _leave_one_out(s)
        t_mean, t_sd = _leave_one_out(t)
        t_sd = np.maximum(t_sd, DEPARTURE_SD_FLOOR)
        return s_mean + s_sd * np.logaddexp((s - s_mean) / s_sd, (t - t_mean) / t_sd)

    def to_json(self) -> dict:
        return {"mean": self.mean, "sd": self.sd, "score_mean": self.score_mean, "score_sd": self.score_sd,
                "explained": self.explained, "sigma": self.template.sigma, "factor": self.template.factor,
                "map": None if self.map is None else self.map.to_json()}

    def arrays(self) -> dict[str, np.ndarray]:
        return self.template.state_dict()

    @staticmethod
    def check_json(data: dict) -> list[float]:
        """The term's numbers from model.json, checked (ValueError / KeyError / TypeError if not)."""
        values = [float(data[k]) for k in ("mean", "sd", "score_mean", "score_sd", "explained", "sigma")]
        factor = data.get("factor", 1)
        if not (np.isfinite(values).all() and values[1] > 0 and values[3] > 0 and values[5] > 0) \
                or not isinstance(factor, int) or factor < 1:
            raise ValueError(f"invalid template term ({values}, factor {factor!r})")
        if data.get("map") is not None:
            MapTerm.from_json(data["map"])
        return values

    @classmethod
    def from_json(cls, data: dict, state: dict[str, np.ndarray]) -> "TemplateTerm":
        mean, sd, score_mean, score_sd, explained, sigma = cls.check_json(data)
        tpl = GoldenTemplate.from_state(state, sigma, data.get("factor", 1))
        map_term = None if data.get("map") is None else MapTerm.from_json(data["map"])
        return cls(tpl, mean, sd, score_mean, score_sd, explained, map_term)


def _leave_one_out(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(N,)`` mean and standard deviation of ``v`` without each element (N >= 3)."""
    n = len(v)
    mean = (v.sum() - v) / (n - 1)
    var = ((v * v).sum() - v * v) / (n - 1) - mean * mean
    return mean, np.sqrt(np.maximum(var, 0.0)) + 1e-12
