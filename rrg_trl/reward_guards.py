"""Reward-hacking guards: penalise completions that game a text-overlap reward instead of reporting.

RadCliQ's components reward overlap with the reference, which a policy can exploit: an empty or two-word
report dodges every false finding, a phrase repeated many times inflates n-gram matches, and a completion cut
off at ``max_completion_length`` (it never emitted EOS) is not a finished report. :class:`RewardGuard` wraps one
reward function (the stage wraps the first, weighted one) and subtracts ``penalty`` from each flagged
completion's reward, once however many guards it trips. Rewards that are ``None`` (the server could not score
them) stay ``None``: a guard must not turn an unscored completion into a scored one. The share of each flag is
logged per batch (``guards/<name>``, ``guards/penalized``) through TRL's ``log_metric`` and the flags appear
in the completions table (``log_extra``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rrg_trl.metrics.degeneracy import repeat_fraction, report_words
from rrg_trl.rewards import completion_text

GUARDS = ("empty", "too_short", "repetition", "truncated")
__all__ = ["GUARDS", "GuardConfig", "RewardGuard", "guard_flags", "repeat_fraction"]


@dataclass(frozen=True)
class GuardConfig:
    guards: tuple[str, ...] = GUARDS
    penalty: float = 1.0
    min_words: int = 3
    repeat_ngram: int = 3
    max_repeat_fraction: float = 0.5
    stop_token_ids: frozenset[int] = frozenset()  # EOS / pad ids: a completion ending otherwise was truncated

    def __post_init__(self):
        unknown = [g for g in self.guards if g not in GUARDS]
        if unknown:
            raise ValueError(f"unknown reward guard(s) {unknown}; available: {list(GUARDS)}")
        if self.penalty < 0:
            raise ValueError(f"guard penalty is subtracted and must be >= 0, got {self.penalty}")
        if self.min_words < 0 or self.repeat_ngram < 1:
            raise ValueError(
                f"need min_words >= 0 and repeat_ngram >= 1, got {self.min_words}, {self.repeat_ngram}"
            )
        if not 0 < self.max_repeat_fraction <= 1:
            raise ValueError(f"max_repeat_fraction must be in (0, 1], got {self.max_repeat_fraction}")
        if "truncated" in self.guards and not self.stop_token_ids:
            raise ValueError("the 'truncated' guard needs stop_token_ids (the tokenizer's EOS and pad ids)")


def guard_flags(text: str, completion_ids: Sequence[int] | None, config: GuardConfig) -> list[str]:
    """The guards ``text`` trips (``empty`` excludes ``too_short``: an empty report is not also short)."""
    words = report_words(text)  # the words the evaluation's repeated-trigram figure counts
    flags = []
    if "empty" in config.guards and not words:
        flags.append("empty")
    elif "too_short" in config.guards and len(words) < config.min_words:
        flags.append("too_short")
    if (
        "repetition" in config.guards
        and repeat_fraction(words, config.repeat_ngram) > config.max_repeat_fraction
    ):
        flags.append("repetition")
    if "truncated" in config.guards and completion_ids is not None:
        ids = list(completion_ids)
        if ids and ids[-1] not in config.stop_token_ids:
            flags.append("truncated")
    return flags


class RewardGuard:
    """Wrap a TRL reward function (sync or async) so guarded completions lose ``config.penalty``."""

    def __init__(self, reward_func: Callable[..., Any], config: GuardConfig):
        self.reward_func = reward_func
        self.config = config
        self.is_async = inspect.iscoroutinefunction(reward_func)

    def flags(
        self, completions: Sequence[Any], completion_ids: Sequence[Sequence[int]] | None
    ) -> list[list[str]]:
        ids = completion_ids if completion_ids is not None else [None] * len(completions)
        if len(ids) != len(completions):
            raise ValueError(f"{len(ids)} completion_ids for {len(completions)} completions")
        return [guard_flags(completion_text(c, i), ids[i], self.config) for i, c in enumerate(completions)]

    def apply(
        self, rewards: Iterable[float | None], flags: list[list[str]], kwargs: dict
    ) -> list[float | None]:
        rewards = list(rewards)
        if len(rewards) != len(flags):
            raise ValueError(
                f"the guarded reward returned {len(rewards)} values for {len(flags)} completions"
            )
        out = [
            None if r is None else r - self.config.penalty * bool(f)
            for r, f in zip(rewards, flags, strict=True)
        ]
        log_metric, log_extra = kwargs.get("log_metric"), kwargs.get("log_extra")
        if log_metric is not None and flags:
            for name in self.config.guards:
                log_metric(f"guards/{name}", sum(name in f for f in flags) / len(flags))
            log_metric("guards/penalized", sum(bool(f) for f in flags) / len(flags))
        if log_extra is not None:
            log_extra("guards", [",".join(f) for f in flags])
        return out

    def wrap(self) -> Callable[..., Any]:
        """The guarded reward function, named like the wrapped one (TRL logs ``rewards/<name>/mean``)."""
        inner = self.reward_func

        if self.is_async:

            async def guarded(
                prompts: list, completions: list, completion_ids: list | None = None, **kwargs: Any
            ):
                flags = self.flags(completions, completion_ids)
                rewards = await inner(
                    prompts=prompts, completions=completions, completion_ids=completion_ids, **kwargs
                )
                return self.apply(rewards, flags, kwargs)

        else:

            def guarded(prompts: list, completions: list, completion_ids: list | None = None, **kwargs: Any):
                flags = self.flags(completions, completion_ids)
                rewards = inner(
                    prompts=prompts, completions=completions, completion_ids=completion_ids, **kwargs
                )
                return self.apply(rewards, flags, kwargs)

        functools.update_wrapper(guarded, inner)
        guarded.guard = self
        return guarded
