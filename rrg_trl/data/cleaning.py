"""Report text normalisation: R2Gen-compatible cleaning and de-identification tokens.

Most report-generation papers since R2Gen (Chen et al., EMNLP 2020; cuhksz-nlp/R2Gen,
``modules/tokenizers.py``) score against references passed through its ``clean_report_iu_xray`` /
``clean_report_mimic_cxr``: a fixed chain of string replacements (collapse ``..``, drop list numbering
``1.``-``5.``), lower-casing, a split on ``". "``, removal of a punctuation class from every sentence and
a re-join with ``" . "``. Numbers only compare with published ones when references go through the same
chain, so :func:`clean_report_iu_xray` / :func:`clean_report_mimic_cxr` reproduce it string for string
(including its quirks: each replacement runs a fixed number of times, empty sentences survive as
``" .  . "``, and the character class ``:-[`` is a *range* that also strips ``< = > @``).

:func:`clean_report` is what the loaders call: ``style="raw"`` only collapses whitespace,
``style="r2gen_iu"`` / ``"r2gen_mimic"`` apply the chain and then collapse whitespace, which is exactly
R2Gen's evaluated text (it scores the whitespace-split token sequence re-joined with single spaces).

De-identification: IU X-ray replaces protected words with ``XXXX`` (over-eagerly: "The XXXX are intact"
hides "bones"); MIMIC-CXR uses ``___``. ``deid="keep"`` leaves them (R2Gen keeps ``xxxx`` as a token, so
published numbers include it; an RL policy will then learn to write ``xxxx`` where references have it),
``"drop_token"`` deletes the placeholder only, ``"drop_sentence"`` deletes every sentence containing one.
"""

from __future__ import annotations

import re

CLEANING_STYLES = ("raw", "r2gen_iu", "r2gen_mimic")
DEID_MODES = ("keep", "drop_token", "drop_sentence")

# Characters R2Gen deletes inside a sentence. Its regex class is "[.,?;*!%^&_+():-\[\]{}]", in which
# ":-\[" is a range (0x3A-0x5B): besides ':' and '[' it removes ';<=>?@' and 'A'-'Z' (the text is
# already lower-cased, so the letters never matter). Quotes, slashes and backslashes go first.
_R2GEN_DROP = set(".,?;*!%^&_+()]{}") | {chr(c) for c in range(ord(":"), ord("[") + 1)}
_R2GEN_TABLE = str.maketrans({c: None for c in _R2GEN_DROP})
_QUOTES_TABLE = str.maketrans({c: None for c in "\"/\\'"})

# Numbered-list markers R2Gen rewrites, in its order (after its "1. " deletion).
_NUMBERING = [(". 2. ", ". "), (". 3. ", ". "), (". 4. ", ". "), (". 5. ", ". ")]
_NUMBERING += [(" 2. ", ". "), (" 3. ", ". "), (" 4. ", ". "), (" 5. ", ". ")]

# IU X-ray: runs of 2+ capital X (always "XXXX" in the corpus, sometimes glued: "x-XXXX", "XXXX/XXXX").
# MIMIC-CXR: runs of 3+ underscores ("___").
DEID_PATTERN = re.compile(r"X{2,}|_{3,}")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _replace_times(text: str, old: str, new: str, times: int) -> str:
    # R2Gen chains a fixed number of str.replace calls; "until no change" would differ on long runs.
    for _ in range(times):
        text = text.replace(old, new)
    return text


def _r2gen_sentences(text: str) -> list[str]:
    """Shared tail of both R2Gen cleaners: numbering, lower-case, split on '. ', per-sentence strip."""
    text = text.replace("1. ", "")
    for old, new in _NUMBERING:
        text = text.replace(old, new)
    sentences = text.strip().lower().split(". ")
    return [s.translate(_QUOTES_TABLE).strip().lower().translate(_R2GEN_TABLE) for s in sentences]


def clean_report_iu_xray(report: str) -> str:
    """R2Gen's IU X-ray cleaning, reproduced exactly (see module docstring)."""
    text = _replace_times(report, "..", ".", 3)
    return " . ".join(_r2gen_sentences(text)) + " ."


def clean_report_mimic_cxr(report: str) -> str:
    """R2Gen's MIMIC-CXR cleaning, reproduced exactly: IU's chain after newline/underscore/space folding."""
    text = report.replace("\n", " ")
    text = _replace_times(text, "__", "_", 7)
    text = _replace_times(text, "  ", " ", 6)
    text = _replace_times(text, "..", ".", 8)
    return " . ".join(_r2gen_sentences(text)) + " ."


def handle_deid(text: str, mode: str = "keep") -> str:
    """Apply a de-identification policy (``keep`` / ``drop_token`` / ``drop_sentence``) to raw text."""
    if mode not in DEID_MODES:
        raise ValueError(f"deid must be one of {DEID_MODES}, got {mode!r}")
    if mode == "keep" or not DEID_PATTERN.search(text):
        return text
    if mode == "drop_sentence":
        kept = [s for s in _SENTENCE_END.split(text.strip()) if not DEID_PATTERN.search(s)]
        return " ".join(kept)
    text = DEID_PATTERN.sub(" ", text)
    # Deleting a word leaves "Normal ." or "( )": re-attach punctuation and squeeze spaces.
    text = re.sub(r"\(\s*\)", "", text)
    text = re.sub(r"\s+([.,;:)])", r"\1", text)
    return " ".join(text.split())


def clean_report(text: str, style: str = "raw", deid: str = "keep") -> str:
    """Normalise one report: de-identification policy first, then the cleaning ``style``.

    The result never carries leading/trailing or repeated whitespace; for the R2Gen styles it equals the
    text R2Gen scores. An all-empty result is returned as ``""`` (R2Gen would give ``" ."``) so callers
    can treat it as an empty report.
    """
    if style not in CLEANING_STYLES:
        raise ValueError(f"cleaning style must be one of {CLEANING_STYLES}, got {style!r}")
    text = handle_deid(text, deid)
    if not text.strip():
        return ""
    if style == "r2gen_iu":
        text = clean_report_iu_xray(text)
    elif style == "r2gen_mimic":
        text = clean_report_mimic_cxr(text)
    words = text.split()
    if all(w == "." for w in words):
        return ""
    return " ".join(words)


def truncate_words(text: str, max_words: int | None) -> str:
    """Keep the first ``max_words`` whitespace tokens (R2Gen truncates references to max_seq_length - 1)."""
    if max_words is None:
        return text
    if max_words < 1:
        raise ValueError(f"max_report_words must be >= 1 or None, got {max_words}")
    return " ".join(text.split()[:max_words])


def resolve_cleaning(cleaning: str, dataset: str) -> str:
    """Map the config value ``raw`` / ``r2gen`` (or an explicit style) to a style for ``dataset``.

    ``r2gen`` means R2Gen's cleaner for that dataset: the MIMIC-CXR one for ``mimic_cxr``, the IU X-ray
    one otherwise (synthetic reports are IU-like single paragraphs).
    """
    if cleaning == "r2gen":
        return "r2gen_mimic" if dataset == "mimic_cxr" else "r2gen_iu"
    if cleaning not in CLEANING_STYLES:
        raise ValueError(f"cleaning must be 'raw', 'r2gen' or one of {CLEANING_STYLES}, got {cleaning!r}")
    return cleaning
