"""Which checkpoint a stage resumes from (open-r1's ``get_last_checkpoint`` pattern, made explicit and checked).

``resume_from_checkpoint`` (a TrainingArguments field, so a YAML key and a flag of every stage):

- unset: resume from the newest complete ``checkpoint-N`` in ``output_dir`` when there is one (a relaunched
  job continues), otherwise start fresh;
- ``true``: the same, and say so when there is nothing to resume;
- ``false``: always start fresh (older checkpoints in ``output_dir`` are left alone and later overwritten);
- a path: that checkpoint, which must exist.

A checkpoint is complete once the Trainer wrote ``trainer_state.json`` (its last file): a newer directory
without it (a save cut short) is skipped with a warning. The chosen checkpoint's files are checked before
anything loads (:func:`check_checkpoint`), and a checkpoint already at the run's ``max_steps`` is refused
(:func:`plan_resume`): resuming it would train zero steps and look like success.
"""

from __future__ import annotations

import json
import logging
import os
import re
import struct
import zipfile
from pathlib import Path

logger = logging.getLogger(__name__)

_TRUE = {"true", "yes", "1", "last"}
_FALSE = {"false", "no", "0", "none", ""}
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
STATE_FILE = "trainer_state.json"


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from; the message names it, the file, and what to do."""


def _checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """``checkpoint-N`` directories of ``output_dir``, newest (highest N) first."""
    if not os.path.isdir(output_dir):
        return []
    found = [p for p in Path(output_dir).iterdir() if _CHECKPOINT.match(p.name) and p.is_dir()]
    return sorted(found, key=_step, reverse=True)


def last_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The newest complete ``checkpoint-N`` in ``output_dir`` (None when there is none); newer incomplete
    ones (no ``trainer_state.json``: the save was cut short) are skipped with a warning."""
    for path in _checkpoints(output_dir):
        if (path / STATE_FILE).is_file():
            return str(path)
        logger.warning(
            "skipping %s: it has no %s (a save cut short); resuming from an older complete checkpoint "
            "if there is one (delete the directory to silence this)",
            path,
            STATE_FILE,
        )
    return None


def resolve_resume_checkpoint(
    resume_from_checkpoint: str | bool | None, output_dir: str | os.PathLike
) -> str | None:
    """The checkpoint to pass to ``trainer.train(resume_from_checkpoint=...)`` (see the module docstring)."""
    value = resume_from_checkpoint
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        value = value.strip().lower() in _TRUE
    if value is False:
        return None
    if value is None or value is True:
        found = last_checkpoint(output_dir)
        if found is None and value is True:
            logger.warning(
                "resume_from_checkpoint=true but %s has no checkpoint-N yet: starting fresh", output_dir
            )
        return found
    path = Path(value)
    if not path.is_dir():
        raise ValueError(f"resume_from_checkpoint={value!r} is not a directory")
    if not (path / STATE_FILE).is_file():
        raise ValueError(
            f"resume_from_checkpoint={value!r} has no {STATE_FILE}: point it at a checkpoint-N directory "
            "(to start from trained weights instead, set model_name_or_path)"
        )
    return str(path)


def _file_problem(path: Path) -> str | None:
    """What is wrong with one checkpoint file (cheap: headers and sizes, no tensor is read)."""
    suffix = path.suffix
    try:
        if suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif suffix == ".safetensors":
            return _safetensors_problem(path)
        elif suffix in (".pt", ".pth", ".bin"):
            with zipfile.ZipFile(path):  # torch.save's zip: a cut file has no central directory
                pass
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        return f"{type(error).__name__}: {error}"
    return None


def _safetensors_problem(path: Path) -> str | None:
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return f"{size} bytes: too short for a safetensors header"
        (header_len,) = struct.unpack("<Q", head)
        if 8 + header_len > size:
            return f"header of {header_len} bytes does not fit in the {size}-byte file"
        header = json.loads(f.read(header_len))
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + header_len + end > size:
        return f"truncated: tensors end at byte {8 + header_len + end}, the file has {size}"
    return None


def check_checkpoint(checkpoint: str | os.PathLike) -> None:
    """Raise :class:`CheckpointError` naming the checkpoint and the damaged file (truncated JSON,
    safetensors or torch zip), and the older checkpoint to resume from instead."""
    path = Path(checkpoint)
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        problem = _file_problem(file)
        if problem is None:
            continue
        older = [
            p for p in _checkpoints(path.parent) if _step(p) < _step(path) and (p / STATE_FILE).is_file()
        ]
        hint = (
            f"resume from the previous one with --resume_from_checkpoint {older[0]} (or delete {path})"
            if older
            else f"delete {path} to start fresh"
        )
        raise CheckpointError(f"checkpoint {path} is damaged: {file.name}: {problem}; {hint}")


def _step(path: Path) -> int:
    match = _CHECKPOINT.match(path.name)
    return int(match.group(1)) if match else -1


def plan_resume(checkpoint: str, max_steps: int, num_train_epochs: float) -> int:
    """The checkpoint's step, after saying on the console what remains; raises when nothing does."""
    try:
        state = json.loads(Path(checkpoint, STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CheckpointError(f"checkpoint {checkpoint}: cannot read {STATE_FILE} ({error})") from error
    step, epoch = int(state.get("global_step", 0)), float(state.get("epoch") or 0.0)
    finished = step >= max_steps if max_steps > 0 else epoch >= num_train_epochs
    target = f"max_steps={max_steps}" if max_steps > 0 else f"num_train_epochs={num_train_epochs:g}"
    if finished:
        raise CheckpointError(
            f"{checkpoint} is already at step {step} (epoch {epoch:g}), the end of this run ({target}): "
            "resuming would train nothing. To train a new model use another output_dir (or "
            "--resume_from_checkpoint false to overwrite this one); to train this one further raise "
            f"{target.split('=')[0]}"
        )
    remaining = f"{max_steps - step} steps remain" if max_steps > 0 else f"until epoch {num_train_epochs:g}"
    logger.warning("resuming from %s at step %d: %s (%s)", checkpoint, step, remaining, target)
    return step
