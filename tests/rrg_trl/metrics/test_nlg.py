"""The NLG table: R2Gen's keys, pycocoevalcap's numbers, METEOR reported as missing rather than invented."""

from __future__ import annotations

import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge

from rrg_trl.metrics import NLG_METRICS, compute_nlg_metrics
from tests.rrg_trl.metrics.pairs import as_coco, assert_close


def _reference_table(hyps, refs) -> dict[str, tuple[float, list[float]]]:
    """The table as R2Gen's compute_scores builds it with pycocoevalcap (plus CIDEr), METEOR aside."""
    gts, res = as_coco(hyps, refs)
    bleu_corpus, bleu_samples = Bleu(4).compute_score(gts, res, verbose=0)
    table = {f"BLEU_{k + 1}": (bleu_corpus[k], bleu_samples[k]) for k in range(4)}
    table["ROUGE_L"] = Rouge().compute_score(gts, res)
    table["CIDEr"] = Cider().compute_score(gts, res)
    return table


@pytest.mark.parity
@pytest.mark.parametrize("source", ["synthetic", "iu_pairs"])
def test_table_matches_pycocoevalcap(source, request):
    hyps, refs = request.getfixturevalue(source)
    table = compute_nlg_metrics(hyps, refs, meteor=False)
    assert tuple(table.corpus) == NLG_METRICS and tuple(table.per_sample) == NLG_METRICS
    for key, (corpus, per_sample) in _reference_table(hyps, refs).items():
        assert_close(table.corpus[key], float(corpus), key)
        assert len(table.per_sample[key]) == len(hyps)
        for i, (a, b) in enumerate(zip(table.per_sample[key], per_sample, strict=True)):
            assert_close(a, float(b), f"{key} of sample {i}")


def test_meteor_not_requested_is_none_with_a_reason():
    table = compute_nlg_metrics(["no acute process ."], [["no acute process ."]], meteor=False)
    assert table.corpus["METEOR"] is None and table.per_sample["METEOR"] is None
    assert table.unavailable == {"METEOR": "METEOR not requested"}
    assert table.corpus["ROUGE_L"] == 1.0


def test_bad_input_is_rejected_before_any_work():
    with pytest.raises(ValueError, match="hypothesis 0 is bytes"):
        compute_nlg_metrics([b"no"], ["no"], meteor=False)
    with pytest.raises(ValueError, match="single string"):
        compute_nlg_metrics("no acute process", "no acute process", meteor=False)
