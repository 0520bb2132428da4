"""The reward functions of an RL stage, built from its :class:`~rrg_trl.configs.RewardArguments`.

Names from :data:`rrg_trl.rewards.REWARD_FUNCS` (``radcliq`` and its components) share one
:class:`~rrg_trl.rewards.RadCliQRewards`, i.e. one scoring request per batch; anything else is a dotted import
path, as in TRL's and open-r1's scripts. The first reward is wrapped by the reward-hacking guards. When a RadCliQ
reward is used, the components not already requested are appended with weight 0 so TRL logs them
(``rewards/<name>/mean``) at no extra cost: they come from the same request.
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
from rrg_trl.rewards import COMPONENTS, RadCliQRewards, RewardConfig

logger = logging.getLogger(__name__)

DEFAULT_API_KEY_ENV = "RRG_REWARD_API_KEY"


def reward_config(args: RewardArguments) -> RewardConfig:
    """Recipe values over ``RRG_REWARD_*`` environment variables over defaults."""
    api_key = os.environ.get(args.reward_api_key_env) or None
    if api_key is None and args.reward_api_key_env != DEFAULT_API_KEY_ENV:
        raise ValueError(
            f"reward_api_key_env={args.reward_api_key_env!r}, but that environment variable is not set"
        )
    return RewardConfig.from_env(
        urls=tuple(args.reward_urls) if args.reward_urls else None,
        api_key=api_key,
        timeout_s=args.reward_timeout_s,
        retry_budget_s=args.reward_retry_budget_s,
        reference_column=args.reward_reference_column,
        model_dir=args.reward_model_dir,
        device=args.reward_device,
        max_consecutive_failures=args.reward_max_consecutive_failures,
        ray=args.reward_ray,
    )


def import_reward(path: str) -> Callable[..., Any]:
    """``pkg.module.func`` -> the function (the working directory is importable, like TRL's scripts)."""
    if "." not in path:
        raise ValueError(
            f"unknown reward {path!r}: use one of {list(COMPONENTS)} or a dotted import path 'pkg.module.func'"
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
    config: RewardConfig, timeout_s: float, refused_give_up_s: float | None = None, key_env: str = ""
) -> dict | None:
    """Fail fast, before the policy is loaded, when no reward server answers ``/ready`` (saying that it waits,
    with progress) or the server rejects the API key (checked on the authenticated ``/v1/info``, whose
    answer is returned: the server's limits)."""
    if config.model_dir or timeout_s <= 0:
        return None
    if config.ray:
        from reward_server.ray import RayRewardClient

        logger.info("waiting up to %.0fs for the Ray Serve reward deployment", timeout_s)
        RayRewardClient(config.ray_app).wait_until_ready(timeout=timeout_s)
        return None
    from reward_server.client import RewardClient, RewardRequestError

    logger.info("waiting up to %.0fs for the reward server(s) %s", timeout_s, list(config.urls))
    with RewardClient(list(config.urls), api_key=config.api_key, retry_budget_s=30.0) as client:
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
                f"the reward server rejected {given} (HTTP {error.status}: {error.detail}): set {key_env or 'the key variable'} "
                "to the server's API key (rrg-reward serve --api-key-env)"
            ) from None


def uses_radcliq(args: RewardArguments) -> bool:
    return any(name in COMPONENTS for name in args.reward_funcs)


def prepare_rewards(args: RewardArguments) -> RadCliQRewards | None:
    """The shared RadCliQ reward backend (None when no RadCliQ reward is asked for), after checking that its
    server answers: done before the policy is loaded, so a wrong URL or key fails in seconds, not minutes."""
    if not uses_radcliq(args):
        return None
    config = reward_config(args)
    info = wait_for_reward_server(
        config, args.reward_wait_timeout_s, args.reward_refused_give_up_s, args.reward_api_key_env
    )
    rewards = RadCliQRewards(config)
    rewards.server_info = info
    return rewards


def build_reward_funcs(
    args: RewardArguments,
    reward_weights: Sequence[float] | None,
    stop_token_ids: Iterable[int],
    *,
    rewards: RadCliQRewards | None = None,
) -> tuple[list[Callable[..., Any]], list[float]]:
    """``(reward_funcs, reward_weights)`` for the trainer; ``reward_weights`` (the trainer's own setting)
    gives one weight per entry of ``args.reward_funcs``, and logged-only components get weight 0."""
    names = list(args.reward_funcs)
    if reward_weights is not None and len(reward_weights) != len(names):
        raise ValueError(
            f"reward_weights has {len(reward_weights)} values for {len(names)} reward_funcs {names}"
        )
    radcliq = uses_radcliq(args)
    if radcliq and rewards is None:
        rewards = RadCliQRewards(reward_config(args))
    funcs = [rewards.reward_func(n) if n in COMPONENTS else import_reward(n) for n in names]
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
    if radcliq and args.log_reward_components:
        for name in COMPONENTS:
            if name not in names:
                funcs.append(rewards.reward_func(name))
                weights.append(0.0)
    return funcs, weights


def stop_token_ids(model: Any, processing_class: Any) -> set[int]:
    """EOS ids of the tokenizer and the generation config, plus pad: what TRL counts as a finished completion."""
    tokenizer = getattr(processing_class, "tokenizer", processing_class)
    ids = {tokenizer.eos_token_id, tokenizer.pad_token_id}
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(eos if isinstance(eos, list) else [eos])
    return {i for i in ids if i is not None}
