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

from rrg_trl.configs import RLOOScriptArguments
from rrg_trl.stage_runner import stage_entry_points

main, make_parser, run = stage_entry_points(
    "rloo", RLOOScriptArguments, trainer="RLOOTrainer", config="RLOOConfig"
)

if __name__ == "__main__":
    run()
