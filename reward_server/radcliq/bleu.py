"""BLEU-2 exactly as RadCliQ's original code computes it (CXR-Report-Metric + fast_bleu 0.0.90).

Tokens: ``str(x).lower().replace(".", " .").split(" ")`` without empty strings, so only the space character
separates tokens (tabs and newlines stay inside them) and only "." is split off. Score: NLTK's sentence BLEU
with smoothing method1 as fast_bleu implements it: clipped n-gram matches over ``max(1, |H|-n+1)``; 0 if no
unigram matches; any zero count becomes ``0.1 / denominator``; brevity penalty against the closest reference
length (ties to the shorter); ``BP * exp(sum_n w_n ln p_n)``. Pure Python, no dependencies: a BLEU-2 pair of IU
X-ray reports takes ~50 µs, far below the encoders' cost.

radeval's RadCliQ uses a pycocoevalcap-style BLEU instead (no lower-casing, other smoothing); BLEU's RadCliQ-v1
weight is 4.3e-12, so the choice moves v1 by about 1e-11, but it matters for v0 and for BLEU reported alone.
"""

from __future__ import annotations

import math
import struct
from collections import Counter
from collections.abc import Sequence

from reward_server.radcliq.texts import check_pairs

BLEU2_WEIGHTS = (0.5, 0.5)
EPSILON = 0.1  # NLTK smoothing method1


def tokenize(text: str) -> list[str]:
    """CXR-Report-Metric's ``prep_reports`` for one report."""
    return [t for t in str(text).lower().replace(".", " .").split(" ") if t != ""]


def ngrams(tokens: Sequence[str], n: int) -> Counter:
    """Counts of the ``n``-grams; unigrams keyed by the token itself (the same key on both sides of a
    comparison), longer ones by tuples of shifted views (counted in C: ~3x a slicing loop)."""
    if n == 1:
        return Counter(tokens)
    if n == 2:
        return Counter(zip(tokens, tokens[1:], strict=False))  # shifted views: unequal by design
    return Counter(zip(*(tokens[i:] for i in range(n)), strict=False))


def _float32(x: float) -> float:
    """fast_bleu keeps weights as C floats; round like it so BLEU-3/4 weights (1/3, 1/4) agree too."""
    return struct.unpack("f", struct.pack("f", x))[0]


def sentence_bleu(
    hyp: Sequence[str], refs: Sequence[Sequence[str]], weights: Sequence[float] = BLEU2_WEIGHTS
) -> float:
    """BLEU of one tokenised hypothesis against one or more tokenised references (fast_bleu / NLTK method1)."""
    if not refs:
        raise ValueError("sentence_bleu needs at least one reference")
    max_n = len(weights)
    hyp_len = len(hyp)
    numerators, denominators = [], []
    for n in range(1, max_n + 1):
        counts = ngrams(hyp, n)
        if len(refs) == 1:  # RadCliQ's case: no union needed
            max_ref = ngrams(refs[0], n)
        else:
            max_ref = Counter()
            for ref in refs:
                max_ref |= ngrams(ref, n)  # per-n-gram max count over the references
        get = max_ref.get
        numerators.append(sum(min(c, get(g, 0)) for g, c in counts.items()))
        denominators.append(max(1, hyp_len - n + 1))  # = the number of hypothesis n-grams
    if numerators[0] == 0:
        return 0.0
    ref_len = min((abs(len(r) - hyp_len), len(r)) for r in refs)[1]
    if hyp_len > ref_len:
        bp = 1.0
    else:
        bp = math.exp(1 - ref_len / hyp_len)
    s = 0.0
    for w, num, den in zip(weights, numerators, denominators, strict=True):
        if num == 0:
            num, den = 1, den * 10  # EPSILON / den, kept as an exact fraction like fast_bleu
        s += _float32(w) * math.log(num / den)
    return bp * math.exp(s)


def bleu2(hyp: str, ref: str) -> float:
    """RadCliQ's BLEU-2 feature for one (hypothesis, reference) pair."""
    if not isinstance(hyp, str) or not isinstance(ref, str):
        raise ValueError(f"bleu2 needs two strings, got {type(hyp).__name__} and {type(ref).__name__}")
    return sentence_bleu(tokenize(hyp), [tokenize(ref)], BLEU2_WEIGHTS)


def bleu2_batch(hyps: Sequence[str], refs: Sequence[str]) -> list[float]:
    """BLEU-2 per pair, with the usual input checks (ValueError naming the bad index)."""
    hyps, refs = check_pairs(hyps, refs)
    return [bleu2(h, r) for h, r in zip(hyps, refs, strict=True)]
