"""Existing outputs to score: a JSONL file of hypotheses, with references inline or looked up by study id.

Each line is a JSON object with the hypothesis under ``hypothesis_key``. References come from the line
(``reference_key``) when every line has one; otherwise every line needs an ``id`` that names a study of the
evaluated split, whose ``report`` becomes the reference (and whose ``synthetic`` / ``source`` flags carry over).
The per-sample JSONL that ``rrg_trl.evaluate`` writes is itself a valid input (``hypothesis`` / ``reference``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class EvalSample:
    """One pair to score and where it comes from (``synthetic`` labels generated data in every output)."""

    id: str
    hypothesis: str
    reference: str
    synthetic: bool
    source: str
    split: str | None = None


def read_jsonl(path: str | Path) -> list[tuple[int, dict]]:
    """``(line number, object)`` for each line of a JSONL file; blank lines are skipped, non-objects are errors."""
    rows = []
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"hypotheses file {path} does not exist")
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{n}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{n}: expected a JSON object, got {type(row).__name__}")
        rows.append((n, row))
    if not rows:
        raise ValueError(f"{path} holds no hypotheses")
    return rows


def _check_unique_ids(path: str | Path, rows: list[tuple[int, dict]]) -> None:
    """A repeated id would weigh that study several times in corpus BLEU / CIDEr."""
    first: dict[str, int] = {}
    for n, row in rows:
        if "id" not in row:
            continue
        sid = str(row["id"])
        if sid in first:
            raise ValueError(
                f"{path}:{n}: id {sid!r} repeats line {first[sid]}: one hypothesis per study (a repeated study "
                "would count several times in the corpus metrics)"
            )
        first[sid] = n


def samples_from_jsonl(
    path: str | Path,
    *,
    hypothesis_key: str = "hypothesis",
    reference_key: str = "reference",
    dataset: Any | Callable[[], Any] | None = None,
) -> list[EvalSample]:
    """Pairs from a hypotheses JSONL.

    ``dataset``: the evaluated split (or a function that loads it, called only when needed); it supplies the
    references by ``id`` when the file has none.
    """
    rows = read_jsonl(path)
    for n, row in rows:
        if not isinstance(row.get(hypothesis_key), str):
            raise ValueError(
                f"{path}:{n}: field {hypothesis_key!r} must be a string, got {row.get(hypothesis_key)!r}"
            )
    _check_unique_ids(path, rows)
    with_reference = [n for n, row in rows if isinstance(row.get(reference_key), str)]
    inline = len(with_reference) == len(rows)
    if with_reference and not inline:
        missing = next(n for n, row in rows if not isinstance(row.get(reference_key), str))
        raise ValueError(
            f"{path}: {len(with_reference)} of {len(rows)} lines carry a {reference_key!r} (e.g. line "
            f"{with_reference[0]}) and the others do not (e.g. line {missing}): give every line its reference, "
            "or none (then they are all looked up by 'id' in the data)"
        )
    if inline:
        return [
            EvalSample(
                id=str(row.get("id", n)),
                hypothesis=row[hypothesis_key],
                reference=row[reference_key],
                synthetic=bool(row.get("synthetic", False)),
                source=str(row.get("source", "hypotheses file")),
                split=row.get("split"),
            )
            for n, row in rows
        ]
    missing = next(n for n, row in rows if not isinstance(row.get(reference_key), str))
    if dataset is None:
        raise ValueError(
            f"{path}:{missing}: no {reference_key!r} string; without references in the file, give a "
            f"dataset (data config) so references can be looked up by 'id'"
        )
    if callable(dataset):
        dataset = dataset()
    index = {sid: i for i, sid in enumerate(dataset["id"])}
    reports, synthetic, sources, splits = (dataset[c] for c in ("report", "synthetic", "source", "split"))
    samples = []
    for n, row in rows:
        sid = row.get("id")
        if sid is None:
            raise ValueError(f"{path}:{n}: no {reference_key!r} and no 'id' to look the reference up by")
        if str(sid) not in index:
            raise ValueError(
                f"{path}:{n}: id {sid!r} is not a study of the evaluated split "
                f"({len(index)} studies, e.g. {next(iter(index), None)!r})"
            )
        i = index[str(sid)]
        samples.append(
            EvalSample(
                id=str(sid),
                hypothesis=row[hypothesis_key],
                reference=reports[i],
                synthetic=bool(synthetic[i]),
                source=sources[i],
                split=splits[i],
            )
        )
    return samples
