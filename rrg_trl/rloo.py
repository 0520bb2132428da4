"""RLOO on -RadCliQ: TRL's RLOOTrainer with the same rewards, guards and failure handling as :mod:`rrg_trl.grpo`.

    python -m rrg_trl.rloo --config recipes/qwen2.5-vl-3b/rloo.yaml
    accelerate launch --config_file recipes/accelerate/zero2.yaml -m rrg_trl.rloo --config recipes/qwen2.5-vl-3b/rloo.yaml
    rrg-trl rloo --config recipes/tiny/rloo.yaml --reward_urls http://127.0.0.1:8000

REINFORCE Leave-One-Out: each completion's baseline is the mean reward of the other completions of its
prompt, a critic-free PPO relative (RLOO also clips the importance ratio when a batch is reused,
``num_iterations > 1``). TRL 1.16 has no PPOTrainer; see :mod:`rrg_trl.grpo` for how GRPO with
``num_iterations > 1`` gives the PPO-style clipped objective of the paper's RL stage.
Start from the SFT output directory exactly as for GRPO (``model_name_or_path``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rrg_trl.configs import RLOOScriptArguments
from rrg_trl.data import DataConfig
from rrg_trl.stage_runner import StageResult


def main(
    script_args: RLOOScriptArguments,
    training_args: Any,
    model_args: Any,
    data_args: DataConfig,
    callbacks: Sequence[Any] | None = None,
) -> StageResult:
    from transformers import set_seed
    from trl import RLOOTrainer

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
    trainer = RLOOTrainer(
        model=model,
        reward_funcs=reward_funcs,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=processor,
        peft_config=get_peft_config(model, model_args),
        callbacks=list(callbacks or []),
    )
    return train_and_save(trainer, training_args, stage="rloo", data_args=data_args, model_args=model_args)


def make_parser():
    from trl import ModelConfig, RLOOConfig, TrlParser

    return TrlParser((RLOOScriptArguments, RLOOConfig, ModelConfig, DataConfig), prog="rrg-trl rloo")


def run(argv: list[str] | None = None) -> StageResult:
    """Parse ``argv`` (``--config recipe.yaml`` + overrides) and train."""
    return main(*make_parser().parse_args_and_config(args=argv))


if __name__ == "__main__":
    run()
