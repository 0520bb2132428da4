import math

import pytest

from rrg_trl.evaluation.ablation import describe_gap, paired_gap, shuffle_permutation
from rrg_trl.evaluation.decoding import degeneracy_lines, describe_decoding


@pytest.mark.parametrize("n", [2, 3, 16, 101])
def test_shuffle_is_a_seeded_derangement(n):
    perm = shuffle_permutation(n, seed=7)
    assert sorted(perm) == list(range(n))
    assert all(perm[i] != i for i in range(n))
    assert perm == shuffle_permutation(n, seed=7)
    if n > 3:
        assert perm != shuffle_permutation(n, seed=8)
    with pytest.raises(ValueError, match="at least 2 studies"):
        shuffle_permutation(1, seed=0)


def test_paired_gap_and_its_standard_error_skip_unscored_pairs():
    result = paired_gap([1.0, 0.5, None, 0.0], [0.0, 0.5, 1.0, -1.0])
    assert result["n"] == 3 and result["missing"] == 1
    assert result["gap"] == pytest.approx(2 / 3)
    diffs = [1.0, 0.0, 1.0]
    assert result["sem"] == pytest.approx(math.sqrt(sum((d - 2 / 3) ** 2 for d in diffs) / 2 / 3))
    assert result["reward_own"] == pytest.approx(0.5) and result["reward_ablated"] == pytest.approx(-1 / 6)
    line = describe_gap({"mode": "shuffle", **result})
    assert "gap +0.6667" in line and "beyond its standard error" in line
    zero = describe_gap({"mode": "shuffle", **paired_gap([0.2, 0.3], [0.2, 0.3])})
    assert "NOT beyond" in zero
    with pytest.raises(ValueError, match="2 own-image rewards for 1"):
        paired_gap([1.0, 2.0], [1.0])


def test_decoding_is_described_in_words():
    greedy = dict(do_sample=False, num_beams=1, no_repeat_ngram_size=0, temperature=1.0, top_p=1.0)
    assert describe_decoding(greedy, 64) == "greedy, at most 64 new tokens"
    beam = {**greedy, "num_beams": 3, "no_repeat_ngram_size": 3}
    assert (
        describe_decoding(beam, 60)
        == "beam search (3 beams), no repeated 3-gram of words, at most 60 new tokens"
    )
    sampled = {**greedy, "do_sample": True, "temperature": 0.7, "top_p": 0.9}
    assert describe_decoding(sampled, 8).startswith("sampling (temperature 0.7, top-p 0.9)")


def test_degeneracy_lines_compare_with_the_baseline():
    now = {
        "distinct_1": 0.5,
        "distinct_2": 0.6,
        "repeated_trigram_fraction": 0.0,
        "identical_report_share": 0.25,
    }
    before = {**now, "identical_report_share": 1.0, "distinct_2": None}
    lines = degeneracy_lines(now, before, "SFT")
    assert lines[0] == "| Degeneracy | this run | SFT | change |"
    assert "| studies given an identical report | 0.2500 | 1.0000 | -0.7500 (better) |" in lines
    assert "| distinct-2 | 0.6000 | n/a | n/a |" in lines
