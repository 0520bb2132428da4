"""A visible code of a report's sentences, drawn into its synthetic image (issue 16).

Real report text mostly states normal anatomy ("The heart is normal in size. The lungs are clear."): the
chest phantom of :func:`rrg_trl.data.synthetic.synthesize_xray` draws only affirmed findings, so most IU X-ray
reports get the same-looking image and a policy gains nothing from looking at it (it wrote one report for
every study). Here every sentence of the report, normalised (lower-cased words, punctuation dropped), lights
``CELLS_PER_SENTENCE`` cells, picked by a stable hash of that sentence, of a ``GRID`` x ``GRID`` grid laid
over the image: the image carries which sentences (not their order) the report states, as a bar code would,
in blocks large enough for the tiny vision tower's 14-pixel patches. A sentence seen often in training (a
radiologist's normal template) becomes learnable from its cells. The result is SYNTHETIC and labelled so.
"""

from __future__ import annotations

import re
import zlib

import numpy as np

from rrg_trl.metrics.degeneracy import report_words

GRID = 8
CELLS_PER_SENTENCE = 3
CODE_BRIGHTNESS = 0.6  # added to the lit cells (image values are 0..1)
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+")


def normalised_sentences(report: str) -> list[str]:
    """The report's sentences as lower-cased words joined by single spaces (empty sentences dropped)."""
    sentences = (" ".join(report_words(s)) for s in _SENTENCE_END.split(report))
    return [s for s in sentences if s]


def sentence_cells(sentence: str) -> list[int]:
    """The ``CELLS_PER_SENTENCE`` distinct grid cells (row-major indices) a normalised sentence lights."""
    value = zlib.crc32(sentence.encode("utf-8"))
    cells: list[int] = []
    while len(cells) < CELLS_PER_SENTENCE:
        cell = value % (GRID * GRID)
        value = value // (GRID * GRID) or zlib.crc32(str(value + len(cells)).encode())
        if cell not in cells:
            cells.append(cell)
    return cells


def code_mask(report: str, size: int) -> np.ndarray:
    """A ``size`` x ``size`` float mask, 1 on the cells the report's sentences light, else 0."""
    mask = np.zeros((size, size), dtype=np.float32)
    edges = np.linspace(0, size, GRID + 1).round().astype(int)
    for sentence in normalised_sentences(report):
        for cell in sentence_cells(sentence):
            row, col = divmod(cell, GRID)
            mask[edges[row] : edges[row + 1], edges[col] : edges[col + 1]] = 1.0
    return mask
