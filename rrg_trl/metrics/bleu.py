"""BLEU-1..n exactly as pycocoevalcap's ``Bleu`` computes it, the scorer behind the R2Gen family's tables.

Kept deliberately unlike sacrebleu/NLTK so numbers compare with published ones:
- tokens are ``str.split()`` (any whitespace run), case is kept, no punctuation handling;
- the brevity penalty uses the reference length closest to the hypothesis (ties: the shorter one);
- precisions are ``(matches + 1e-15) / (candidates + 1e-9)``, so a zero match count gives a tiny but
  non-zero precision instead of a smoothing constant;
- the corpus score pools clipped matches, candidate counts and lengths over all samples (not a mean of
  the per-sample scores).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from rrg_trl.metrics.inputs import Scores, check_pairs

_TINY = 1e-15  # added to match counts: a hypothesis with no match still gets a finite log
_SMALL = 1e-9  # added to denominators: an empty hypothesis divides by a non-zero number


def ngram_counts(tokens: Sequence[str], max_n: int) -> Counter[tuple[str, ...]]:
    """Counts of every 1..max_n-gram of ``tokens``."""
    counts: Counter[tuple[str, ...]] = Counter()
    for k in range(1, max_n + 1):
        for i in range(len(tokens) - k + 1):
            counts[tuple(tokens[i : i + k])] += 1
    return counts


class _Stats:
    """Sufficient statistics of one sample: lengths, clipped matches and candidate n-grams per order."""

    __slots__ = ("correct", "guess", "reflen", "testlen")

    def __init__(self, hypothesis: str, references: list[str], max_n: int):
        max_ref_counts: dict[tuple[str, ...], int] = {}
        ref_lens = []
        for ref in references:
            tokens = ref.split()
            ref_lens.append(len(tokens))
            for gram, count in ngram_counts(tokens, max_n).items():
                if count > max_ref_counts.get(gram, 0):
                    max_ref_counts[gram] = count
        tokens = hypothesis.split()
        self.testlen = len(tokens)
        self.reflen = min((abs(length - self.testlen), length) for length in ref_lens)[1]
        self.guess = [max(0, self.testlen - k + 1) for k in range(1, max_n + 1)]
        self.correct = [0] * max_n
        for gram, count in ngram_counts(tokens, max_n).items():
            self.correct[len(gram) - 1] += min(max_ref_counts.get(gram, 0), count)


def _bleu_from_counts(correct: list[int], guess: list[int], testlen: int, reflen: int) -> list[float]:
    """BLEU-1..n: the k-th score is the geometric mean of the first k precisions times the brevity penalty."""
    scores = []
    product = 1.0
    for k, (c, g) in enumerate(zip(correct, guess, strict=True)):
        product *= (c + _TINY) / (g + _SMALL)
        scores.append(product ** (1.0 / (k + 1)))
    ratio = (testlen + _TINY) / (reflen + _SMALL)
    if ratio < 1:
        penalty = math.exp(1 - 1 / ratio)
        scores = [s * penalty for s in scores]
    return scores


def bleu(
    hypotheses: Sequence[str], references: Sequence[str | Sequence[str]], max_n: int = 4
) -> list[Scores]:
    """BLEU-1..``max_n``: element ``k-1`` holds the corpus BLEU-k and the per-sample BLEU-k values.

    ``references[i]`` is one string or a list of strings (multiple references for sample i).
    """
    if max_n < 1:
        raise ValueError(f"max_n must be >= 1, got {max_n}")
    hyps, refs = check_pairs(hypotheses, references)
    stats = [_Stats(h, r, max_n) for h, r in zip(hyps, refs, strict=True)]
    per_sample = [_bleu_from_counts(s.correct, s.guess, s.testlen, s.reflen) for s in stats]
    corpus = _bleu_from_counts(
        [sum(s.correct[k] for s in stats) for k in range(max_n)],
        [sum(s.guess[k] for s in stats) for k in range(max_n)],
        sum(s.testlen for s in stats),
        sum(s.reflen for s in stats),
    )
    return [Scores(corpus[k], [row[k] for row in per_sample]) for k in range(max_n)]
