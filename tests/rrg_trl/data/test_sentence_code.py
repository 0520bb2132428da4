"""The sentence code: which normalised sentences a report states, drawn as lit cells the tiny tower can read."""

from __future__ import annotations

import numpy as np

from rrg_trl.data.sentence_code import (
    CELLS_PER_SENTENCE,
    GRID,
    code_mask,
    normalised_sentences,
    sentence_cells,
)
from rrg_trl.data.synthetic import synthesize_xray

NORMAL = "The heart is normal in size. The mediastinum is unremarkable. The lungs are clear."
OTHER = "Heart size normal. Lungs are clear. No pneumothorax or pleural effusion."


def test_sentences_are_normalised_words():
    assert normalised_sentences("The lungs are CLEAR.  No effusion!  ") == [
        "the lungs are clear",
        "no effusion",
    ]
    assert normalised_sentences("...") == []


def test_each_sentence_lights_its_own_cells_whatever_the_order_or_punctuation():
    cells = sentence_cells("the lungs are clear")
    assert len(set(cells)) == CELLS_PER_SENTENCE and all(0 <= c < GRID * GRID for c in cells)
    reordered = "The lungs are clear. The mediastinum is unremarkable. the heart is normal in size"
    assert np.array_equal(code_mask(NORMAL, 56), code_mask(reordered, 56))
    assert not np.array_equal(code_mask(NORMAL, 56), code_mask(OTHER, 56))
    lit = sum(len(set(sentence_cells(s))) for s in normalised_sentences(NORMAL))
    assert code_mask(NORMAL, 56).sum() > 0 and code_mask(NORMAL, 56).max() == 1.0 and lit <= 9


def test_the_code_is_drawn_only_when_asked():
    plain = np.asarray(synthesize_xray(NORMAL, size=56, seed=3), dtype=float)
    again = np.asarray(synthesize_xray(OTHER, size=56, seed=3), dtype=float)
    assert np.array_equal(plain, again)  # two normal reports: the same phantom
    coded = np.asarray(synthesize_xray(NORMAL, size=56, seed=3, sentence_code=True), dtype=float)
    other = np.asarray(synthesize_xray(OTHER, size=56, seed=3, sentence_code=True), dtype=float)
    assert np.abs(coded - other).mean() > 10  # grey levels: visibly different images
    assert (coded - plain)[code_mask(NORMAL, 56) > 0].mean() > 50
