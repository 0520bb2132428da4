"""The tiny-checkpoint kit: small RANDOM models written in the exact official on-disk formats.

No model hub is reachable in CI, so every test (and the offline demo) runs the real loading code against
files written here. ``make_tiny(DIR)`` produces the same layout as ``rrg-reward download DIR``
(see :mod:`reward_server.radcliq.model_files`), deterministic for a given seed, plus the marker that says its weights
are random (``RANDOM_WEIGHTS.json``, which the loader reads so every output can say so). ``size="base"`` writes the same
files with real shapes (BERT-base backbones, distilroberta) for benchmarks.
"""

from __future__ import annotations

import shutil
from pathlib import Path

SIZES = ("tiny", "base")


def make_tiny(out_dir: str | Path, seed: int = 0, size: str = "tiny", overwrite: bool = True) -> Path:
    """Write the full scorer kit to ``out_dir``, mark it random and record its checksums (marker included)."""
    from reward_server.radcliq.model_files import write_checksums, write_random_weights_marker
    from reward_server.tinykit.corpus import tokenizer_corpus
    from reward_server.tinykit.encoders import write_bertscore_model, write_chexbert
    from reward_server.tinykit.radgraph import write_radgraph

    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out} is not empty")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    corpus = tokenizer_corpus(seed)
    write_bertscore_model(out, corpus, seed=seed, size=size)
    write_chexbert(out, corpus, seed=seed, size=size)
    write_radgraph(out, corpus, seed=seed, size=size)
    write_random_weights_marker(out, seed=seed, size=size)
    write_checksums(out)
    return out
