"""GRPO on -RadCliQ: TRL's GRPOTrainer with the remote (or in-process) RadCliQ reward.

    python -m rrg_trl.grpo --config recipes/qwen2.5-vl-3b/grpo.yaml
    accelerate launch --config_file recipes/accelerate/zero2.yaml -m rrg_trl.grpo --config recipes/qwen2.5-vl-3b/grpo.yaml
    rrg-trl grpo --config recipes/tiny/grpo.yaml --reward_urls http://127.0.0.1:8000

Rewards (:mod:`rrg_trl.reward_setup`): ``reward_funcs`` (default ``[radcliq]``, i.e. -RadCliQ) with the
trainer's ``reward_weights``; the RadCliQ components are logged as weight-0 rewards from the same request;
the first reward goes through the reward-hacking guards (:mod:`rrg_trl.reward_guards`). The reward server's
URLs, timeout and retry budget come from the recipe or the ``RRG_REWARD_*`` environment. A batch the
server fails to score gets ``None`` (zero advantage, logged as ``reward_server/failed``); a server that
stays down past ``reward_retry_budget_s`` stops training with an error naming it.

Start from the SFT policy by setting ``model_name_or_path`` to the SFT output directory: a LoRA adapter
directory is merged into its base and GRPO trains fresh adapters (``use_peft``); a merged / fully trained
checkpoint is loaded as is. vLLM generation is TRL's own (``use_vllm``, ``vllm_mode``, ...: GRPOConfig
fields, set them in the recipe).

PPO: TRL 1.16 has no PPOTrainer (``trl.experimental.ppo`` was dropped in 1.13, and it never took images).
The paper's RL stage is PPO-style; GRPO with ``num_iterations > 1`` reuses each generation batch for several
updates and optimises exactly PPO's clipped surrogate ``-min(r * A, clip(r, 1 - epsilon, 1 + epsilon_high) * A)``
(loss types dapo, grpo, dr_grpo, bnpo) with a group-relative advantage in place of a learned critic. Set
``num_iterations: 2`` (or more) in the recipe for that regime; when each batch serves a single update
(``num_iterations: 1`` and ``steps_per_generation: 1``) the ratio ``r`` is 1 and this is the plain policy
gradient. :mod:`rrg_trl.rloo` is the other critic-free alternative.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rrg_trl.configs import GRPOScriptArguments
from rrg_trl.data import DataConfig
from rrg_trl.stage_runner import StageResult


def main(
    script_args: GRPOScriptArguments,
    training_args: Any,
    model_args: Any,
    data_args: DataConfig,
    callbacks: Sequence[Any] | None = None,
) -> StageResult:
    from transformers import set_seed
    from trl import GRPOTrainer

    from rrg_trl.model_utils import get_peft_config, get_policy
    from rrg_trl.reward_setup import build_reward_funcs, prepare_rewards, stop_token_ids
    from rrg_trl.stage_runner import load_splits, setup_logging, train_and_save

    setup_logging(training_args)
    set_seed(training_args.seed)
    rewards = prepare_rewards(script_args)  # fails fast when the reward server is not there
    train_dataset, eval_dataset = load_splits(data_args, script_args, training_args, with_completion=False)
    model, processor = get_policy(script_args, model_args, training_args, padding_side="left")
    reward_funcs, training_args.reward_weights = build_reward_funcs(
        script_args, training_args.reward_weights, stop_token_ids(model, processor), rewards=rewards
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=reward_funcs,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=processor,
        peft_config=get_peft_config(model, model_args),
        callbacks=list(callbacks or []),
    )
    return train_and_save(trainer, training_args, stage="grpo", data_args=data_args, model_args=model_args)


def make_parser():
    from trl import GRPOConfig, ModelConfig, TrlParser

    return TrlParser((GRPOScriptArguments, GRPOConfig, ModelConfig, DataConfig), prog="rrg-trl grpo")


def run(argv: list[str] | None = None) -> StageResult:
    """Parse ``argv`` (``--config recipe.yaml`` + overrides) and train."""
    return main(*make_parser().parse_args_and_config(args=argv))


if __name__ == "__main__":
    run()
