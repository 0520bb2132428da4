"""CIDEr-D against pycocoevalcap's Cider: corpus and per-sample values, synthetic and real text."""

from __future__ import annotations

import pytest
from pycocoevalcap.cider.cider import Cider

from rrg_trl.metrics import cider
from tests.rrg_trl.metrics.pairs import as_coco, assert_close

pytestmark = pytest.mark.parity


def _check_parity(hyps, refs):
    ref_corpus, ref_per_sample = Cider().compute_score(*as_coco(hyps, refs))
    ours = cider(hyps, refs)
    assert_close(ours.corpus, float(ref_corpus), "corpus CIDEr")
    assert len(ours.per_sample) == len(hyps)
    for i, (a, b) in enumerate(zip(ours.per_sample, ref_per_sample, strict=True)):
        assert_close(a, float(b), f"CIDEr of sample {i}")
    return ours


def test_cider_matches_pycocoevalcap_on_synthetic_text(synthetic):
    ours = _check_parity(*synthetic)
    assert ours.corpus > 0.0


def test_cider_matches_pycocoevalcap_on_iu_reports(iu_pairs):
    _check_parity(*iu_pairs)


def test_cider_edge_cases_match_pycocoevalcap():
    """Empty, single-token and identical texts, scored together so the IDF is not degenerate."""
    hyps = ["", "lungs", "no acute process .", "clear", "the the the", "heart size normal", "x"]
    refs = [
        ["no acute process ."],
        ["the lungs are clear ."],
        ["no acute process ."],
        ["clear"],
        ["the heart"],
        ["", "heart size is normal ."],
        [""],
    ]
    _check_parity(hyps, refs)


def test_document_frequency_comes_from_the_evaluated_set():
    """Same pair, different companions, different score: CIDEr-D is a set-level metric by design."""
    pair = ("the heart is normal .", "the heart is normal in size .")
    set_a = cider([pair[0], "lungs are clear ."], [pair[1], "the lungs are clear ."])
    set_b = cider([pair[0], "no effusion ."], [pair[1], "no pleural effusion ."])
    assert set_a.per_sample[0] != pytest.approx(set_b.per_sample[0])
    assert cider([pair[0]], [pair[1]]).corpus == 0.0  # one sample: log(N) - log(df) = 0 for every n-gram


def test_all_empty_references_score_zero():
    """pycocoevalcap raises on this (max of an empty document-frequency table); every similarity is 0."""
    assert cider(["a b", "c"], ["", ""]).per_sample == [0.0, 0.0]
