"""Degeneracy figures of a set of generated reports: repetition inside a report, sameness across reports.

One word splitter and one repeated-n-gram fraction serve both the evaluation's figures and GRPO's repetition
guard (:mod:`rrg_trl.reward_guards`), so what the guard penalises during RL is what the table measures.

- ``distinct_1`` / ``distinct_2``: distinct word uni/bigrams over all reports / all uni/bigrams (Li et al.,
  2016): low when reports repeat themselves or each other;
- ``repeated_trigram_fraction``: per report, the share of its word trigrams that repeat an earlier one,
  averaged over the reports;
- ``identical_report_share``: the share of studies whose report is character-for-character another
  study's report (1.0 when every study got the same text: a policy that ignores its image).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

_WORD = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?")
DEGENERACY_KEYS = ("distinct_1", "distinct_2", "repeated_trigram_fraction", "identical_report_share")


def report_words(text: str) -> list[str]:
    """Lower-cased words of ``text`` (punctuation dropped): the unit every figure here counts."""
    return [w.lower() for w in _WORD.findall(text)]


def repeat_fraction(words: Sequence[str], n: int) -> float:
    """Share of word n-grams that repeat an earlier one (0 for fewer than two n-grams)."""
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    if len(grams) < 2:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def repeated_trigram_fraction(text: str) -> float:
    return repeat_fraction(report_words(text), 3)


def distinct_n(reports: Sequence[str], n: int) -> float | None:
    """Distinct word n-grams over all reports / all n-grams (None when no report has an n-gram)."""
    grams = [tuple(w[i : i + n]) for w in map(report_words, reports) for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else None


def identical_flags(reports: Sequence[str]) -> list[bool]:
    """Per study: whether another study received exactly the same report."""
    counts = Counter(r.strip() for r in reports)
    return [counts[r.strip()] > 1 for r in reports]


def degeneracy(reports: Sequence[str]) -> dict[str, float | int | None]:
    """The corpus figures of :data:`DEGENERACY_KEYS`, plus ``distinct_reports`` (a count)."""
    if not reports:
        raise ValueError("degeneracy figures need at least one report")
    flags = identical_flags(reports)
    return {
        "distinct_1": distinct_n(reports, 1),
        "distinct_2": distinct_n(reports, 2),
        "repeated_trigram_fraction": sum(map(repeated_trigram_fraction, reports)) / len(reports),
        "identical_report_share": sum(flags) / len(flags),
        "distinct_reports": len({r.strip() for r in reports}),
    }
