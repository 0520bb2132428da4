"""BLEU / ROUGE-L / CIDEr through pycocoevalcap: what is ours is tested here (how values and samples are mapped,
the all-empty-references guard, input checks, multi-reference input) plus facts true by construction."""

from __future__ import annotations

import random

import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge

from rrg_trl.metrics import Scores, bleu, cider, rouge_l
from tests.rrg_trl.metrics.pairs import as_coco, assert_close

SAME = "no acute cardiopulmonary process ."


def _alone(hyp: str, refs: list[str]):
    """pycocoevalcap on one sample by itself: BLEU-1..4 and ROUGE-L of that sample."""
    gts, res = as_coco([hyp], [refs])
    _, bleu_rows = Bleu(4).compute_score(gts, res, verbose=0)
    _, rouge_rows = Rouge().compute_score(gts, res)
    return [row[0] for row in bleu_rows], float(rouge_rows[0])


def _check_mapping(hyps, refs, n_alone=40):
    """Per-sample BLEU and ROUGE-L do not depend on the other samples: sample i of the batch equals sample i
    scored alone (catches a mis-ordered or mis-keyed mapping); the means are the corpus values; CIDEr follows
    its samples when they are shuffled (its IDF is the same set)."""
    bleu_k = bleu(hyps, refs)
    rouge = rouge_l(hyps, refs)
    cid = cider(hyps, refs)
    for scores in [*bleu_k, rouge, cid]:
        assert isinstance(scores.corpus, float) and len(scores.per_sample) == len(hyps)
        assert all(type(v) is float for v in scores.per_sample)
    for i in random.Random(0).sample(range(len(hyps)), min(n_alone, len(hyps))):
        bleu_alone, rouge_alone = _alone(hyps[i], refs[i])
        for k in range(4):
            assert_close(bleu_k[k].per_sample[i], bleu_alone[k], f"BLEU-{k + 1} of sample {i}")
        assert_close(rouge.per_sample[i], rouge_alone, f"ROUGE-L of sample {i}")
    assert_close(rouge.corpus, sum(rouge.per_sample) / len(hyps), "ROUGE-L mean")
    assert_close(cid.corpus, sum(cid.per_sample) / len(hyps), "CIDEr mean")
    order = list(range(len(hyps)))
    random.Random(1).shuffle(order)
    shuffled = cider([hyps[i] for i in order], [refs[i] for i in order])
    for j, i in enumerate(order):
        assert_close(shuffled.per_sample[j], cid.per_sample[i], f"CIDEr of sample {i} after shuffling")
    return bleu_k, rouge, cid


def test_mapping_on_synthetic_text(synthetic):
    bleu_k, rouge, cid = _check_mapping(*synthetic)
    assert (
        0.0 < bleu_k[3].corpus < bleu_k[0].corpus < 1.0
    )  # the set mixes overlaps: a degenerate score is a bug
    assert 0.0 < rouge.corpus < 1.0 and cid.corpus > 0.0


def test_mapping_on_iu_reports(iu_pairs):
    _check_mapping(*iu_pairs)


def test_bleu_orders_are_in_order():
    """Every unigram matches, no bigram does: BLEU-1 is 1 and BLEU-2..4 are (almost) 0."""
    orders = bleu(["a b c d"], [["d c b a"]])
    assert orders[0].corpus == pytest.approx(1.0, abs=1e-9)
    assert all(o.corpus < 1e-6 for o in orders[1:])


def test_identical_text_scores_one_and_disjoint_text_zero():
    hyps = [SAME, "heart size is normal"]
    refs = [SAME, "lungs are clear bilaterally"]
    assert [b.per_sample[0] for b in bleu(hyps, refs)] == pytest.approx([1.0] * 4, abs=1e-8)
    assert all(b.per_sample[1] < 1e-6 for b in bleu(hyps, refs))
    assert rouge_l(hyps, refs).per_sample == [1.0, 0.0]
    cid = cider(hyps, refs)
    assert cid.per_sample[0] > 0.0 and cid.per_sample[1] == 0.0


def test_bleu_prints_nothing(capsys):
    """pycocoevalcap's Bleu prints its counts unless told not to."""
    bleu([SAME], [SAME])
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("empty", ["", " ", "\t"])
def test_all_empty_references_give_cider_zero_where_pycocoevalcap_raises(empty):
    hyps, refs = ["a b", "c"], [[empty], [empty, ""]]
    with pytest.raises(ValueError, match="empty"):
        Cider().compute_score(*as_coco(hyps, refs))
    assert cider(hyps, refs) == Scores(0.0, [0.0, 0.0])
    assert rouge_l(hyps, refs).per_sample == [0.0, 0.0]  # the others handle it themselves
    assert all(b.corpus < 1e-6 for b in bleu(hyps, refs))


def test_one_empty_reference_is_not_guarded():
    """Only the all-empty case is special: with another reference in the set, pycocoevalcap scores it."""
    cid = cider(["a b", "lungs clear"], ["", "lungs clear"])
    assert cid.per_sample[0] == 0.0 and cid.per_sample[1] > 0.0


def test_document_frequency_comes_from_the_evaluated_set():
    """Same pair, different companions, different score: CIDEr-D is a set-level metric by design."""
    pair = ("the heart is normal .", "the heart is normal in size .")
    set_a = cider([pair[0], "lungs are clear ."], [pair[1], "the lungs are clear ."])
    set_b = cider([pair[0], "no effusion ."], [pair[1], "no pleural effusion ."])
    assert set_a.per_sample[0] != pytest.approx(set_b.per_sample[0])
    assert cider([pair[0]], [pair[1]]).corpus == 0.0  # one sample: log(N) - log(df) = 0 for every n-gram


def test_multiple_references():
    # a bare string is one reference
    for metric in (rouge_l, cider):
        bare = metric([SAME, "lungs clear"], [SAME, "lungs are clear"])
        assert bare == metric([SAME, "lungs clear"], [[SAME], ["lungs are clear"]])
    # the closest reference length sets BLEU's brevity penalty; the matching reference gives full n-gram credit
    with_longer = bleu([SAME], [["the heart size is within normal limits today", SAME]])
    assert [b.corpus for b in with_longer] == pytest.approx([1.0] * 4, abs=1e-8)
    # ROUGE-L: best precision from one reference, best recall from the other
    assert rouge_l(["heart normal"], [["heart size is normal", "normal"]]).per_sample == [1.0]


@pytest.mark.parametrize("metric", [bleu, rouge_l, cider])
def test_bad_inputs_name_the_problem(metric):
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        metric(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="hypothesis 1 is NoneType"):
        metric(["a", None], ["a", "b"])
    with pytest.raises(ValueError, match="sample 1 has no reference"):
        metric(["a", "b"], [["a"], []])
    with pytest.raises(ValueError, match="reference 1 of sample 0 is int"):
        metric(["a"], [["a", 3]])
    with pytest.raises(ValueError, match="no samples"):
        metric([], [])
    with pytest.raises(ValueError, match="single string"):
        metric("a", "a")
