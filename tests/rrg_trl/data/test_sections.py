import pytest

from rrg_trl.data.sections import normalise_section_name, report_indication, report_section, split_sections

from .conftest import FAKE_REPORTS


def test_standard_mimic_layout():
    sections = split_sections(FAKE_REPORTS["50000001"][2])
    assert sections["preamble"] == "FINAL REPORT"
    assert sections["examination"] == "CHEST (PA AND LAT)"
    assert sections["findings"] == "SYNTHETIC TEST REPORT. Small right pleural effusion. No pneumothorax."
    assert sections["impression"] == "Synthetic impression: small effusion."
    assert report_indication(sections) == "___F with synthetic cough // synthetic test"
    assert report_section(sections, "both") == f"{sections['findings']} {sections['impression']}"


def test_combined_header_serves_every_section():
    sections = split_sections(FAKE_REPORTS["50000002"][2])
    text = "SYNTHETIC TEST REPORT. Lungs are clear."
    assert report_section(sections, "findings") == text
    assert report_section(sections, "impression") == text
    assert report_section(sections, "both") == text
    assert report_indication(sections) == "synthetic history of fever."


def test_typos_synonyms_and_organ_subheadings():
    sections = split_sections(FAKE_REPORTS["50000003"][2])
    assert report_section(sections, "findings") == "SYNTHETIC TEST REPORT. LUNGS: clear. HEART: normal size."
    assert report_section(sections, "impression") == "Synthetic normal chest."
    assert report_indication(sections) == "synthetic chest pain"
    conclusion = split_sections(FAKE_REPORTS["50000004"][2])
    assert report_section(conclusion, "findings") == ""
    assert report_section(conclusion, "impression") == "SYNTHETIC TEST REPORT. No acute process."


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("FINDINGS", "findings"),
        ("Finding", "findings"),
        ("Findings and impression", "findings_and_impression"),
        ("FINIDNGS", "findings"),
        ("IMPRESSIONS", "impression"),
        ("IMPRESSON", "impression"),
        ("CONCLUSION", "impression"),
        ("REASON FOR EXAMINATION", "indication"),
        ("CLINICAL HISTORY", "history"),
        ("FINDINGS/IMPRESSION", "findings_and_impression"),
        ("PA AND LATERAL VIEWS OF THE CHEST", "findings"),
        ("Left lung", None),
    ],
)
def test_header_normalisation(name, canonical):
    assert normalise_section_name(name) == canonical


def test_prose_with_colons_is_not_a_header_and_last_occurrence_wins():
    text = "FINDINGS: first.\nAt 10:30 the team was told: nothing.\nFINDINGS:\nFINDINGS: second, final.\n"
    sections = split_sections(text)
    assert sections["findings"] == "second, final."
    assert split_sections("no headers at all") == {"preamble": "no headers at all"}
    with pytest.raises(ValueError, match="section"):
        report_section({}, "summary")


def test_mixed_case_headers_must_be_exact_names():
    text = "Findings: lungs clear.\nSynthetic impression: not a header.\nImpression: normal."
    sections = split_sections(text)
    assert sections["findings"] == "lungs clear. Synthetic impression: not a header."
    assert sections["impression"] == "normal."
    assert normalise_section_name("Impresson", exact=True) is None
