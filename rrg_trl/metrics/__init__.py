"""Report-generation metrics with the definitions of the published tables (pycocoevalcap's)."""

from rrg_trl.metrics.coco import bleu, cider, rouge_l
from rrg_trl.metrics.inputs import Scores
from rrg_trl.metrics.meteor import Meteor, MeteorError, meteor, meteor_unavailable_reason
from rrg_trl.metrics.nlg import NLG_METRICS, NLGScores, compute_nlg_metrics

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
