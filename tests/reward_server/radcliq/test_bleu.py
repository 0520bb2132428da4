"""BLEU-2 against the real fast_bleu package (what CXR-Report-Metric calls), to 1e-9 per pair."""

from __future__ import annotations

import random

import pytest

from reward_server.radcliq.bleu import bleu2, bleu2_batch, sentence_bleu, tokenize
from reward_server.tinykit.corpus import synthetic_reports
from tests.parity.pairs import iu_reports, make_pairs

fast_bleu = pytest.importorskip("fast_bleu")

TOL = 1e-9
# metric_spec.md section 4.1: the edge cases observed on fast_bleu 0.0.90 (hyp, ref).
EDGE_CASES = [
    ("no acute process .", "no acute process ."),
    ("no", "no acute process ."),
    ("yes", "no acute process ."),
    ("big heart here", "no acute process ."),
    ("d c b a", "a b c d"),
    ("heart size is normal .", "the heart is normal in size ."),
    ("no effusion or pneumothorax is seen today .", "no effusion ."),
    ("the the the the", "the cat"),
    ("ok", "ok"),
    ("", "no acute process ."),
    ("no acute process .", ""),
    ("", ""),
    ("a b\nc d", "a b\nc d"),
    ("No acute process.", "no acute process"),  # case and "." splitting
    ("3.5 cm nodule.", "3 .5 cm nodule ."),
    ("  spaced   out  ", "spaced out"),
    ("tab\tinside", "tab inside"),
    ("...", "."),
]


def _fast_bleu(hyp_tokens, ref_tokens_list, weights=(0.5, 0.5)):
    return fast_bleu.BLEU(ref_tokens_list, {"w": weights}).get_score([hyp_tokens])["w"][0]


def _check(pairs):
    worst = 0.0
    for hyp, ref in pairs:
        ours = bleu2(hyp, ref)
        expected = _fast_bleu(tokenize(hyp), [tokenize(ref)])
        assert abs(ours - expected) <= TOL, (hyp, ref, ours, expected)
        worst = max(worst, abs(ours - expected))
    return worst


def test_tokenize_is_prep_reports():
    assert tokenize("No acute process.\nHeart  normal.") == [
        "no",
        "acute",
        "process",
        ".\nheart",
        "normal",
        ".",
    ]
    assert tokenize("   ") == [] and tokenize("") == []


def test_edge_cases_match_fast_bleu():
    _check(EDGE_CASES)


def test_synthetic_pairs_match_fast_bleu():
    reports = synthetic_reports(400, seed=11)
    rng = random.Random(0)
    pairs = [(h, r) for h, r, _ in make_pairs(reports, 800, seed=2)]
    pairs += [(" ".join(w for w in r.split() if rng.random() > 0.3), r) for r in reports]
    worst = _check(pairs)
    print(f"\n[bleu2 synthetic] {len(pairs)} pairs, max |ours - fast_bleu| = {worst:.3g}")


@pytest.mark.parity
def test_iu_pairs_match_fast_bleu(iu_annotation):
    reports = iu_reports(iu_annotation) + iu_reports(iu_annotation, "train")[:500]
    rng = random.Random(1)
    pairs = [(h, r) for h, r, _ in make_pairs(reports, 600, seed=3)]
    pairs += [(" ".join(w for w in r.split() if rng.random() > 0.2), r) for r in reports[:500]]
    assert len(pairs) >= 1000
    worst = _check(pairs)
    print(f"\n[bleu2 iu] {len(pairs)} pairs, max |ours - fast_bleu| = {worst:.3g}")


def test_general_ngram_bleu_matches_fast_bleu():
    """The function bleu2 is built on: any order, several references (clipping by max count, closest length)."""
    reports = [tokenize(r) for r in synthetic_reports(120, seed=5)]
    rng = random.Random(2)
    for _ in range(150):
        refs = rng.sample(reports, rng.randint(1, 3))
        hyp = [t for t in rng.choice(reports) if rng.random() > 0.25]
        for weights in [(0.5, 0.5), (1 / 3, 1 / 3, 1 / 3), (0.25, 0.25, 0.25, 0.25)]:
            assert abs(sentence_bleu(hyp, refs, weights) - _fast_bleu(hyp, refs, weights)) <= TOL


def test_bad_input():
    with pytest.raises(ValueError, match="two strings"):
        bleu2(None, "a")
    with pytest.raises(ValueError, match=r"refs\[1\] must be a string"):
        bleu2_batch(["a", "b"], ["a", 2])
    with pytest.raises(ValueError, match="same length"):
        bleu2_batch(["a"], ["a", "b"])
    assert bleu2_batch(["no acute process."], ["no acute process."]) == [1.0]
