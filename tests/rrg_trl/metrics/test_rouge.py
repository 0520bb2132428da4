"""ROUGE-L against pycocoevalcap's Rouge: corpus and per-sample values, synthetic and real text."""

from __future__ import annotations

import random

import pytest
from pycocoevalcap.rouge.rouge import Rouge, my_lcs

from rrg_trl.metrics import rouge_l
from rrg_trl.metrics.rouge import lcs_length
from tests.rrg_trl.metrics.pairs import as_coco, assert_close

pytestmark = pytest.mark.parity


def _check_parity(hyps, refs):
    ref_corpus, ref_per_sample = Rouge().compute_score(*as_coco(hyps, refs))
    ours = rouge_l(hyps, refs)
    assert_close(ours.corpus, float(ref_corpus), "corpus ROUGE-L")
    assert len(ours.per_sample) == len(hyps)
    for i, (a, b) in enumerate(zip(ours.per_sample, ref_per_sample, strict=True)):
        assert_close(a, float(b), f"ROUGE-L of sample {i}")
    return ours


def test_rouge_matches_pycocoevalcap_on_synthetic_text(synthetic):
    ours = _check_parity(*synthetic)
    assert 0.0 < ours.corpus < 1.0


def test_rouge_matches_pycocoevalcap_on_iu_reports(iu_pairs):
    _check_parity(*iu_pairs)


@pytest.mark.parametrize(
    ("hyp", "refs"),
    [
        ("", ["no acute process ."]),
        ("no", ["no acute process ."]),
        ("no acute process .", ["no acute process ."]),
        ("no acute process .", [""]),
        ("", [""]),
        ("a  b", ["a b"]),  # the empty token between two spaces
        ("heart normal", ["heart size is normal", "normal"]),  # best P and best R from different references
    ],
)
def test_rouge_edge_cases_match_pycocoevalcap(hyp, refs):
    _check_parity([hyp], [refs])


def test_lcs_length_matches_pycocoevalcap_on_random_token_lists():
    rng = random.Random(0)
    for _ in range(300):
        a = [rng.choice("abcd") for _ in range(rng.randrange(12))]
        b = [rng.choice("abcd") for _ in range(rng.randrange(12))]
        assert lcs_length(a, b) == lcs_length(b, a) == my_lcs(a, b), (a, b)
