"""BLEU-1..4, ROUGE-L and CIDEr-D computed by pycocoevalcap, the scorer behind the R2Gen family's tables.

pycocoevalcap (the ``eval`` extra, pure Python) is imported on first use, so the rest of ``rrg_trl`` imports
without it. What we add: input checks whose errors name the sample, multi-reference input as plain lists, and
floats instead of numpy values. Its definitions, kept so numbers compare with published ones:
- BLEU and CIDEr split on any whitespace, ROUGE-L on the space character only; case is kept;
- corpus BLEU pools counts over the samples; ROUGE-L and CIDEr-D are the mean of the per-sample values;
- CIDEr-D's IDF comes from the references being scored: score the whole split in one call (one sample
  alone scores 0).
"""

from __future__ import annotations

from collections.abc import Sequence

from rrg_trl.metrics.inputs import Scores, check_pairs


def _coco_inputs(
    hypotheses: Sequence[str], references: Sequence[str | Sequence[str]]
) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    """pycocoevalcap's ``gts`` {i: [references]} and ``res`` {i: [hypothesis]}, after our checks."""
    hyps, refs = check_pairs(hypotheses, references)
    return dict(enumerate(refs)), {i: [h] for i, h in enumerate(hyps)}


def _scores(corpus, per_sample) -> Scores:
    return Scores(float(corpus), [float(v) for v in per_sample])


def bleu(hypotheses: Sequence[str], references: Sequence[str | Sequence[str]]) -> list[Scores]:
    """BLEU-1..4: element ``k-1`` holds the corpus BLEU-k and the per-sample BLEU-k values.

    ``references[i]`` is one string or a list of strings (multiple references for sample i).
    """
    from pycocoevalcap.bleu.bleu import Bleu

    corpus, per_sample = Bleu(4).compute_score(*_coco_inputs(hypotheses, references), verbose=0)
    return [_scores(c, s) for c, s in zip(corpus, per_sample, strict=True)]


def rouge_l(hypotheses: Sequence[str], references: Sequence[str | Sequence[str]]) -> Scores:
    """ROUGE-L (beta 1.2; with several references, the best precision and best recall are taken apart)."""
    from pycocoevalcap.rouge.rouge import Rouge

    return _scores(*Rouge().compute_score(*_coco_inputs(hypotheses, references)))


def cider(hypotheses: Sequence[str], references: Sequence[str | Sequence[str]]) -> Scores:
    """CIDEr-D with IDF from these references.

    When no reference has a token, pycocoevalcap raises (``max()`` of its empty document-frequency table);
    every reference vector is then zero, so every similarity is 0, and that is what is returned.
    """
    from pycocoevalcap.cider.cider import Cider

    gts, res = _coco_inputs(hypotheses, references)
    if not any(ref.split() for refs in gts.values() for ref in refs):
        return Scores(0.0, [0.0] * len(res))
    return _scores(*Cider().compute_score(gts, res))
