"""Evaluation building blocks for ``rrg_trl.evaluate``: generation, scoring (shared with the reward), outputs."""

from rrg_trl.evaluation.hypotheses import EvalSample, samples_from_jsonl
from rrg_trl.evaluation.scoring import EvalScores, score_reports
from rrg_trl.evaluation.table import TABLE_KEYS, TABLE_METRICS, MetricSpec, render_markdown

__all__ = [
    "TABLE_KEYS",
    "TABLE_METRICS",
    "EvalSample",
    "EvalScores",
    "MetricSpec",
    "render_markdown",
    "samples_from_jsonl",
    "score_reports",
]
