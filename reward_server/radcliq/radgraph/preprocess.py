"""RadGraph's report preprocessing (model_type "radgraph"), kept separate because every rule is a contract.

The reference (radgraph 0.1.18 as vendored by radeval) replaces an empty report by the word "None", then
surrounds each of the eight characters ``/ , : . ! ? ( )`` with whitespace and splits on whitespace. Its
regex reads ``[/,-,:,.,!?()]``, where ``,-,`` is the one-character range ``,``: the hyphen is NOT split.
"""

from __future__ import annotations

import re

EMPTY_REPORT = "None"
_SPLIT_CHARS = re.compile(r"([/,:.!?()])")


def split_report(text: str) -> list[str]:
    """The words RadGraph sees for one report (case kept). A whitespace-only report gives no words."""
    if not text:
        text = EMPTY_REPORT
    return _SPLIT_CHARS.sub(r" \1 ", text).split()


def normalize_word(word: str) -> str:
    """DyGIE's reader maps "/." and "/?" to "." and "?" for the model input only (never fires after the split)."""
    return word[1:] if word in ("/.", "/?") else word
