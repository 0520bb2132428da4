"""The image-ablation control: does the policy read the X-ray?

Each study's report is generated a second time, with the same prompt and decoding, from *another* study's
image (``shuffle``: a seeded derangement, so no study keeps its own image), and both reports are scored
against the study's own reference. A policy that reads the image loses reward when it sees the wrong one;
one that ignores it writes the same text either way and the gap is zero. The gap is the mean per-study
difference (own - shuffled) with its paired standard error.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

ABLATIONS = ("shuffle",)


def shuffle_permutation(n: int, seed: int) -> list[int]:
    """``perm[i]`` is the study whose image study ``i`` is shown: a seeded derangement (no fixed point)."""
    if n < 2:
        raise ValueError(f"the image ablation needs at least 2 studies to swap images between, got {n}")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    perm = [0] * n
    for k, study in enumerate(order):  # one cycle through a random order: nobody keeps their own image
        perm[study] = order[(k + 1) % n]
    return perm


def paired_gap(own: Sequence[float | None], ablated: Sequence[float | None]) -> dict[str, Any]:
    """Mean of ``own - ablated`` over the studies scored on both sides, with its standard error."""
    if len(own) != len(ablated):
        raise ValueError(f"{len(own)} own-image rewards for {len(ablated)} ablated ones")
    pairs = [
        (a, b)
        for a, b in zip(own, ablated, strict=True)
        if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)
    ]
    n = len(pairs)
    diffs = [a - b for a, b in pairs]
    gap = sum(diffs) / n if n else None
    sem = math.sqrt(sum((d - gap) ** 2 for d in diffs) / (n - 1) / n) if n > 1 else None
    return {
        "gap": gap,
        "sem": sem,
        "n": n,
        "missing": len(own) - n,
        "reward_own": sum(a for a, _ in pairs) / n if n else None,
        "reward_ablated": sum(b for _, b in pairs) / n if n else None,
    }


def describe_gap(result: dict[str, Any]) -> str:
    """One line for the table: the gap, its standard error, and whether it clears that error."""
    if result.get("gap") is None:
        return "Image ablation (shuffled images): no study could be scored on both sides."
    sem = result["sem"] or 0.0
    verdict = "beyond" if result["gap"] > sem else "NOT beyond"
    return (
        f"Image ablation ({result['mode']}: each study's report also generated from another study's image, "
        f"same decoding): reward own image {result['reward_own']:.4f}, shuffled {result['reward_ablated']:.4f}, "
        f"gap {result['gap']:+.4f} ± {sem:.4f} (s.e., {result['n']} studies): {verdict} its standard error."
    )
