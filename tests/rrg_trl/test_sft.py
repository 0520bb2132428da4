"""rrg_trl.sft end to end on the tiny policy and synthetic data (the ``sft_runs`` fixture): LoRA adapter
saved, then resumed."""

from __future__ import annotations

import json
import math

import pytest

from tests.rrg_trl.stage_helpers import REPO, logged


def test_sft_trains_lora_on_image_and_report(sft_runs, policy_dir):
    first, out = sft_runs.first, sft_runs.out
    assert first.stage == "sft" and first.global_step == 2 and first.resumed_from is None
    losses = logged(first, "loss")
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    history = first.trainer.state.log_history
    assert all(h.get("memory/peak_rss_gib", 0) > 0 for h in history if "loss" in h), (
        "peak memory beside each loss"
    )
    # A LoRA adapter (decoder only) and the processor, so the RL stages can start from this directory.
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(policy_dir.resolve())
    assert "language_model" in config["target_modules"] and "visual" not in config["target_modules"]
    assert (out / "adapter_model.safetensors").is_file() and (out / "processor_config.json").is_file()
    # The images reach the model: the vision tower ran in every training step.
    assert sft_runs.vision_calls >= 2


def test_sft_resumes_from_last_checkpoint(sft_runs):
    first, second, out = sft_runs.first, sft_runs.second, sft_runs.out
    assert second.resumed_from == str(out / "checkpoint-2")
    assert second.global_step == 3 and sft_runs.steps_after_resume == [3], "only the missing step runs"
    assert logged(second, "loss")[:2] == logged(first, "loss"), "the resumed state carries the earlier logs"
    info = json.loads((out / "run_info.json").read_text())
    assert info["global_step"] == 3 and info["resumed_from"].endswith("checkpoint-2")
    assert info["synthetic_data"] is True, "synthetic training data is labelled as such"


def test_qlora_sft_quantises_the_decoder_only(tiny_policy, tmp_path):
    """``load_in_4bit``: NF4 decoder (bitsandbytes, runs on CPU too), vision tower in full precision.

    The ``qlora``-sized tiny policy: decoder widths bitsandbytes can repack on every CPU family."""
    import bitsandbytes as bnb

    from rrg_trl import sft
    from tests.rrg_trl.stage_helpers import run_stage, stage_argv

    result = run_stage(
        sft,
        stage_argv(
            "sft",
            tmp_path / "qlora",
            "--model_name_or_path",
            str(tiny_policy("qwen2_vl", "qlora")),
            "--load_in_4bit",
            "true",
            "--max_steps",
            "1",
            "--save_strategy",
            "no",
            "--synthetic_num_train",
            "8",
        ),
    )
    base = result.trainer.model.get_base_model()
    quantised = {n for n, m in base.named_modules() if isinstance(m, bnb.nn.Linear4bit)}
    assert quantised and all(n.startswith("model.language_model.") for n in quantised)
    assert not any(isinstance(m, bnb.nn.Linear4bit) for m in base.model.visual.modules())
    assert result.global_step == 1 and (tmp_path / "qlora" / "adapter_model.safetensors").is_file()


def test_an_adapter_is_not_merged_into_a_4bit_base(sft_runs, tmp_path):
    from rrg_trl import grpo

    with pytest.raises(ValueError, match="merging it into a 4-bit base would lose precision"):
        grpo.run(
            [
                "--config",
                str(REPO / "recipes" / "tiny" / "grpo.yaml"),
                "--model_name_or_path",
                str(sft_runs.out),
                "--load_in_4bit",
                "true",
                "--reward_funcs",
                "tests.rrg_trl.toy_rewards.target_token_share",
                "--output_dir",
                str(tmp_path),
            ]
        )
