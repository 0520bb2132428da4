"""Which checkpoint a stage resumes from (open-r1's ``get_last_checkpoint`` pattern, made explicit).

``resume_from_checkpoint`` (a TrainingArguments field, so a YAML key and a flag of every stage):

- unset: resume from the newest ``checkpoint-N`` in ``output_dir`` when there is one (a relaunched job
  continues), otherwise start fresh;
- ``true``: the same, and say so when there is nothing to resume;
- ``false``: always start fresh (older checkpoints in ``output_dir`` are left alone and later overwritten);
- a path: that checkpoint, which must exist.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from transformers.trainer_utils import get_last_checkpoint

logger = logging.getLogger(__name__)

_TRUE = {"true", "yes", "1", "last"}
_FALSE = {"false", "no", "0", "none", ""}


def last_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The newest ``checkpoint-N`` directory in ``output_dir`` (None when there is none)."""
    return get_last_checkpoint(str(output_dir)) if os.path.isdir(output_dir) else None


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
        if found:
            logger.info("resuming from the last checkpoint in %s: %s", output_dir, found)
        elif value is True:
            logger.info(
                "resume_from_checkpoint=true but %s has no checkpoint-N yet: starting fresh", output_dir
            )
        return found
    path = Path(value)
    if not path.is_dir():
        raise ValueError(f"resume_from_checkpoint={value!r} is not a directory")
    if not (path / "trainer_state.json").is_file():
        raise ValueError(
            f"resume_from_checkpoint={value!r} has no trainer_state.json: point it at a checkpoint-N directory "
            "(to start from trained weights instead, set model_name_or_path)"
        )
    return str(path)
