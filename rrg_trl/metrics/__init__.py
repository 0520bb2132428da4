"""Report-generation metrics with the definitions of the published tables (pycocoevalcap parity)."""

from rrg_trl.metrics.bleu import bleu
from rrg_trl.metrics.cider import cider
from rrg_trl.metrics.inputs import Scores
from rrg_trl.metrics.meteor import Meteor, MeteorError, meteor, meteor_unavailable_reason
from rrg_trl.metrics.nlg import NLG_METRICS, NLGScores, compute_nlg_metrics
from rrg_trl.metrics.rouge import rouge_l

__all__ = [
    "NLG_METRICS",
    "Meteor",
    "MeteorError",
    "NLGScores",
    "Scores",
    "bleu",
    "cider",
    "compute_nlg_metrics",
    "meteor",
    "meteor_unavailable_reason",
    "rouge_l",
]
