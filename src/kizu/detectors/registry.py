"""Name → detector class. A new detector registers itself here and needs no CLI change."""

from __future__ import annotations

from typing import Any

from ..errors import KizuError, OptionError
from .base import Detector

_REGISTRY: dict[str, type[Detector]] = {}


def register(cls: type[Detector]) -> type[Detector]:
    """Class decorator: make ``cls`` available as ``--detector cls.name``."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"detector name {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def available() -> list[str]:
    return sorted(_REGISTRY)


def detector_class(name: str) -> type[Detector]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KizuError(f"unknown detector {name!r}; available: {', '.join(available())}") from None


def create(name: str, *, device: str = "auto", **options: Any) -> Detector:
    """Build detector ``name`` with hyper-parameters ``options`` on top of its preset (unknown ones
    and bad values are one clear OptionError)."""
    cls = detector_class(name)
    try:
        return cls(device=device, **options)
    except OptionError:  # already one clear line
        raise
    except (TypeError, ValueError) as err:  # e.g. int("abc") deep in a constructor: say which detector
        given = ", ".join(f"{k}={v!r}" for k, v in options.items())
        raise OptionError(f"detector {name!r}: bad option value ({err}); given: {given}") from None
