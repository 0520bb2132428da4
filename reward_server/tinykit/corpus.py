"""A deterministic generator of synthetic chest X-ray findings.

The tiny kit must build on a fresh clone with no data (the IU X-ray text is CC BY-NC-ND and cannot be
shipped), so tokenizers are trained on text written here. The generator covers what the metrics'
tokenisers must survive: punctuation the RadGraph splitter cares about (``/ , : . ! ? ( )``), hyphenated
and percent tokens it must not split, measurements with decimals, mixed case, negation, uncertainty and
support devices. Every text produced here is synthetic and is labelled so wherever it is used.
"""

from __future__ import annotations

import random

SIDES = ["right", "left", "bilateral"]
ZONES = ["upper", "middle", "lower"]
LOBES = [
    "right upper lobe",
    "right middle lobe",
    "right lower lobe",
    "left upper lobe",
    "left lower lobe",
    "lingula",
]
SEVERITY = ["mild", "moderate", "severe", "small", "large", "trace", "minimal"]
FINDINGS = [
    "atelectasis",
    "consolidation",
    "pleural effusion",
    "pneumothorax",
    "pulmonary edema",
    "opacity",
    "nodule",
    "mass",
    "granuloma",
    "emphysema",
    "scarring",
    "pneumonia",
    "interstitial markings",
    "hyperinflation",
    "airspace disease",
    "fibrosis",
    "bronchiectasis",
    "infiltrate",
]
DEVICES = [
    "endotracheal tube",
    "nasogastric tube",
    "right internal jugular central venous catheter",
    "left-sided pacemaker",
    "sternotomy wires",
    "chest tube",
    "PICC line",
    "ICD",
]
NORMAL = [
    "The heart is normal in size.",
    "The cardiomediastinal silhouette is within normal limits.",
    "Heart size and pulmonary vascularity appear within normal limits.",
    "The lungs are clear.",
    "The lungs are clear bilaterally.",
    "No focal consolidation, pleural effusion, or pneumothorax.",
    "No acute cardiopulmonary abnormality.",
    "The trachea is midline.",
    "Bony structures are intact.",
    "Visualized osseous structures are without acute abnormality.",
    "The mediastinum is unremarkable.",
    "No pneumothorax or pleural effusion is seen.",
    "Pulmonary vasculature is normal.",
    "There is no evidence of pneumothorax.",
    "Costophrenic angles are sharp.",
    "The hila are unremarkable.",
    "No free air under the diaphragm.",
]
BONES = [
    "Degenerative changes are present in the thoracic spine.",
    "Old healed fracture of the {side} {ord} rib.",
    "Mild dextroscoliosis of the thoracic spine.",
    "Osteopenia is noted.",
    "Postsurgical changes of the {side} shoulder.",
]
UNCERTAIN = ["possibly", "likely", "may represent", "cannot exclude", "suspicious for", "concerning for"]
ORDINALS = ["4th", "5th", "6th", "7th", "8th", "9th"]
COMPARE = [
    "Compared to the prior study, {finding} is unchanged.",
    "Interval improvement of {finding}.",
    "Stable appearance of the chest since the prior exam (___).",
    "No significant change from prior radiograph dated ___.",
]


def _measure(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return f"{rng.randint(3, 30)} mm"
    return f"{rng.randint(1, 6)}.{rng.randint(0, 9)} cm"


# The shapes of an abnormal sentence, picked uniformly: (rng, finding, side) -> text, drawing the rest from rng.
_ABNORMAL = (
    lambda rng, finding, side: f"There is {rng.choice(SEVERITY)} {side} {finding}.",
    lambda rng, finding, side: f"{rng.choice(SEVERITY).capitalize()} {finding} in the {rng.choice(LOBES)}.",
    lambda rng, finding, side: (
        f"A {_measure(rng)} {finding} is seen in the {side} {rng.choice(ZONES)} lung zone."
    ),
    lambda rng, finding, side: f"Opacity at the {side} base, {rng.choice(UNCERTAIN)} {finding}.",
    lambda rng, finding, side: (
        f"No {finding}. {rng.choice(SEVERITY).capitalize()} {side} basilar atelectasis."
    ),
    lambda rng, finding, side: (
        f"The {rng.choice(DEVICES)} terminates {rng.randint(2, 7)}.{rng.randint(0, 9)} cm above the carina."
    ),
    lambda rng, finding, side: (
        f"Left-sided {finding}, approximately {rng.randint(5, 60)}% of the hemithorax."
    ),
    lambda rng, finding, side: f"Findings: {finding} (unchanged)/stable; clinical correlation recommended!",
)


def _abnormal(rng: random.Random) -> str:
    finding = rng.choice(FINDINGS)
    side = rng.choice(SIDES)
    return _ABNORMAL[rng.randrange(len(_ABNORMAL))](rng, finding, side)


def synthetic_report(rng: random.Random) -> str:
    """One synthetic findings section of 2-8 sentences."""
    sentences: list[str] = []
    n_normal = rng.randint(1, 5)
    sentences += rng.sample(NORMAL, n_normal)
    for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
        sentences.insert(rng.randrange(len(sentences) + 1), _abnormal(rng))
    if rng.random() < 0.3:
        sentences.append(
            rng.choice(BONES).format(side=rng.choice(["right", "left"]), ord=rng.choice(ORDINALS))
        )
    if rng.random() < 0.2:
        sentences.append(rng.choice(COMPARE).format(finding=rng.choice(FINDINGS)))
    text = " ".join(sentences)
    if rng.random() < 0.05:
        text = text.upper()
    return text


def synthetic_reports(n: int, seed: int = 0) -> list[str]:
    """``n`` deterministic synthetic reports (same seed, same list)."""
    rng = random.Random(seed)
    return [synthetic_report(rng) for _ in range(n)]


def tokenizer_corpus(seed: int = 0) -> list[str]:
    """Training text for the tiny tokenizers: reports plus every vocabulary word on its own line."""
    words = " ".join(
        NORMAL + FINDINGS + DEVICES + LOBES + SEVERITY + UNCERTAIN + SIDES + ZONES + BONES + COMPARE
    )
    return synthetic_reports(3000, seed) + [words, words.lower()]
