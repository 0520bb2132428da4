"""The reward functions of an RL stage, built from its :class:`~rrg_trl.configs.RewardArguments`.

Names in :data:`rrg_trl.rewards.REWARD_FUNCS` (``radcliq`` and its components, also spelled
``rrg_trl.rewards.<name>``) share one :class:`~rrg_trl.rewards.RadCliQRewards`, i.e. one scoring request per
batch, which also logs the components nobody trains on (``rewards/<name>/mean``) through TRL's ``log_metric`` /
``log_extra`` hooks; anything else is a dotted import path, as in TRL's and open-r1's scripts. The first reward
is wrapped by the reward-hacking guards.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from rrg_trl.configs import RewardArguments
from rrg_trl.reward_guards import GuardConfig, RewardGuard
from rrg_trl.rewards import REWARD_FUNCS, RadCliQRewards, RewardConfig, registered_name

logger = logging.getLogger(__name__)


def import_reward(path: str) -> Callable[..., Any]:
    """``pkg.module.func`` -> the function (the working directory is importable, like TRL's scripts)."""
    if "." not in path:
        raise ValueError(
            f"unknown reward {path!r}: use one of {list(REWARD_FUNCS)} or a dotted import path 'pkg.module.func'"
        )
    module_name, attr = path.rsplit(".", 1)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"cannot import reward {path!r}: {e}") from e
    func = getattr(module, attr, None)
    if not callable(func):
        raise ValueError(f"reward {path!r}: module {module_name!r} has no function {attr!r}")
    return func


def wait_for_reward_server(
    config: RewardConfig, timeout_s: float, refused_give_up_s: float | None = None
) -> dict | None:
    """Fail fast, before the policy is loaded, when no reward server answers ``/ready`` (saying that it waits,
    with progress) or the server rejects the API key (checked on the authenticated ``/v1/info``, whose
    answer is returned: the server's limits)."""
    if config.reward_model_dir or timeout_s <= 0:
        return None
    if config.reward_ray:
        from reward_server.ray import RayRewardClient

        logger.info("waiting up to %.0fs for the Ray Serve reward deployment", timeout_s)
        RayRewardClient(config.reward_ray_app).wait_until_ready(timeout=timeout_s)
        return None
    from reward_server.client import RewardClient, RewardRequestError

    logger.info("waiting up to %.0fs for the reward server(s) %s", timeout_s, config.urls)
    key_env = config.reward_api_key_env
    with RewardClient(config.urls, api_key=config.api_key, retry_budget_s=30.0) as client:
        client.wait_until_ready(
            timeout=timeout_s, refused_give_up_s=refused_give_up_s, progress=logger.warning
        )
        try:
            return client.info()
        except RewardRequestError as error:
            if error.status not in (401, 403):
                raise
            given = f"the key in ${key_env}" if config.api_key else f"no key (${key_env} is unset)"
            raise ValueError(
                f"the reward server rejected {given} (HTTP {error.status}: {error.detail}): set {key_env} "
                "to the server's API key (rrg-reward serve --api-key-env)"
            ) from None


def uses_radcliq(args: RewardArguments) -> bool:
    return any(registered_name(name) for name in args.reward_funcs)


def prepare_rewards(args: RewardArguments) -> RadCliQRewards | None:
    """The shared RadCliQ reward backend (None when no RadCliQ reward is asked for), after checking that its
    server answers: done before the policy is loaded, so a wrong URL or key fails in seconds, not minutes."""
    if not uses_radcliq(args):
        return None
    info = wait_for_reward_server(args, args.reward_wait_timeout_s, args.reward_refused_give_up_s)
    rewards = RadCliQRewards(args)
    rewards.server_info = info
    return rewards


def build_reward_funcs(
    args: RewardArguments,
    reward_weights: Sequence[float] | None,
    stop_token_ids: Iterable[int],
    *,
    rewards: RadCliQRewards | None = None,
) -> tuple[list[Callable[..., Any]], list[float]]:
    """``(reward_funcs, reward_weights)`` for the trainer, one weight per entry of ``args.reward_funcs``
    (``reward_weights``, the trainer's own setting, or 1 each)."""
    names = list(args.reward_funcs)
    if reward_weights is not None and len(reward_weights) != len(names):
        raise ValueError(
            f"reward_weights has {len(reward_weights)} values for {len(names)} reward_funcs {names}"
        )
    if rewards is None and uses_radcliq(args):
        rewards = RadCliQRewards(args)
    funcs = [
        rewards.reward_func(registered_name(n)) if registered_name(n) else import_reward(n) for n in names
    ]
    weights = [float(w) for w in reward_weights] if reward_weights is not None else [1.0] * len(names)
    if args.reward_guards:
        guard = GuardConfig(
            guards=tuple(args.reward_guards),
            penalty=args.guard_penalty,
            min_words=args.guard_min_words,
            repeat_ngram=args.guard_repeat_ngram,
            max_repeat_fraction=args.guard_max_repeat_fraction,
            stop_token_ids=frozenset(stop_token_ids),
        )
        funcs[0] = RewardGuard(funcs[0], guard).wrap()
    return funcs, weights


def stop_token_ids(model: Any, processing_class: Any) -> set[int]:
    """EOS ids of the tokenizer and the generation config, plus pad: what TRL counts as a finished completion."""
    tokenizer = getattr(processing_class, "tokenizer", processing_class)
    ids = {tokenizer.eos_token_id, tokenizer.pad_token_id}
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(eos if isinstance(eos, list) else [eos])
    return {i for i in ids if i is not None}
