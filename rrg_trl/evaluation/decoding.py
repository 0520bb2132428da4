"""How the evaluated reports were decoded, in words, and the degeneracy block of the table.

Report-generation papers decode with beam search and n-gram blocking (R2Gen and its successors: 3 beams, no
repeated trigram); greedy and sampling stay available. The table states which was used, because a reward or
BLEU figure means little without it, and shows the degeneracy figures (:mod:`rrg_trl.metrics.degeneracy`)
that reveal a policy repeating itself or writing one report for every study.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rrg_trl.evaluation.table import fmt_change, fmt_value
from rrg_trl.metrics.degeneracy import DEGENERACY_KEYS

# (label, higher is better) for each degeneracy figure, in table order.
DEGENERACY_LABELS = {
    "distinct_1": ("distinct-1", True),
    "distinct_2": ("distinct-2", True),
    "repeated_trigram_fraction": ("repeated trigrams per report", False),
    "identical_report_share": ("studies given an identical report", False),
}


@dataclass(frozen=True)
class Decoding:
    """How the evaluated reports are decoded: one object for the evaluation and for whatever must see the same
    text (the decoding guard of RL, :mod:`rrg_trl.decoding_guard`), so the settings are never re-typed."""

    max_new_tokens: int = 128
    do_sample: bool = False
    num_beams: int = 1
    no_repeat_ngram_size: int = 0
    no_repeat_ngram_unit: str = "word"
    temperature: float = 1.0
    top_p: float = 1.0
    repetition_penalty: float = 1.0

    def generate_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`rrg_trl.evaluation.generation.generate_reports`."""
        return dataclasses.asdict(self)

    def describe(self) -> str:
        return describe_decoding(dataclasses.asdict(self), self.max_new_tokens)


def describe_decoding(settings: Mapping[str, Any], max_new_tokens: int) -> str:
    """E.g. ``beam search (3 beams), no repeated 3-gram of words, at most 64 new tokens``."""
    beams = settings.get("num_beams", 1)
    if settings.get("do_sample"):
        text = f"sampling (temperature {settings['temperature']:g}, top-p {settings['top_p']:g})"
        if beams > 1:
            text += f" with {beams} beams"
    else:
        text = f"beam search ({beams} beams)" if beams > 1 else "greedy"
    if settings.get("no_repeat_ngram_size"):
        unit = settings.get("no_repeat_ngram_unit", "word")
        text += f", no repeated {settings['no_repeat_ngram_size']}-gram of {unit}s"
    return f"{text}, at most {max_new_tokens} new tokens"


def degeneracy_lines(
    metrics: Mapping[str, Any], baseline: Mapping[str, Any] | None = None, baseline_name: str = "baseline"
) -> list[str]:
    """A small markdown table of the degeneracy figures (beside the baseline's when given)."""
    header = ["Degeneracy", "this run"] + ([baseline_name, "change"] if baseline is not None else [])
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for key in DEGENERACY_KEYS:
        label, higher_is_better = DEGENERACY_LABELS[key]
        value = metrics.get(key)
        row = [label, fmt_value(value)]
        if baseline is not None:
            base = baseline.get(key)
            row += [fmt_value(base), fmt_change(value, base, higher_is_better)]
        lines.append("| " + " | ".join(row) + " |")
    return lines
