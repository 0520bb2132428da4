"""Section extraction from free-text chest X-ray reports (MIMIC-CXR ``sXXXXXXXX.txt`` style).

A header is a line that starts with a name and a colon (``FINDINGS:``, `` IMPRESSION:  text``), upper-case
as in MIMIC-CXR, or in any case when the name is exactly a known section (``Findings:``). Names are normalised the way MIT-LCP's
``mimic-cxr`` section parser does in spirit: synonyms (``CONCLUSION`` -> impression, ``REASON FOR EXAM`` ->
indication, ``CLINICAL HISTORY`` -> history), typos within a small edit distance (``IMPRESSON``,
``FINIDNGS``), view titles (``PA AND LATERAL VIEWS OF THE CHEST``) -> findings, and combined headers
(``FINDINGS AND IMPRESSION``) -> ``findings_and_impression``. When a section occurs more than once the
last non-empty occurrence wins (addenda and corrected reports repeat headers).
"""

from __future__ import annotations

import difflib
import re

_HEADER = re.compile(r"^[ \t]*([A-Za-z][A-Za-z ()/,&-]{0,60}?)[ \t]*:", re.MULTILINE)

_SYNONYMS = {
    "findings": "findings",
    "finding": "findings",
    "impression": "impression",
    "impressions": "impression",
    "conclusion": "impression",
    "conclusions": "impression",
    "summary": "impression",
    "opinion": "impression",
    "indication": "indication",
    "indications": "indication",
    "clinical indication": "indication",
    "reason for exam": "indication",
    "reason for examination": "indication",
    "reason for study": "indication",
    "reason": "indication",
    "history": "history",
    "clinical history": "history",
    "clinical information": "history",
    "patient history": "history",
    "medical history": "history",
    "comparison": "comparison",
    "comparisons": "comparison",
    "comparison exam": "comparison",
    "comparison film": "comparison",
    "reference exam": "comparison",
    "technique": "technique",
    "examination": "examination",
    "exam": "examination",
    "type of examination": "examination",
    "procedure": "examination",
    "notification": "notification",
    "recommendation": "recommendations",
    "recommendations": "recommendations",
    "recommendation(s)": "recommendations",
    "addendum": "addendum",
    "wet read": "wet read",
    "wetread": "wet read",
    "note": "note",
    "comment": "comment",
    "comments": "comment",
}
_COMBINED = {
    "findings and impression",
    "findings/impression",
    "findings / impression",
    "impression and findings",
}
_FUZZY_TARGETS = ("findings", "impression", "indication", "comparison", "technique", "examination")
_VIEW_TITLE = re.compile(
    r"\b(chest|portable|view|views|pa and lat|ap and lat|frontal|upright|supine|semi-upright)\b"
)


def normalise_section_name(name: str, exact: bool = False) -> str | None:
    """Canonical section name, or ``None`` when ``name`` is not a recognised section.

    ``exact=True`` accepts only listed names (no typo, keyword or view-title rules): used for headers
    that are not upper-case, where "Synthetic impression: ..." is prose, not a section.
    """
    key = " ".join(name.lower().split())
    if key in _SYNONYMS:
        return _SYNONYMS[key]
    if key in _COMBINED:
        return "findings_and_impression"
    if exact:
        return None
    if "finding" in key and "impression" in key:
        return "findings_and_impression"
    for target in _FUZZY_TARGETS:
        if len(key) >= 6 and difflib.SequenceMatcher(None, key, target).ratio() >= 0.8:
            return target
    if "impression" in key:
        return "impression"
    if "finding" in key:
        return "findings"
    if "history" in key:
        return "history"
    if "indication" in key:
        return "indication"
    if _VIEW_TITLE.search(key):
        return "findings"
    return None


def split_sections(text: str) -> dict[str, str]:
    """Canonical section name -> whitespace-squeezed text (``preamble`` = text before the first header).

    An unrecognised upper-case header becomes its own (lower-cased) section, except inside findings or
    impression, where it is an organ sub-heading (``LUNGS:``, ``HEART:``) and stays part of the text; a
    lower-case ``word:`` that is not a known section is prose.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    headers: list[tuple[int, int, str]] = []
    for match in _HEADER.finditer(text):
        raw = match.group(1).strip()
        canonical = normalise_section_name(raw, exact=not raw.isupper())
        if canonical is None and raw.isupper() and len(raw) > 1:
            current = headers[-1][2] if headers else None
            if current in ("findings", "impression", "findings_and_impression"):
                continue
            canonical = " ".join(raw.lower().split())
        if canonical is not None:
            headers.append((match.start(), match.end(), canonical))
    sections: dict[str, str] = {}
    first = headers[0][0] if headers else len(text)
    preamble = " ".join(text[:first].split())
    if preamble:
        sections["preamble"] = preamble
    for index, (_, body_start, name) in enumerate(headers):
        body_end = headers[index + 1][0] if index + 1 < len(headers) else len(text)
        body = " ".join(text[body_start:body_end].split())
        if body or name not in sections:
            sections[name] = body
    return sections


def report_section(sections: dict[str, str], section: str) -> str:
    """``findings`` / ``impression`` / ``both`` text from :func:`split_sections` output (``""`` if absent).

    A combined ``FINDINGS AND IMPRESSION`` section stands in for whichever part is missing, and for
    ``both`` when neither separate section is present.
    """
    findings = sections.get("findings", "")
    impression = sections.get("impression", "")
    combined = sections.get("findings_and_impression", "")
    if section == "findings":
        return findings or combined
    if section == "impression":
        return impression or combined
    if section == "both":
        if not findings and not impression:
            return combined
        return " ".join(part for part in (findings or combined, impression) if part)
    raise ValueError(f"section must be one of ('findings', 'impression', 'both'), got {section!r}")


def report_indication(sections: dict[str, str]) -> str:
    """The clinical indication, falling back to the history section."""
    return sections.get("indication") or sections.get("history", "")
