"""Validation shared by the NLG metrics: one hypothesis per sample, one or more references per sample."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple


class Scores(NamedTuple):
    """A corpus-level value and the per-sample values it was aggregated from (pycocoevalcap's ``score, scores``)."""

    corpus: float
    per_sample: list[float]


def check_pairs(
    hypotheses: Sequence[str], references: Sequence[str | Sequence[str]]
) -> tuple[list[str], list[list[str]]]:
    """Return ``(hypotheses, references)`` as lists, each reference entry a non-empty list of strings.

    A bare string reference means a single reference. Errors name the offending sample, because a
    silently misaligned pair would corrupt every corpus-level number.
    """
    if isinstance(hypotheses, str) or isinstance(references, str):
        raise ValueError("hypotheses and references must be sequences of strings, not a single string")
    hyps = list(hypotheses)
    refs_in = list(references)
    if len(hyps) != len(refs_in):
        raise ValueError(f"got {len(hyps)} hypotheses but {len(refs_in)} references")
    if not hyps:
        raise ValueError("no samples to score")
    refs: list[list[str]] = []
    for i, (hyp, ref) in enumerate(zip(hyps, refs_in, strict=True)):
        if not isinstance(hyp, str):
            raise ValueError(f"hypothesis {i} is {type(hyp).__name__}, expected str")
        if isinstance(ref, str):
            refs.append([ref])
            continue
        ref_list = list(ref)
        if not ref_list:
            raise ValueError(f"sample {i} has no reference")
        for j, r in enumerate(ref_list):
            if not isinstance(r, str):
                raise ValueError(f"reference {j} of sample {i} is {type(r).__name__}, expected str")
        refs.append(ref_list)
    return hyps, refs
