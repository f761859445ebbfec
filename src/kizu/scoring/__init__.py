"""How detector maps become image scores and display maps: the score rule, the score reference and
the golden template (ordered score terms, ``terms``), and defect regions on a map."""

from .reference import ReferenceTerm, ScoreReference
from .rule import RuleTerm, ScoreRule
from .template import GoldenTemplate, TemplateTerm
from .terms import HeldOut, Scored, ScoreTerm, apply_terms

__all__ = ["GoldenTemplate", "HeldOut", "ReferenceTerm", "RuleTerm", "ScoreReference", "ScoreRule", "ScoreTerm",
           "Scored", "TemplateTerm", "apply_terms"]
