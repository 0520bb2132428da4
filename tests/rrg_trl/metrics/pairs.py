"""Text pairs for the NLG metric tests (synthetic ones that always exist, real IU X-ray ones when shared)
and the glue to pycocoevalcap, the reference."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

from reward_server.tinykit.corpus import synthetic_reports


def _mutate(text: str, rng: random.Random) -> str:
    """A plausible hypothesis derived from a reference: drops, repeats, swaps and case changes."""
    words = text.split(" ")
    kind = rng.randrange(6)
    if kind == 0:
        return text
    if kind == 1:
        return " ".join(w for w in words if rng.random() > 0.3)
    if kind == 2:
        return " ".join(w for word in words for w in ([word, word] if rng.random() < 0.2 else [word]))
    if kind == 3:
        i = rng.randrange(len(words))
        return " ".join(words[i:] + words[:i])
    if kind == 4:
        return text.lower()
    return " ".join(words[: max(1, len(words) // 3)])


def synthetic_pairs(n: int = 300, seed: int = 11) -> tuple[list[str], list[list[str]]]:
    """Hypotheses and 1-3 references each, with the edge cases every metric must survive appended."""
    rng = random.Random(seed)
    pool = synthetic_reports(n + 50, seed=seed)
    hyps, refs = [], []
    for i in range(n):
        sample_refs = [pool[i]] + rng.sample(pool, rng.randrange(3))
        hyps.append(_mutate(pool[i], rng) if rng.random() < 0.8 else rng.choice(pool))
        refs.append(sample_refs)
    edge = [
        ("", [pool[0]]),  # empty hypothesis
        ("lungs", [pool[1]]),  # single token
        (pool[2], [pool[2]]),  # identical
        ("clear", ["clear"]),  # identical single token
        (pool[3], [""]),  # empty reference
        (pool[4], ["", pool[4].lower()]),  # an empty and a case-changed reference
        ("no  acute   process .", ["no acute process ."]),  # repeated spaces: ROUGE's split(" ") sees them
        ("no\tacute process .", ["no acute\tprocess ."]),  # tabs: BLEU/CIDEr split them, ROUGE does not
        ("the the the the", ["the cat"]),  # clipping
        ("a b c d", ["d c b a"]),  # unigrams without bigrams
    ]
    for hyp, sample_refs in edge:
        hyps.append(hyp)
        refs.append(sample_refs)
    return hyps, refs


def iu_report_pairs(annotation: Path, n: int = 300) -> tuple[list[str], list[list[str]]]:
    """``n`` real IU X-ray report pairs: each report against its neighbour, every 5th with two references."""
    data = json.loads(annotation.read_text())
    reports = [item["report"] for split in ("val", "train") for item in data.get(split, [])][: n + 1]
    if len(reports) < n + 1:
        raise ValueError(f"{annotation} has fewer than {n + 1} reports")
    refs = [[reports[i + 1]] + ([reports[i - 1]] if i % 5 == 0 else []) for i in range(n)]
    return reports[:n], refs


def as_coco(hyps: list[str], refs: list[list[str]]) -> tuple[dict, dict]:
    """pycocoevalcap's input: ``gts`` {id: [references]} and ``res`` {id: [hypothesis]}."""
    return {i: list(r) for i, r in enumerate(refs)}, {i: [h] for i, h in enumerate(hyps)}


def assert_close(ours: float, reference: float, what: str) -> None:
    """Pure-Python parity: equal to 1e-9 relative (tiny BLEU values are compared at 1e-12 absolute)."""
    assert math.isclose(ours, reference, rel_tol=1e-9, abs_tol=1e-12), f"{what}: {ours!r} != {reference!r}"
