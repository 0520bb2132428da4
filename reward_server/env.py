"""The ``RRG_REWARD_*`` environment variables every reward client reads (TRL, OpenRLHF file mode, verl).

One parser, so a variable means the same thing in every stack: ``RRG_REWARD_URLS`` (comma-separated
replicas), ``RRG_REWARD_API_KEY``, ``RRG_REWARD_TIMEOUT_S``, ``RRG_REWARD_RETRY_BUDGET_S``,
``RRG_REWARD_REFERENCE_COLUMN``, ``RRG_REWARD_MODEL_DIR`` (score in-process, no server),
``RRG_REWARD_DEVICE`` (its device), ``RRG_REWARD_MAX_CONSECUTIVE_FAILURES``, and for OpenRLHF's file mode
``RRG_REWARD_POLICY_TOKENIZER`` / ``RRG_REWARD_OPENRLHF_STRIP`` (whitespace-separated), the equivalents of
``rrg-reward serve --policy-tokenizer`` / ``--openrlhf-strip``; ``RRG_REWARD_RAY=1`` (call the Ray Serve handle
instead of HTTP, inside the Ray cluster) and ``RRG_REWARD_RAY_APP`` (its application name).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8000"
ENV_VARS = {
    "urls": "RRG_REWARD_URLS",
    "api_key": "RRG_REWARD_API_KEY",
    "timeout_s": "RRG_REWARD_TIMEOUT_S",
    "retry_budget_s": "RRG_REWARD_RETRY_BUDGET_S",
    "reference_column": "RRG_REWARD_REFERENCE_COLUMN",
    "model_dir": "RRG_REWARD_MODEL_DIR",
    "device": "RRG_REWARD_DEVICE",
    "max_consecutive_failures": "RRG_REWARD_MAX_CONSECUTIVE_FAILURES",
    "policy_tokenizer": "RRG_REWARD_POLICY_TOKENIZER",
    "openrlhf_strip": "RRG_REWARD_OPENRLHF_STRIP",
    "ray": "RRG_REWARD_RAY",
    "ray_app": "RRG_REWARD_RAY_APP",
}
_FLOATS = ("timeout_s", "retry_budget_s")
_INTS = ("max_consecutive_failures",)
_BOOLS = ("ray",)


def parse_flag(raw: str) -> bool:
    """``1`` / ``true`` / ``yes`` / ``on`` (any case) are true, anything else false."""
    return raw.strip().lower() in ("1", "true", "yes", "on")


def split_urls(raw: str) -> tuple[str, ...]:
    return tuple(u.strip() for u in raw.split(",") if u.strip())


def read_env(
    names: tuple[str, ...] | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Parsed values of the variables that are set and non-empty (``names`` limits which are read)."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name, var in ENV_VARS.items():
        raw = environ.get(var)
        if (names is not None and name not in names) or raw is None or raw == "":
            continue
        try:
            if name == "urls":
                values[name] = split_urls(raw)
            elif name == "openrlhf_strip":
                values[name] = tuple(raw.split())
            elif name in _BOOLS:
                values[name] = parse_flag(raw)
            else:
                values[name] = float(raw) if name in _FLOATS else int(raw) if name in _INTS else raw
        except ValueError:
            raise ValueError(
                f"{var}={raw!r} is not a valid {'number' if name in _FLOATS else 'integer'}"
            ) from None
    return values
