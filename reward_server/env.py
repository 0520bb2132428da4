"""The ``RRG_REWARD_*`` environment variables every reward client reads (TRL, OpenRLHF file mode, verl).

One parser, so a variable means the same thing in every stack: ``RRG_REWARD_URLS`` (comma-separated
replicas), ``RRG_REWARD_API_KEY``, ``RRG_REWARD_TIMEOUT_S``, ``RRG_REWARD_RETRY_BUDGET_S``,
``RRG_REWARD_REFERENCE_COLUMN``, ``RRG_REWARD_MODEL_DIR`` (score in-process, no server),
``RRG_REWARD_DEVICE`` (its device), ``RRG_REWARD_MAX_CONSECUTIVE_FAILURES``, and for OpenRLHF's file mode
``RRG_REWARD_POLICY_TOKENIZER`` / ``RRG_REWARD_OPENRLHF_STRIP`` (whitespace-separated), the equivalents of
``rrg-reward serve --policy-tokenizer`` / ``--openrlhf-strip``; ``RRG_REWARD_RAY=1`` (call the Ray Serve handle
instead of HTTP, inside the Ray cluster) and ``RRG_REWARD_RAY_APP`` (its application name).

:class:`RewardSettings` is where a reward backend comes from, with one field per variable (``reward_`` + its
key in :data:`ENV_VARS`): every stack and every ``rrg-trl`` command takes the same object and the same names.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

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


def setting(help: str) -> Any:
    """A settings field left ``None`` until :meth:`RewardSettings.__post_init__` resolves it."""
    return field(default=None, metadata={"help": help})


@dataclass
class RewardSettings:
    """Where rewards come from: a server's URLs, the Ray Serve handle, or an in-process scorer.

    A dataclass ``TrlParser`` turns into flags; fields left ``None`` take the ``RRG_REWARD_*`` variable of the
    same name, then their fallback, so one image / compose file can point every command at its reward server.
    The API key is never a field (it would land in recipes and summaries): ``reward_api_key_env`` names the
    variable that holds it. :func:`reward_server.integrations.scoring.open_backend` builds the backend.
    """

    reward_urls: list[str] | None = setting(
        "Reward server URL(s); several = replicas (default: $RRG_REWARD_URLS, else " + DEFAULT_URL + ")."
    )
    reward_api_key_env: str = field(
        default=ENV_VARS["api_key"],
        metadata={"help": "Environment variable holding the server's bearer token."},
    )
    reward_timeout_s: float | None = setting("Per-request timeout in seconds (default 300).")
    reward_retry_budget_s: float | None = setting(
        "How long one batch may keep retrying an unreachable server before giving up (default 600)."
    )
    reward_model_dir: str | None = setting("Score in-process from this scorer directory instead of a server.")
    reward_device: str | None = setting("Device of the in-process scorer (default: cuda if any).")
    reward_ray: bool | None = setting(
        "Call the Ray Serve reward deployment's handle instead of HTTP, inside its Ray cluster "
        "(rrg-reward serve --ray; default: $RRG_REWARD_RAY)."
    )
    reward_ray_app: str | None = setting("The Ray Serve application's name (default rrg-reward).")

    # What a field left unset takes when its variable is unset too (a subclass adds its own fields').
    FALLBACKS: ClassVar[dict[str, Any]] = {
        "reward_timeout_s": 300.0,
        "reward_retry_budget_s": 600.0,
        "reward_ray": False,
    }

    def __post_init__(self):
        env = read_env()
        for f in fields(self):
            key = f.name.removeprefix("reward_")
            if getattr(self, f.name) is None and key in ENV_VARS:
                setattr(self, f.name, env.get(key, self.FALLBACKS.get(f.name)))
        if isinstance(self.reward_urls, str):
            self.reward_urls = list(split_urls(self.reward_urls))
        elif self.reward_urls is not None:
            self.reward_urls = list(self.reward_urls)

    @property
    def urls(self) -> list[str]:
        return self.reward_urls or [DEFAULT_URL]

    @property
    def api_key(self) -> str | None:
        """The key in ``$reward_api_key_env``; a variable named on purpose but unset is an error."""
        key = os.environ.get(self.reward_api_key_env) or None
        if key is None and self.reward_api_key_env != ENV_VARS["api_key"]:
            raise ValueError(
                f"reward_api_key_env={self.reward_api_key_env!r}, but that environment variable is not set"
            )
        return key

    @classmethod
    def from_env(cls, **overrides: Any) -> RewardSettings:
        """Like the constructor, but keys may also be spelled as in :data:`ENV_VARS` (``urls=``, ``timeout_s=``)."""
        known = {f.name for f in fields(cls)}
        named = {k if k in known else f"reward_{k}": v for k, v in overrides.items()}
        unknown = sorted(set(named) - known)
        if unknown:
            raise TypeError(f"unknown reward settings {unknown}; known: {sorted(known)}")
        return cls(**named)
