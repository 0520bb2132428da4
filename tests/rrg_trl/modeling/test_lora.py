"""LoRA targets the decoder only; QLoRA keeps vision tower, bridge and LM head unquantised."""

from __future__ import annotations

import re

import pytest
import torch
from transformers import AutoModelForImageTextToText

from rrg_trl.modeling import family_spec, lora_config, quantization_config


@pytest.mark.parametrize("family", ["llava", "gemma3", "idefics3", "lmrrg"])
def test_default_targets_are_decoder_projections_only(tiny_policy, family):
    model = AutoModelForImageTextToText.from_pretrained(tiny_policy(family))
    spec = family_spec(model)
    config = lora_config(model, r=4)
    matched = [n for n, _ in model.named_modules() if re.fullmatch(config.target_modules, n)]
    # 7 projections per decoder layer and none elsewhere.
    assert len(matched) == 7 * model.config.text_config.num_hidden_layers
    assert all(n.startswith(spec.language_model + ".") for n in matched)
    if family in ("llava", "gemma3"):  # their vision towers have q_proj/v_proj too: the anchor matters
        assert any(
            n.endswith("q_proj") and not n.startswith(spec.language_model) for n, _ in model.named_modules()
        )
    assert config.r == 4 and config.task_type == "CAUSAL_LM"
    expected_saved = (
        {"vision_projection", "region_extractor", "multi_modal_projector"} if family == "lmrrg" else None
    )
    assert (set(config.modules_to_save) if config.modules_to_save else None) == expected_saved


def test_custom_targets_and_errors(tiny_policy):
    model = AutoModelForImageTextToText.from_pretrained(tiny_policy("llava"))
    config = lora_config(model, target_modules=["q_proj", "v_proj"])
    matched = [n for n, _ in model.named_modules() if re.fullmatch(config.target_modules, n)]
    assert len(matched) == 2 * model.config.text_config.num_hidden_layers
    assert lora_config(model, target_modules="all-linear").target_modules == "all-linear"
    with pytest.raises(ValueError, match=r"none of \['c_attn'\] is a layer of the decoder .*'q_proj'"):
        lora_config(model, target_modules=["c_attn"])
    with pytest.raises(ValueError, match="rank must be >= 1"):
        lora_config(model, r=0)


def test_quantization_config_skips_non_decoder_parts(tiny_policy):
    model = AutoModelForImageTextToText.from_pretrained(tiny_policy("lmrrg"))
    config = quantization_config(family_spec(model), compute_dtype=torch.float32)
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4" and config.bnb_4bit_use_double_quant
    assert set(config.llm_int8_skip_modules) == {
        "model.vision_tower",
        "model.vision_projection",
        "model.region_extractor",
        "model.multi_modal_projector",
        "lm_head",
    }
