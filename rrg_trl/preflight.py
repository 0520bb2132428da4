"""Checks every stage runs before any data or model loads: a mistake costs seconds, not a model load.

:func:`preflight` refuses an ``output_dir`` that is a file, a policy path that does not exist, reward names or
weight counts that cannot work, and a damaged or already finished checkpoint to resume from; it returns the
checkpoint to resume from (after saying on the console where, and how many steps remain).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from rrg_trl.checkpoints import CheckpointError, check_checkpoint, plan_resume, resolve_resume_checkpoint

logger = logging.getLogger(__name__)

_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
_OFF = {"", "0", "false", "no", "off"}


class PreflightError(ValueError):
    """A stage's arguments cannot work; raised before anything loads, naming the field and what to fix."""


PREFLIGHT_ERRORS = (PreflightError, CheckpointError)  # what `rrg-trl` reports in one line


def preflight(script_args: Any, training_args: Any, model_args: Any) -> str | None:
    """Run the checks (module docstring); returns the checkpoint to resume from, or None to start fresh."""
    check_output_dir(training_args.output_dir)
    check_model_path("model_name_or_path", model_args.model_name_or_path)
    for field in ("vision_model_name_or_path", "text_model_name_or_path"):
        check_model_path(field, getattr(script_args, field, None))
    if hasattr(script_args, "reward_funcs"):
        check_rewards(script_args, getattr(training_args, "reward_weights", None))
    checkpoint = resolve_resume_checkpoint(training_args.resume_from_checkpoint, training_args.output_dir)
    if checkpoint is not None:
        check_checkpoint(checkpoint)
        plan_resume(checkpoint, training_args.max_steps, training_args.num_train_epochs)
    return checkpoint


def check_output_dir(output_dir: str | os.PathLike) -> None:
    path = Path(output_dir)
    blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise PreflightError(f"output_dir={str(output_dir)!r}: {blocker} is a file, not a directory")


def _hub_offline() -> bool:
    return any(
        os.environ.get(v, "").strip().lower() not in _OFF for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def check_model_path(field: str, value: str | None) -> None:
    """A local directory, or a hub id the hub (or, offline, its cache) can supply."""
    if value is None or value.strip().lower() in ("", "none", "null") or Path(value).is_dir():
        return
    if Path(value).exists():
        raise PreflightError(f"{field}={value!r} is a file: point it at a model or adapter directory")
    looks_local = not _REPO_ID.match(value) or Path(value.split("/")[0]).is_dir()
    if looks_local:
        raise PreflightError(f"{field}={value!r}: no such directory (from {os.getcwd()})")
    if _hub_offline():
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(value, "config.json"), str):
            raise PreflightError(
                f"{field}={value!r}: no such directory, and it is not in the hub cache while HF_HUB_OFFLINE "
                "is set: point it at a local model directory (or download it first)"
            )


def check_rewards(script_args: Any, reward_weights: Any) -> None:
    """Each reward name is known or an importable dotted path; one weight per reward."""
    from rrg_trl.reward_setup import import_reward
    from rrg_trl.rewards import registered_name

    names = list(script_args.reward_funcs)
    for name in names:
        if not registered_name(name):
            try:
                import_reward(name)
            except ValueError as error:
                raise PreflightError(f"reward_funcs: {error}") from None
    if reward_weights is not None and len(reward_weights) != len(names):
        raise PreflightError(
            f"reward_weights has {len(reward_weights)} values for {len(names)} reward_funcs {names}: "
            "give one weight per reward"
        )


def model_context(model: Any) -> int | None:
    """The policy's context length in tokens (its text model's ``max_position_embeddings``)."""
    config = getattr(model, "config", None)
    for part in (getattr(config, "text_config", None), config):
        value = getattr(part, "max_position_embeddings", None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def warn_long_reports(
    dataset: Any, *, tokenizer: Any = None, context: int | None = None, max_text_chars: int | None = None
) -> int:
    """Warn (once the data is loaded) about reports longer than the model's context in tokens, or than the
    reward server's ``max_text_chars`` (it would refuse them); returns how many there are. Run after the data
    loads because only then are the reports known; the policy's tokenizer is needed for the token check."""
    columns = dataset.with_format(None)
    reports, ids = columns["report"], columns["id"] if "id" in dataset.column_names else None
    checks = []
    if tokenizer is not None and context:
        # A character is at most 4 tokens (4 UTF-8 bytes, byte-level BPE), so shorter reports cannot exceed it.
        lengths = [0] * len(reports)
        suspects = [i for i, r in enumerate(reports) if 4 * len(r) > context]
        if suspects:
            tokens = tokenizer([reports[i] for i in suspects], add_special_tokens=False)["input_ids"]
            for i, ids_ in zip(suspects, tokens, strict=True):
                lengths[i] = len(ids_)
        checks.append((lengths, context, "tokens", "the model's context"))
    if max_text_chars:
        checks.append(
            ([len(r) for r in reports], max_text_chars, "characters", "the reward server's max_text_chars")
        )
    too_long = 0
    for lengths, limit, unit, what in checks:
        over = [i for i, n in enumerate(lengths) if n > limit]
        if not over:
            continue
        too_long = max(too_long, len(over))
        worst = max(over, key=lambda i: lengths[i])
        logger.warning(
            "%d of %d reports are longer than %s (%d %s); the longest, study %r, has %d: set max_report_words "
            "in the data config or drop them",
            len(over),
            len(lengths),
            what,
            limit,
            unit,
            ids[worst] if ids is not None else worst,
            lengths[worst],
        )
    return too_long
