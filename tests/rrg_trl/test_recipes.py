"""The recipes: every stage recipe parses with its stage's real parser (unknown keys fail), every accelerate
config loads with accelerate's own loader, and the DeepSpeed ones validate with DeepSpeed itself."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.docker.cli_parsers import parse_stage
from tests.rrg_trl.stage_helpers import REPO

RECIPES = REPO / "recipes"
STAGES = ("sft", "grpo", "rloo")
MODELS = ("tiny", "qwen2.5-vl-3b", "lm-rrg")
ACCELERATE = ("ddp", "zero2", "zero3")


def test_every_model_has_the_three_stage_recipes():
    for model in MODELS:
        assert sorted(p.name for p in (RECIPES / model).glob("*.yaml")) == sorted(f"{s}.yaml" for s in STAGES)
    assert sorted(p.stem for p in (RECIPES / "accelerate").glob("*.yaml")) == sorted(ACCELERATE)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("stage", STAGES)
def test_recipe_parses_with_its_stage(model, stage):
    recipe = RECIPES / model / f"{stage}.yaml"
    script_args, training_args, model_args, data_args = parse_stage(
        f"rrg_trl.{stage}", ["--config", str(recipe)]
    )
    assert Path(training_args.output_dir).name.startswith(f"{model}-{stage}")
    if model == "lm-rrg" and stage == "sft":
        assert model_args.model_name_or_path is None
        assert script_args.vision_model_name_or_path and script_args.text_model_name_or_path
    elif stage == "sft":
        assert model_args.model_name_or_path
    else:  # the RL stages start from the SFT output of the same model
        assert model_args.model_name_or_path.endswith(f"{model}-sft")
        assert script_args.reward_funcs == ["radcliq"]
        assert script_args.reward_guards == ["empty", "too_short", "repetition", "truncated"]
    if model == "tiny":
        assert training_args.use_cpu and model_args.dtype == "float32" and data_args.dataset == "synthetic"
    else:
        assert training_args.bf16 and model_args.dtype == "bfloat16" and data_args.dataset == "iu_xray"
    assert model_args.use_peft


def test_grpo_recipe_takes_the_ppo_style_clipped_objective():
    _, training_args, _, _ = parse_stage(
        "rrg_trl.grpo", ["--config", str(RECIPES / "qwen2.5-vl-3b" / "grpo.yaml")]
    )
    assert (
        training_args.num_iterations > 1
        and training_args.epsilon == 0.2
        and training_args.loss_type == "dapo"
    )


def test_command_line_overrides_the_recipe():
    script_args, training_args, model_args, _ = parse_stage(
        "rrg_trl.grpo",
        [
            "--config",
            str(RECIPES / "tiny" / "grpo.yaml"),
            "--max_steps",
            "7",
            "--reward_urls",
            "http://a:1",
            "http://b:2",
            "--reward_guards",
            "none",
        ],
    )
    assert training_args.max_steps == 7 and script_args.reward_urls == ["http://a:1", "http://b:2"]
    assert script_args.reward_guards == []


def test_unknown_recipe_key_is_an_error(tmp_path):
    from rrg_trl import grpo

    bad = tmp_path / "bad.yaml"
    bad.write_text((RECIPES / "tiny" / "grpo.yaml").read_text() + "reward_url: http://typo:8000\n")
    with pytest.raises(ValueError, match="reward_url"):
        grpo.make_parser().parse_args_and_config(args=["--config", str(bad)])


@pytest.mark.parametrize("name", ACCELERATE)
def test_accelerate_config_loads(name):
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DistributedType

    config = load_config_from_file(str(RECIPES / "accelerate" / f"{name}.yaml"))
    assert config.mixed_precision == "bf16" and config.num_processes == 8 and config.num_machines == 1
    if name == "ddp":
        assert config.distributed_type == DistributedType.MULTI_GPU
        return
    assert config.distributed_type == DistributedType.DEEPSPEED
    ds = config.deepspeed_config
    assert ds["zero_stage"] == int(name[-1])
    assert ds["zero3_init_flag"] is (name == "zero3")
    if name == "zero3":
        assert ds["zero3_save_16bit_model"] is True


@pytest.mark.skipif(
    importlib.util.find_spec("deepspeed") is None, reason="deepspeed not installed (extra 'deepspeed')"
)
@pytest.mark.parametrize("name", ["zero2", "zero3"])
def test_deepspeed_config_validates(name, policy_dir):
    """What accelerate + the Trainer hand to DeepSpeed for this config (with the GRPO recipe's arguments and
    a real model for the size-dependent 'auto' values) is accepted by DeepSpeed's own config parser."""
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DeepSpeedPlugin
    from deepspeed.runtime.config import DeepSpeedConfig
    from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig, unset_hf_deepspeed_config

    from rrg_trl.modeling import load_policy

    model = load_policy(
        policy_dir
    ).model  # before the ZeRO-3 config exists, which would make loading partition
    ds = load_config_from_file(str(RECIPES / "accelerate" / f"{name}.yaml")).deepspeed_config
    plugin = DeepSpeedPlugin(
        zero_stage=ds["zero_stage"],
        zero3_init_flag=ds["zero3_init_flag"],
        zero3_save_16bit_model=ds.get("zero3_save_16bit_model", False),
        offload_optimizer_device=ds["offload_optimizer_device"],
        offload_param_device=ds["offload_param_device"],
    )
    plugin.set_mixed_precision("bf16")
    _, training_args, _, _ = parse_stage(
        "rrg_trl.grpo", ["--config", str(RECIPES / "qwen2.5-vl-3b" / "grpo.yaml")]
    )
    hf_config = HfTrainerDeepSpeedConfig(plugin.deepspeed_config)
    try:
        hf_config.trainer_config_process(training_args)
        hf_config.trainer_config_finalize(training_args, model, num_training_steps=100)
        config = hf_config.config
    finally:
        unset_hf_deepspeed_config()  # the config registers itself globally; keep it out of other tests
    assert "auto" not in str(config), config
    parsed = DeepSpeedConfig(config)
    assert parsed.zero_optimization_stage == ds["zero_stage"] and parsed.bfloat16_config.enabled
    assert parsed.train_micro_batch_size_per_gpu == training_args.per_device_train_batch_size
    assert parsed.gradient_accumulation_steps == training_args.gradient_accumulation_steps
    if name == "zero3":
        assert parsed.zero_config.gather_16bit_weights_on_model_save
