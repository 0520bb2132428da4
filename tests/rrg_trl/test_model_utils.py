"""Where a stage's policy comes from: a checkpoint, an SFT adapter directory (merged), or LM-RRG parts."""

from __future__ import annotations

import json

import pytest
import torch

from rrg_trl.configs import RRGScriptArguments
from rrg_trl.model_utils import BASE_MODEL_DIR, get_peft_config, get_policy
from rrg_trl.modeling.adapters import adapter_chain, is_adapter_dir
from tests.rrg_trl.stage_helpers import logged, run_stage, stage_argv


def model_args(**kw):
    from trl import ModelConfig

    return ModelConfig(**{"dtype": "float32", **kw})


def training_args(tmp_path):
    from trl import GRPOConfig

    return GRPOConfig(output_dir=str(tmp_path / "out"), use_cpu=True, bf16=False, report_to="none")


def q_proj(model):
    return model.model.language_model.layers[0].self_attn.q_proj.weight


def test_source_errors(tmp_path, policy_dir):
    args = training_args(tmp_path)
    with pytest.raises(ValueError, match="set model_name_or_path"):
        get_policy(RRGScriptArguments(), model_args(), args)
    with pytest.raises(ValueError, match="exclusive"):
        get_policy(
            RRGScriptArguments(vision_model_name_or_path="v"), model_args(model_name_or_path="m"), args
        )
    with pytest.raises(ValueError, match="load_in_8bit is not supported"):
        get_policy(
            RRGScriptArguments(), model_args(model_name_or_path=str(policy_dir), load_in_8bit=True), args
        )


def test_adapter_chain_is_merged_in_order(tmp_path, policy_dir):
    """An RL output is base -> SFT adapter -> RL adapter; the stage (like evaluate) merges both."""
    from peft import LoraConfig, PeftModel, get_peft_model

    from rrg_trl.modeling import load_policy

    base, processor = load_policy(policy_dir, dtype="float32")
    original = q_proj(base).detach().clone()

    def trained_adapter(model, out, seed):  # random B, so the adapter really changes the weights
        torch.manual_seed(seed)
        lora = get_peft_model(
            model,
            LoraConfig(r=4, target_modules=r"model\.language_model\..*\.q_proj", init_lora_weights=False),
        )
        lora.save_pretrained(out)
        processor.save_pretrained(out)
        return lora.merge_and_unload()

    sft_dir, rl_dir = tmp_path / "sft", tmp_path / "rl"
    after_sft = trained_adapter(base, sft_dir, seed=1)
    model, _ = get_policy(
        RRGScriptArguments(), model_args(model_name_or_path=str(sft_dir)), training_args(tmp_path)
    )
    assert torch.allclose(q_proj(model), q_proj(after_sft), atol=1e-6) and not torch.equal(
        q_proj(model), original
    )
    assert model.name_or_path == str(sft_dir.resolve()), (
        "new adapters will record the SFT adapter as their base"
    )
    expected = q_proj(trained_adapter(model, rl_dir, seed=2)).detach()
    assert json.loads((rl_dir / "adapter_config.json").read_text())["base_model_name_or_path"] == str(
        sft_dir.resolve()
    )
    assert adapter_chain(rl_dir) == [sft_dir.resolve(), rl_dir.resolve()] and adapter_chain(policy_dir) == []
    assert is_adapter_dir(rl_dir) and not is_adapter_dir(policy_dir)

    model, loaded = get_policy(
        RRGScriptArguments(),
        model_args(model_name_or_path=str(rl_dir)),
        training_args(tmp_path),
        padding_side="left",
    )
    assert not isinstance(model, PeftModel), "merged: a plain model the RL stage puts fresh adapters on"
    assert torch.allclose(q_proj(model), expected, atol=1e-6)
    assert loaded.tokenizer.padding_side == "left"
    vision = [p for n, p in model.named_parameters() if n.startswith("model.visual.")]
    assert vision and not any(p.requires_grad for p in vision), "the vision tower stays frozen"


