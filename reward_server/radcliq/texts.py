"""Input checks shared by the metric modules: bad input fails loudly, naming the offending index.

Empty and whitespace-only strings are valid reports (the reference scores them); anything that is not a
``str`` is not, and neither are ``str``/``bytes`` passed where a list of texts is expected.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def check_texts(texts: Any, name: str = "texts") -> list[str]:
    """Return ``texts`` as a list, or raise ValueError naming the first item that is not a string."""
    if texts is None or isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
        raise ValueError(f"{name} must be a list of strings, got {type(texts).__name__}")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"{name}[{i}] must be a string, got {type(text).__name__}")
    return list(texts)


def check_pairs(hyps: Any, refs: Any) -> tuple[list[str], list[str]]:
    """Validate two aligned lists of texts (hypotheses and references)."""
    hyps = check_texts(hyps, "hyps")
    refs = check_texts(refs, "refs")
    if len(hyps) != len(refs):
        raise ValueError(f"hyps and refs must have the same length, got {len(hyps)} and {len(refs)}")
    return hyps, refs
