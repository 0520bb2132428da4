"""Structured synthetic reports whose every sentence is decided by what the image shows (the demo's default).

The tiny kit's corpus (:mod:`reward_server.tinykit.corpus`) picks most sentences at random ("The trachea is
midline.", "Bony structures are intact."), and nothing in a synthesized image can tell which: a policy can only
learn their average, and the image barely matters. Here a report is a fixed sequence of slots (heart, pleural
fluid, pneumothorax, lung parenchyma, devices); each slot is normal or shows one finding, with a side where
the finding has one, and :func:`rrg_trl.data.synthetic.synthesize_xray` draws exactly those findings. So the
whole report can be read off the image, as a radiologist's structured report can be read off a film: the
condition under which a tiny policy can learn, in a CPU demo, to describe the image it is shown.
Every text produced here is synthetic and is labelled so wherever it is used.
"""

from __future__ import annotations

import random

# Each slot: (normal sentence, [abnormal sentences, "{side}" filled with right/left]).
# No two sentences share a word trigram, so a report survives the trigram blocking of R2Gen-style decoding.
SLOTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("The heart is normal in size.", ("The heart is enlarged.",)),
    ("No pleural effusion.", ("Large {side} pleural effusion.",)),
    ("No pneumothorax.", ("Pneumothorax on the {side}.",)),
    ("The lungs are clear.", ("Consolidation in the {side} lower lobe.", "Mass in the {side} upper lobe.")),
    ("No support devices.", ("A left-sided pacemaker is present.",)),
)
ABNORMAL_RATE = 0.5


def findings_report(rng: random.Random) -> str:
    """One structured report: each slot normal, or (with probability ``ABNORMAL_RATE``) one finding."""
    sentences = []
    for normal, abnormal in SLOTS:
        if rng.random() < ABNORMAL_RATE:
            sentences.append(rng.choice(abnormal).format(side=rng.choice(("right", "left"))))
        else:
            sentences.append(normal)
    return " ".join(sentences)


def findings_reports(n: int, seed: int = 0) -> list[str]:
    """``n`` deterministic structured reports (same seed, same list)."""
    rng = random.Random(seed)
    return [findings_report(rng) for _ in range(n)]
