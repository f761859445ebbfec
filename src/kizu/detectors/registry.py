"""Name → detector class. A new detector registers itself here and needs no CLI change."""

from __future__ import annotations

import inspect
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


def create(name: str, **options: Any) -> Detector:
    """Build detector ``name`` with hyper-parameters ``options`` (unknown ones are an error)."""
    cls = detector_class(name)
    sig = inspect.signature(cls.__init__)
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    known = [p for p in sig.parameters if p not in ("self", "params")]
    unknown = [k for k in options if k not in known]
    if unknown and not accepts_any:
        raise KizuError(
            f"detector {name!r} has no option {', '.join(map(repr, unknown))}; its options: {', '.join(known)}"
        )
    try:
        return cls(**options)
    except OptionError:  # already one clear line
        raise
    except (TypeError, ValueError) as err:  # e.g. int("abc") deep in a constructor: say which detector
        given = ", ".join(f"{k}={v!r}" for k, v in options.items())
        raise OptionError(f"detector {name!r}: bad option value ({err}); given: {given}") from None


def options_of(name: str) -> dict[str, Any]:
    """Option name → default value, for help texts."""
    sig = inspect.signature(detector_class(name).__init__)
    return {k: p.default for k, p in sig.parameters.items() if k != "self" and p.kind is p.KEYWORD_ONLY}
