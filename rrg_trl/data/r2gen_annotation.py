"""R2Gen's ``annotation.json`` (IU X-ray and MIMIC-CXR): read and validate, entry by entry.

Format: ``{split: [entry, ...]}`` with entries ``{"id", "report", "image_path": [...], "split", ...}``.
Quirk of the widely copied IU X-ray file: the test list's key is four spaces, not ``"test"``; the
entries still say ``"split": "test"``, so the entry's own ``split`` wins and the key is only checked
for consistency when it is not blank.
"""

from __future__ import annotations

import json
from pathlib import Path

from rrg_trl.data.builder import normalise_split
from rrg_trl.data.errors import DataError, ProblemLog


def read_r2gen_annotation(path: str | Path, problems: ProblemLog, source: str = "r2gen") -> list[dict]:
    """Validated entries of an R2Gen ``annotation.json`` (IU X-ray or MIMIC-CXR), in file order.

    Each returned dict has ``id``, ``report``, ``image_path`` (list of str) and a normalised ``split``;
    other keys pass through. A file that is not JSON, or not a mapping of split -> list, raises; a bad
    entry is reported to ``problems`` (raise or counted skip).
    """
    path = Path(path)
    data = _read_json(path, source)
    entries, seen = [], set()
    for key, items in data.items():
        for index, entry in enumerate(items):
            where = f"entry {index} of split {key!r}"
            study_id = entry.get("id") if isinstance(entry, dict) else None
            label = study_id if isinstance(study_id, str) and study_id else f"<{where}>"
            problem = _annotation_problem(entry, key)
            if problem is None and study_id in seen:
                problem = "duplicate id"
            if problem is not None:
                problems.report(source, label, "malformed_annotation", f"{where}: {problem}", file=str(path))
                continue
            seen.add(study_id)
            split = normalise_split(entry.get("split") or key)
            entries.append({**entry, "split": split})
    return entries


def _read_json(path: Path, source: str) -> dict:
    """The annotation's ``{split: [entry, ...]}`` mapping; UTF-8 with or without a BOM."""
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    try:
        data = json.loads(path.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError as error:
        raise DataError(
            f"{source}: annotation is not UTF-8 [{path}] (byte {error.object[error.start]:#04x} at offset "
            f"{error.start}); re-save it as UTF-8, e.g. `iconv -f latin1 -t utf-8`"
        ) from error
    except json.JSONDecodeError as error:
        raise DataError(f"{source}: annotation is not valid JSON [{path}] ({error})") from error
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise DataError(f"{source}: annotation must map split names to lists of studies [{path}]")
    return data


def annotation_splits(path: str | Path) -> list[str]:
    """The split names an annotation file holds (normalised: R2Gen's blank test key reads ``test``)."""
    data = _read_json(Path(path), "r2gen")
    return sorted({normalise_split(key) if key.strip() else "test" for key in data})


def _annotation_problem(entry, key: str) -> str | None:
    if not isinstance(entry, dict):
        return f"expected an object, got {type(entry).__name__}"
    if not isinstance(entry.get("id"), str) or not entry["id"].strip():
        return "missing or empty 'id'"
    if not isinstance(entry.get("report"), str):
        return "missing 'report' (must be a string)"
    paths = entry.get("image_path")
    if not isinstance(paths, list) or not all(isinstance(p, str) and p for p in paths):
        return "'image_path' must be a list of relative paths"
    split = entry.get("split")
    if split is not None and not isinstance(split, str):
        return "'split' must be a string"
    if split and key.strip() and normalise_split(split) != normalise_split(key):
        return f"'split' is {split!r} but the entry is listed under {key!r}"
    return None
