"""Argument dataclasses shared by the training stages (``TrlParser`` turns each field into a flag / YAML key).

Each stage parses ``(<Stage>ScriptArguments, <trl Stage>Config, trl.ModelConfig, DataConfig)``, as TRL's own
scripts do: TRL's config owns everything about the optimisation (including ``reward_weights``), ModelConfig the
policy and its LoRA / QLoRA flags, :class:`~rrg_trl.data.DataConfig` the reports and images. The classes here
add what is ours: which splits to use, where rewards come from, and the reward-hacking guards. No field may
collide with a field of the other three dataclasses (argparse would refuse the duplicate flag).
"""

from __future__ import annotations

from dataclasses import dataclass

from rrg_trl.data.data_config import arg
from rrg_trl.reward_guards import GUARDS
from rrg_trl.rewards import REWARD_FUNCS, RewardConfig


@dataclass
class RRGScriptArguments:
    """What every stage needs beyond TRL's config: splits and how the policy is prepared."""

    dataset_train_split: str = arg("train", "Split to train on.")
    dataset_test_split: str = arg(
        "val", "Split for evaluation during training (used when eval_strategy != 'no')."
    )
    freeze_vision_tower: bool = arg(True, "Keep the vision tower frozen (LoRA never touches it either).")
    vision_model_name_or_path: str | None = arg(
        None, "LM-RRG from parts: the pretrained vision backbone (leave model_name_or_path unset)."
    )
    text_model_name_or_path: str | None = arg(None, "LM-RRG from parts: the pretrained causal LM.")


@dataclass
class SFTScriptArguments(RRGScriptArguments):
    """SFT needs nothing beyond the shared arguments; the class exists so each stage has its own name."""


@dataclass
class RewardArguments(RewardConfig):
    """Which rewards an RL stage trains on, and the reward-hacking guards, over the reward settings it inherits
    (:class:`rrg_trl.rewards.RewardConfig`: server URLs, key variable, timeouts, in-process scorer... each
    left unset falls back to its ``RRG_REWARD_*`` variable). The stage passes this object down as it is."""

    reward_funcs: list[str] = arg(
        ["radcliq"],
        "Rewards: radcliq (-RadCliQ), radgraph, bertscore, semb, bleu2 (one server request for all of "
        "them), or a dotted import path 'pkg.module.func'. Weights: the trainer's reward_weights.",
    )
    reward_wait_timeout_s: float = arg(
        300.0, "Wait this long for the reward server's /ready before loading the policy; 0 = don't wait."
    )
    reward_refused_give_up_s: float = arg(
        60.0,
        "Give up waiting early when for this long every attempt was 'connection refused' (nothing listens).",
    )
    # Reward-hacking guards (rrg_trl.reward_guards): applied to the first reward function.
    reward_guards: list[str] = arg(
        list(GUARDS), f"Guards to apply, any of {list(GUARDS)}; 'none' (or [] in YAML) disables them."
    )
    guard_penalty: float = arg(1.0, "Subtracted from the first reward of a completion that trips a guard.")
    guard_min_words: int = arg(3, "too_short: fewer words than this.")
    guard_repeat_ngram: int = arg(3, "repetition: word n-gram size.")
    guard_max_repeat_fraction: float = arg(
        0.5, "repetition: share of repeated n-grams above which a completion is degenerate."
    )

    def __post_init__(self):
        super().__post_init__()
        if list(self.reward_guards) == ["none"]:  # the command-line spelling of an empty list
            self.reward_guards = []
        unknown = [g for g in self.reward_guards if g not in GUARDS]
        if unknown:
            raise ValueError(f"unknown reward guard(s) {unknown}; available: {list(GUARDS)}")
        if not self.reward_funcs:
            raise ValueError("reward_funcs is empty: name at least one reward (e.g. radcliq)")
        unknown = [n for n in self.reward_funcs if n not in REWARD_FUNCS and "." not in n]
        if unknown:
            raise ValueError(
                f"unknown reward_funcs {unknown}: use any of {list(REWARD_FUNCS)} or a dotted import path "
                "'pkg.module.func'"
            )


@dataclass
class GRPOScriptArguments(RRGScriptArguments, RewardArguments):
    """GRPO: shared arguments + rewards."""


@dataclass
class RLOOScriptArguments(RRGScriptArguments, RewardArguments):
    """RLOO: shared arguments + rewards (the same reward set-up as GRPO)."""
