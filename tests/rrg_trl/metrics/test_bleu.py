"""BLEU-1..4 against pycocoevalcap's Bleu: corpus and per-sample values, synthetic and real text."""

from __future__ import annotations

import pytest
from pycocoevalcap.bleu.bleu import Bleu

from rrg_trl.metrics import bleu
from tests.rrg_trl.metrics.pairs import as_coco, assert_close

pytestmark = pytest.mark.parity


def _check_parity(hyps, refs):
    ref_corpus, ref_per_sample = Bleu(4).compute_score(*as_coco(hyps, refs), verbose=0)
    ours = bleu(hyps, refs)
    assert len(ours) == 4
    for k in range(4):
        assert_close(ours[k].corpus, ref_corpus[k], f"corpus BLEU-{k + 1}")
        assert len(ours[k].per_sample) == len(hyps)
        for i, (a, b) in enumerate(zip(ours[k].per_sample, ref_per_sample[k], strict=True)):
            assert_close(a, b, f"BLEU-{k + 1} of sample {i}")
    return ours


def test_bleu_matches_pycocoevalcap_on_synthetic_text(synthetic):
    ours = _check_parity(*synthetic)
    assert 0.0 < ours[3].corpus < ours[0].corpus < 1.0  # the set mixes overlaps: a degenerate score is a bug


def test_bleu_matches_pycocoevalcap_on_iu_reports(iu_pairs):
    _check_parity(*iu_pairs)


@pytest.mark.parametrize(
    ("hyp", "ref"),
    [
        ("", "no acute process ."),
        ("no", "no acute process ."),
        ("no acute process .", "no acute process ."),
        ("ok", "ok"),
        ("no acute process .", ""),
        ("", ""),
        ("the the the the", "the cat"),
        ("no effusion or pneumothorax is seen today .", "no effusion ."),
    ],
)
def test_bleu_edge_cases_match_pycocoevalcap(hyp, ref):
    _check_parity([hyp], [[ref]])


def test_identical_text_scores_one_and_empty_hypothesis_zero():
    ours = bleu(["no acute process .", ""], ["no acute process .", "no acute process ."])
    assert ours[3].per_sample[0] == pytest.approx(1.0, abs=1e-9)
    assert ours[3].per_sample[1] == 0.0


def test_closest_reference_length_sets_the_brevity_penalty():
    """A 4-word hypothesis with a 4-word reference among longer ones pays no brevity penalty."""
    hyp = "heart size is normal"
    alone = bleu([hyp], [["heart size is normal"]])[0].per_sample[0]
    with_longer = bleu([hyp], [["the heart size is within normal limits today", "heart size is normal"]])
    assert with_longer[0].per_sample[0] == pytest.approx(alone, abs=1e-12)


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        bleu(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="hypothesis 1 is NoneType"):
        bleu(["a", None], ["a", "b"])
    with pytest.raises(ValueError, match="sample 1 has no reference"):
        bleu(["a", "b"], [["a"], []])
    with pytest.raises(ValueError, match="reference 1 of sample 0 is int"):
        bleu(["a"], [["a", 3]])
    with pytest.raises(ValueError, match="no samples"):
        bleu([], [])
    with pytest.raises(ValueError, match="max_n"):
        bleu(["a"], ["a"], max_n=0)