def test_peft_config_is_decoder_only_and_optional(policy_dir):
    from rrg_trl.modeling import load_policy

    model, _ = load_policy(policy_dir)
    assert get_peft_config(model, model_args()) is None
    config = get_peft_config(
        model, model_args(use_peft=True, lora_r=4, lora_alpha=8, lora_target_modules=["q_proj", "v_proj"])
    )
    assert config.r == 4 and config.lora_alpha == 8
    assert config.target_modules.startswith(r"model\.language_model") and "v_proj" in config.target_modules
    # One name (which ModelConfig turns into a plain string) is still a decoder layer name: "qkv" exists only
    # in the Qwen2-VL vision tower, so it is refused instead of putting adapters on the vision tower.
    single = get_peft_config(model, model_args(use_peft=True, lora_target_modules=["q_proj"]))
    assert single.target_modules == r"model\.language_model\..*\.(q_proj)"
    with pytest.raises(ValueError, match="none of \\['qkv'\\] is a layer of the decoder"):
        get_peft_config(model, model_args(use_peft=True, lora_target_modules=["qkv"]))


@pytest.fixture(scope="module")
def lmrrg_parts(tmp_path_factory):
    """A SigLIP vision backbone and a causal LM (tiny, random), saved like their hub checkpoints."""
    from tokenizers import Tokenizer
    from transformers import (
        LlamaConfig,
        LlamaForCausalLM,
        PreTrainedTokenizerFast,
        SiglipVisionConfig,
        SiglipVisionModel,
    )
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    from rrg_trl.modeling.tiny import CHAT_SPECIALS, _trained_bpe_json

    root = tmp_path_factory.mktemp("lmrrg-parts")
    torch.manual_seed(0)
    vision = SiglipVisionModel(
        SiglipVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        )
    )
    vision.save_pretrained(root / "vision")
    SiglipImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(root / "vision")
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_trained_bpe_json(tuple(CHAT_SPECIALS), 0)),
        eos_token="<|im_end|>",
    )
    LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
        )
    ).save_pretrained(root / "text")
    tokenizer.save_pretrained(root / "text")
    return root


def test_lmrrg_from_parts_sft_then_grpo(lmrrg_parts, reward_server, tmp_path):
    """The lm-rrg recipes' path: SFT assembles LM-RRG once into <output_dir>/base-model and trains LoRA + the
    new bridge; GRPO loads that adapter onto the saved base and trains against the reward server."""
    from rrg_trl import grpo, sft

    sft_out = tmp_path / "lm-rrg-sft"
    result = run_stage(
        sft,
        stage_argv(
            "sft",
            sft_out,
            "--model_name_or_path",
            "null",
            "--vision_model_name_or_path",
            str(lmrrg_parts / "vision"),
            "--text_model_name_or_path",
            str(lmrrg_parts / "text"),
            "--max_steps",
            "1",
            "--synthetic_num_train",
            "8",
            "--save_strategy",
            "no",
        ),
    )
    assert result.global_step == 1
    adapter = json.loads((sft_out / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str((sft_out / BASE_MODEL_DIR).resolve())
    assert set(adapter["modules_to_save"]) >= {"region_extractor", "multi_modal_projector"}
    assert json.loads((sft_out / BASE_MODEL_DIR / "config.json").read_text())["model_type"] == "lmrrg"

    rl = grpo.run(
        stage_argv(
            "grpo",
            tmp_path / "lm-rrg-grpo",
            "--model_name_or_path",
            str(sft_out),
            "--reward_urls",
            reward_server.url,
            "--max_steps",
            "1",
            "--save_strategy",
            "no",
        )
    )
    assert rl.global_step == 1 and rl.trainer.model.get_base_model().config.model_type == "lmrrg"
    assert all(v == v for v in logged(rl, "rewards/radcliq/mean")), "scored by the server (not NaN)"
