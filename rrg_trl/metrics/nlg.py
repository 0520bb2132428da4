"""The NLG half of the evaluation table, keyed as the R2Gen family reports it (BLEU_1..4, METEOR, ROUGE_L, CIDEr).

Every metric is scored on the whole evaluated set in one call: corpus BLEU pools counts and CIDEr's IDF
comes from the evaluated references, so batching would change the numbers. Texts are used as given
(clean them first, e.g. the R2Gen cleaning, exactly as the numbers you compare with were cleaned).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from rrg_trl.metrics.coco import bleu, cider, rouge_l
from rrg_trl.metrics.inputs import check_pairs
from rrg_trl.metrics.meteor import Meteor, MeteorError, meteor_unavailable_reason

NLG_METRICS = ("BLEU_1", "BLEU_2", "BLEU_3", "BLEU_4", "METEOR", "ROUGE_L", "CIDEr")


@dataclass
class NLGScores:
    """Corpus values, per-sample values, and why any metric is missing (its values are then None)."""

    corpus: dict[str, float | None]
    per_sample: dict[str, list[float] | None]
    unavailable: dict[str, str] = field(default_factory=dict)


def compute_nlg_metrics(
    hypotheses: Sequence[str],
    references: Sequence[str | Sequence[str]],
    meteor: bool | Meteor = True,
) -> NLGScores:
    """BLEU-1..4, METEOR, ROUGE-L and CIDEr-D with pycocoevalcap's definitions.

    ``meteor``: True starts a Meteor 1.5 process for this call, a :class:`Meteor` instance is reused,
    False skips it. When METEOR cannot run (no Java, no jar) or fails, its values are None and
    ``unavailable["METEOR"]`` says why; the other metrics are still computed.
    """
    hyps, refs = check_pairs(hypotheses, references)
    corpus: dict[str, float | None] = {}
    per_sample: dict[str, list[float] | None] = {}
    unavailable: dict[str, str] = {}

    for k, scores in enumerate(bleu(hyps, refs), start=1):
        corpus[f"BLEU_{k}"], per_sample[f"BLEU_{k}"] = scores.corpus, scores.per_sample

    corpus["METEOR"], per_sample["METEOR"] = None, None
    reason = None
    if meteor is False:
        reason = "METEOR not requested"
    elif meteor is True:
        reason = meteor_unavailable_reason()
    if reason is None:
        try:
            if isinstance(meteor, Meteor):
                scores = meteor.score(hyps, refs)
            else:
                with Meteor() as scorer:
                    scores = scorer.score(hyps, refs)
            corpus["METEOR"], per_sample["METEOR"] = scores.corpus, scores.per_sample
        except MeteorError as err:
            reason = f"METEOR failed: {err}"
    if reason is not None:
        unavailable["METEOR"] = reason

    scores = rouge_l(hyps, refs)
    corpus["ROUGE_L"], per_sample["ROUGE_L"] = scores.corpus, scores.per_sample
    scores = cider(hyps, refs)
    corpus["CIDEr"], per_sample["CIDEr"] = scores.corpus, scores.per_sample
    return NLGScores(corpus, per_sample, unavailable)
