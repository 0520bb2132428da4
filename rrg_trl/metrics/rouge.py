"""ROUGE-L exactly as pycocoevalcap's ``Rouge`` computes it (LCS-based F-measure with beta = 1.2).

Quirks kept for comparability with published numbers:
- tokens are ``str.split(" ")``: only the space character separates, and consecutive spaces produce empty
  tokens that take part in the LCS (an empty hypothesis is one empty token, so never a division by zero);
- with several references, the best precision and the best recall are taken independently (they may
  come from different references) before the F-measure;
- the corpus score is the mean of the per-sample scores.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rrg_trl.metrics.inputs import Scores, check_pairs

BETA = 1.2


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token lists (O(len(a)·len(b)) time, O(len(b)) memory)."""
    if len(a) < len(b):
        a, b = b, a
    row = [0] * (len(b) + 1)
    for x in a:
        diagonal = 0  # row[j-1] of the previous row
        for j, y in enumerate(b, start=1):
            above = row[j]
            row[j] = diagonal + 1 if x == y else max(above, row[j - 1])
            diagonal = above
    return row[-1]


def rouge_l_sample(hypothesis: str, references: Sequence[str], beta: float = BETA) -> float:
    """ROUGE-L F of one hypothesis against its references."""
    hyp_tokens = hypothesis.split(" ")
    best_precision = 0.0
    best_recall = 0.0
    for reference in references:
        ref_tokens = reference.split(" ")
        lcs = lcs_length(ref_tokens, hyp_tokens)
        best_precision = max(best_precision, lcs / float(len(hyp_tokens)))
        best_recall = max(best_recall, lcs / float(len(ref_tokens)))
    if best_precision == 0 or best_recall == 0:
        return 0.0
    return ((1 + beta**2) * best_precision * best_recall) / float(best_recall + beta**2 * best_precision)


def rouge_l(
    hypotheses: Sequence[str], references: Sequence[str | Sequence[str]], beta: float = BETA
) -> Scores:
    """Corpus ROUGE-L (mean over samples) and the per-sample values."""
    hyps, refs = check_pairs(hypotheses, references)
    per_sample = [rouge_l_sample(h, r, beta) for h, r in zip(hyps, refs, strict=True)]
    return Scores(float(np.mean(np.asarray(per_sample, dtype=np.float64))), per_sample)
