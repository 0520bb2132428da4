import pytest

from rrg_trl.metrics.degeneracy import (
    degeneracy,
    distinct_n,
    identical_flags,
    repeat_fraction,
    repeated_trigram_fraction,
    report_words,
)


def test_words_are_lower_cased_without_punctuation():
    assert report_words("The lungs are clear. No XXXX, it's 5 mm.") == [
        "the", "lungs", "are", "clear", "no", "xxxx", "it's", "5", "mm",
    ]  # fmt: skip


def test_repeated_trigrams_count_repeats_of_an_earlier_trigram():
    assert repeated_trigram_fraction("The lungs are clear.") == 0.0
    # 8 trigrams, 4 distinct: "the lungs are clear" twice over
    assert repeated_trigram_fraction("The lungs are clear. The lungs are clear. The lungs are clear.") == 0.6
    assert repeat_fraction(["a", "b"], 3) == 0.0


def test_distinct_n_over_all_reports():
    assert distinct_n(["a b c", "a b d"], 1) == pytest.approx(4 / 6)
    assert distinct_n(["a b c", "a b d"], 2) == pytest.approx(3 / 4)
    assert distinct_n(["", "a"], 2) is None


def test_identical_report_share_and_counts():
    reports = ["No effusion.", "Large effusion.", "No effusion. ", "Heart enlarged."]
    assert identical_flags(reports) == [True, False, True, False]
    figures = degeneracy(reports)
    assert figures["identical_report_share"] == 0.5 and figures["distinct_reports"] == 3
    same = degeneracy(["The lungs are clear."] * 16)
    assert same["identical_report_share"] == 1.0 and same["distinct_reports"] == 1
    with pytest.raises(ValueError, match="at least one report"):
        degeneracy([])
