"""CIDEr-D exactly as pycocoevalcap's ``Cider`` computes it (TF-IDF n-gram cosine, clipped, length-penalised).

What makes it comparable with published numbers, and what surprises people:
- document frequencies come from the references of the samples being scored, so a sample's score
  depends on the whole evaluated set (score the full split at once, never in batches);
- IDF is ``log(N) - log(max(1, df))`` with N the number of samples: with a single sample every weight is
  0 and so is the score;
- tokens are ``str.split()``, n = 1..4, hypothesis weights are clipped to the reference weights, and a
  Gaussian penalty ``exp(-delta² / (2·sigma²))`` with sigma = 6 is applied per n-gram order;
- delta is the length difference; pycocoevalcap measures it in bigrams, which differs from words only
  when a text is empty, and then the score is 0 anyway;
- the per-sample value is the mean over n-gram orders, averaged over references, times 10; the corpus
  score is the mean over samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from rrg_trl.metrics.bleu import ngram_counts
from rrg_trl.metrics.inputs import Scores, check_pairs

SIGMA = 6.0


class _Vector:
    """TF-IDF weights per n-gram order, their L2 norms, and the length used by the Gaussian penalty."""

    __slots__ = ("length", "norms", "weights")

    def __init__(self, counts, doc_freq: dict, log_num_docs: float, max_n: int):
        self.weights: list[dict[tuple[str, ...], float]] = [{} for _ in range(max_n)]
        squares = [0.0] * max_n
        self.length = 0
        for gram, tf in counts.items():
            order = len(gram) - 1
            weight = float(tf) * (log_num_docs - math.log(max(1.0, doc_freq.get(gram, 0.0))))
            self.weights[order][gram] = weight
            squares[order] += weight**2
            if order == 1:
                self.length += tf
        self.norms = [math.sqrt(s) for s in squares]


def _similarity(hyp: _Vector, ref: _Vector, sigma: float) -> list[float]:
    """Clipped cosine per order, times the length penalty."""
    delta = float(hyp.length - ref.length)
    penalty = math.e ** (-(delta**2) / (2 * sigma**2))
    values = []
    for order, hyp_weights in enumerate(hyp.weights):
        ref_weights = ref.weights[order]
        value = 0.0
        for gram, weight in hyp_weights.items():
            ref_weight = ref_weights.get(gram, 0.0)
            value += min(weight, ref_weight) * ref_weight
        if hyp.norms[order] != 0 and ref.norms[order] != 0:
            value /= hyp.norms[order] * ref.norms[order]
        values.append(value * penalty)
    return values


def cider(
    hypotheses: Sequence[str],
    references: Sequence[str | Sequence[str]],
    max_n: int = 4,
    sigma: float = SIGMA,
) -> Scores:
    """Corpus CIDEr-D (mean over samples) and the per-sample values, with IDF from these references."""
    if max_n < 1:
        raise ValueError(f"max_n must be >= 1, got {max_n}")
    hyps, refs = check_pairs(hypotheses, references)
    ref_counts = [[ngram_counts(r.split(), max_n) for r in sample_refs] for sample_refs in refs]
    doc_freq: dict[tuple[str, ...], float] = {}
    for sample_counts in ref_counts:
        for gram in {g for counts in sample_counts for g in counts}:
            doc_freq[gram] = doc_freq.get(gram, 0.0) + 1.0
    log_num_docs = math.log(float(len(refs)))

    per_sample = []
    for hyp, sample_counts in zip(hyps, ref_counts, strict=True):
        hyp_vec = _Vector(ngram_counts(hyp.split(), max_n), doc_freq, log_num_docs, max_n)
        totals = [0.0] * max_n
        for counts in sample_counts:
            sims = _similarity(hyp_vec, _Vector(counts, doc_freq, log_num_docs, max_n), sigma)
            totals = [t + s for t, s in zip(totals, sims, strict=True)]
        score = float(np.mean(np.asarray(totals, dtype=np.float64)))
        per_sample.append(score / len(sample_counts) * 10.0)
    return Scores(float(np.mean(np.asarray(per_sample, dtype=np.float64))), per_sample)
