"""Hypothesis/reference pairs for parity tests: every kind of input the metrics must treat like the reference.

From a list of reports (real IU X-ray findings, or synthetic ones when ../shared is absent) build pairs that
are identical, edited (dropped/swapped words, changed case, a sentence removed), unrelated, empty,
whitespace-only, padded with runs of spaces/tabs/newlines, tiny (one word, one character, punctuation), and
over-length (several reports joined: > 512 tokens for both tokenizers), in a fixed pseudo-random order.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

KINDS = ("identical", "edited", "unrelated", "empty", "whitespace", "spaces", "tiny", "long")
LONG_EVERY = 12  # over-length texts dominate the reference's run time; a few per dozen pairs are enough


def _edit(rng: random.Random, text: str) -> str:
    words = text.split(" ")
    kind = rng.randrange(5)
    if kind == 0 and len(words) > 3:  # drop words
        return " ".join(w for w in words if rng.random() > 0.25)
    if kind == 1 and len(words) > 3:  # swap two words
        i, j = rng.sample(range(len(words)), 2)
        words[i], words[j] = words[j], words[i]
        return " ".join(words)
    if kind == 2:
        return text.upper() if rng.random() < 0.5 else text.lower()
    if kind == 3 and ". " in text:  # remove one sentence
        sentences = text.split(". ")
        del sentences[rng.randrange(len(sentences))]
        return ". ".join(sentences)
    return "No " + text[:1].lower() + text[1:]


def make_pairs(reports: list[str], n: int, seed: int = 0) -> list[tuple[str, str, str]]:
    """``n`` (hypothesis, reference, kind) triples: every ``LONG_EVERY``-th is "long", the rest cycle ``KINDS``."""
    rng = random.Random(seed)
    reports = [r for r in reports if r.strip()]
    long_text = " ".join(reports[:40])
    while len(long_text.split()) < 700:
        long_text += " " + long_text
    out = []
    for i in range(n):
        kind = "long" if i % LONG_EVERY == LONG_EVERY - 1 else KINDS[i % (len(KINDS) - 1)]
        ref = rng.choice(reports)
        if kind == "identical":
            hyp = ref
        elif kind == "edited":
            hyp = _edit(rng, ref)
        elif kind == "unrelated":
            hyp = rng.choice(reports)
        elif kind == "empty":
            hyp = ""
            if rng.random() < 0.3:
                hyp, ref = ref, ""
        elif kind == "whitespace":
            hyp = rng.choice([" ", "   ", "\n", " \t \n "])
        elif kind == "spaces":
            hyp = rng.choice(["  ", "   ", "\t", " \n "]).join(ref.split(" ")) + rng.choice(["", "  ", "\n"])
            hyp = rng.choice(["", " ", "\n "]) + hyp
        elif kind == "tiny":
            hyp = rng.choice(["normal", "No.", ".", "x", "Effusion", "?", "3.5 cm", "(stable)"])
        else:  # long: a multi-report hypothesis beyond 512 tokens, sometimes against a long reference
            start = rng.randrange(len(long_text) // 3)
            hyp = long_text[start:]
            if rng.random() < 0.3:
                ref = long_text
        out.append((hyp, ref, kind))
    return out


def iu_reports(annotation: str | Path, split: str = "    ") -> list[str]:
    """FINDINGS texts of one split of the R2Gen IU X-ray annotation (the test split's key is 4 spaces)."""
    data = json.loads(Path(annotation).read_text())
    return [item["report"] for item in data[split]]
