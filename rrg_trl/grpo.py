"""GRPO on -RadCliQ: TRL's GRPOTrainer with the remote (or in-process) RadCliQ reward.

    python -m rrg_trl.grpo --config recipes/qwen2.5-vl-3b/grpo.yaml
    accelerate launch --config_file recipes/accelerate/zero2.yaml -m rrg_trl.grpo --config recipes/qwen2.5-vl-3b/grpo.yaml
    rrg-trl grpo --config recipes/tiny/grpo.yaml --reward_urls http://127.0.0.1:8000

Rewards (:mod:`rrg_trl.reward_setup`): ``reward_funcs`` (default ``[radcliq]``, i.e. -RadCliQ) with the
trainer's ``reward_weights``; the RadCliQ components not trained on are logged from the same request
(``rewards/<name>/mean``, through TRL's ``log_metric``); the first reward goes through the reward-hacking guards (:mod:`rrg_trl.reward_guards`). The reward server's
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

from rrg_trl.configs import GRPOScriptArguments
from rrg_trl.stage_runner import stage_entry_points

main, make_parser, run = stage_entry_points(
    "grpo", GRPOScriptArguments, trainer="GRPOTrainer", config="GRPOConfig"
)

if __name__ == "__main__":
    run()
