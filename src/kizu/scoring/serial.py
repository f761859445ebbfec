"""Score terms from their JSON descriptions and arrays (model.json / bundle.json): one reader for
the model file and the exported bundle."""

from __future__ import annotations

import numpy as np

from .reference import ReferenceTerm
from .rule import RuleTerm
from .template import TemplateTerm
from .terms import ScoreTerm


class TermError(ValueError):
    """A damaged term; ``part`` says whether its description or its arrays are at fault."""

    def __init__(self, part: str, problem: str):
        self.part = part
        super().__init__(problem)


def read_terms(descriptions: list[dict], arrays: dict[str, np.ndarray], size: tuple[int, int]) -> list[ScoreTerm]:
    """The ordered terms of ``descriptions`` (each with its ``kind``); ``arrays``: the terms' arrays
    keyed ``<kind>.<name>``; ``size``: the model's working size (checked against a template)."""
    return [read_term(d, arrays, size) for d in descriptions]


def read_term(data: dict, arrays: dict[str, np.ndarray], size: tuple[int, int]) -> ScoreTerm:
    kind = data.get("kind")
    try:
        if kind == "rule":
            return RuleTerm.from_json(data)
        if kind == "reference":
            return ReferenceTerm.from_json(data)
    except (KeyError, TypeError, ValueError) as err:
        raise TermError("description", f"invalid {kind} term ({type(err).__name__}: {err})") from None
    if kind != "template":
        raise TermError("description", f"unknown score term {kind!r}")
    try:
        TemplateTerm.check_json(data)
    except (KeyError, TypeError, ValueError) as err:
        raise TermError("description", f"incomplete or invalid model description ({type(err).__name__}: {err})") \
            from None
    try:
        term = TemplateTerm.from_json(data, {k.split(".", 1)[1]: v for k, v in arrays.items()
                                             if k.startswith("template.")})
        f = term.template.factor
        if term.template.mean.shape != (size[0] // f, size[1] // f):
            raise ValueError(f"template {term.template.mean.shape} does not fit images of {size} / {f}")
    except (KeyError, TypeError, ValueError) as err:
        raise TermError("arrays", f"damaged golden template ({type(err).__name__}: {err})") from None
    return term


def term_arrays(terms: list[ScoreTerm]) -> dict[str, np.ndarray]:
    """Every term's arrays keyed ``<kind>.<name>`` (what ``read_terms`` takes back)."""
    return {f"{t.kind}.{k}": np.require(v, requirements="C") for t in terms for k, v in t.arrays().items()}
