import pytest

from rrg_trl.data.cleaning import (
    clean_report,
    clean_report_iu_xray,
    clean_report_mimic_cxr,
    handle_deid,
    resolve_cleaning,
    truncate_words,
)

# Expected strings were produced by R2Gen's own Tokenizer.clean_report_iu_xray / clean_report_mimic_cxr
# (cuhksz-nlp/R2Gen, modules/tokenizers.py) run on these inputs; they pin its quirks: numbering removal,
# the ':'..'[' character range (strips '<=>@', keeps '-'), kept empty sentences, the ' .' on empty input.
R2GEN_IU = [
    (
        "The heart is normal in size. The lungs are clear.",
        "the heart is normal in size . the lungs are clear .",
    ),
    (
        "1. No acute disease. 2. Stable cardiomegaly.. 3. Small left effusion...",
        "no acute disease . stable cardiomegaly . small left effusion .",
    ),
    (
        'Heart size "normal"; lungs/pleura: clear (no effusion) [stable] {ok} <=> @ 5% & T-spine!',
        "heart size normal lungspleura clear no effusion stable ok   5  t-spine .",
    ),
    (
        "XXXX are normal. No pneumothorax. . Otherwise unremarkable.",
        "xxxx are normal . no pneumothorax .  . otherwise unremarkable .",
    ),
    ("Ends without a period", "ends without a period ."),
    ("", " ."),
]
R2GEN_MIMIC = [
    (
        "FINDINGS:\n\n There is no focal consolidation, pleural effusion or pneumothorax.  Bilateral\n nodular "
        "opacities ___ most likely represent nipple shadows.... 1. Heart normal. 2. Lungs clear.",
        "findings there is no focal consolidation pleural effusion or pneumothorax . bilateral nodular opacities"
        "  most likely represent nipple shadows . heart normal . lungs clear .",
    ),
    (
        "PA and lateral views.__ Compared to ______ , stable.\n\n\n  No change .. ",
        "pa and lateral views compared to   stable . no change  .",
    ),
]


@pytest.mark.parametrize(("text", "expected"), R2GEN_IU)
def test_iu_cleaner_matches_r2gen(text, expected):
    assert clean_report_iu_xray(text) == expected


@pytest.mark.parametrize(("text", "expected"), R2GEN_MIMIC)
def test_mimic_cleaner_matches_r2gen(text, expected):
    assert clean_report_mimic_cxr(text) == expected


def test_clean_report_r2gen_is_r2gen_token_sequence():
    for text, expected in R2GEN_IU[:-1]:
        assert clean_report(text, "r2gen_iu") == " ".join(expected.split())
    for text, expected in R2GEN_MIMIC:
        assert clean_report(text, "r2gen_mimic") == " ".join(expected.split())


def test_clean_report_raw_only_squeezes_whitespace():
    assert clean_report("  The Heart:\n normal.  XXXX  ", "raw") == "The Heart: normal. XXXX"


@pytest.mark.parametrize("style", ["raw", "r2gen_iu", "r2gen_mimic"])
def test_empty_reports_become_empty_strings(style):
    for text in ["", "   ", ". . .", "\n"]:
        assert clean_report(text, style) == ""


def test_real_iu_reports_clean_to_lower_case_dot_separated(iu_annotation):
    import json

    entries = [e for items in json.loads(iu_annotation.read_text()).values() for e in items]
    for entry in entries[:300]:
        cleaned = clean_report(entry["report"], "r2gen_iu")
        assert cleaned == cleaned.lower() and cleaned.endswith(" .")
        assert "  " not in cleaned and "," not in cleaned


def test_deid_modes():
    text = "The XXXX are intact. Normal XXXX. No effusion (XXXX). Prior ___ study unchanged."
    assert handle_deid(text, "keep") == text
    assert handle_deid(text, "drop_token") == "The are intact. Normal. No effusion. Prior study unchanged."
    assert handle_deid(text, "drop_sentence") == ""
    assert (
        handle_deid("Heart normal. The XXXX are intact. Lungs clear.", "drop_sentence")
        == "Heart normal. Lungs clear."
    )
    assert clean_report("Heart normal. XXXX XXXX.", "r2gen_iu", deid="drop_sentence") == "heart normal ."
    assert clean_report("The XXXX are intact.", "r2gen_iu") == "the xxxx are intact ."


def test_bad_options_raise():
    with pytest.raises(ValueError, match="cleaning style"):
        clean_report("x", "r2gen")
    with pytest.raises(ValueError, match="deid"):
        handle_deid("x", "mask")
    with pytest.raises(ValueError, match="cleaning"):
        resolve_cleaning("lower", "iu_xray")
    with pytest.raises(ValueError, match="max_report_words"):
        truncate_words("a b", 0)


def test_resolve_and_truncate():
    assert resolve_cleaning("r2gen", "mimic_cxr") == "r2gen_mimic"
    assert resolve_cleaning("r2gen", "iu_xray") == "r2gen_iu"
    assert resolve_cleaning("r2gen", "synthetic") == "r2gen_iu"
    assert resolve_cleaning("raw", "mimic_cxr") == "raw"
    assert truncate_words("a b c d", 2) == "a b"
    assert truncate_words("a b", None) == "a b"
