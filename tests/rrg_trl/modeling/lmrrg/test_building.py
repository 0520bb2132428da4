"""LM-RRG from a pretrained vision backbone + causal LM: weights carried over, queries from that LM."""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    SiglipConfig,
    SiglipModel,
    SiglipVisionConfig,
    SiglipVisionModel,
)
from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

from rrg_trl.modeling import lmrrg_from_pretrained_parts
from rrg_trl.modeling.tiny import CHAT_SPECIALS, _trained_bpe_json
from tests.rrg_trl.modeling._helpers import chat, xray

VISION = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "image_size": 32,
    "patch_size": 8,
}


@pytest.fixture(scope="module")
def text_dir(tmp_path_factory):
    """A causal LM whose tokenizer lacks the image placeholder (the builder must add it)."""
    out = tmp_path_factory.mktemp("text-lm")
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_trained_bpe_json(tuple(CHAT_SPECIALS), 0)),
        eos_token="<|im_end|>",
    )
    torch.manual_seed(0)
    lm = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
        )
    )
    lm.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.mark.parametrize("dual_encoder", [False, True])
def test_weights_come_from_the_parts(tmp_path, text_dir, dual_encoder):
    torch.manual_seed(1)
    if dual_encoder:  # a SigLIP checkpoint with both towers: the image tower is used
        text = {
            "vocab_size": 64,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
        }
        vision = SiglipModel(SiglipConfig(text_config=text, vision_config=VISION))
        tower_state = vision.vision_model.state_dict()
    else:
        vision = SiglipVisionModel(SiglipVisionConfig(**VISION))
        tower_state = vision.state_dict()
    vision.save_pretrained(tmp_path)
    SiglipImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(tmp_path)

    model, processor = lmrrg_from_pretrained_parts(tmp_path, text_dir, dtype=torch.float32)
    lm = LlamaForCausalLM.from_pretrained(text_dir)
    vocab = lm.config.vocab_size
    assert len(processor.tokenizer) == vocab + 1  # "<image>" was added (and a pad token set)
    assert processor.tokenizer.pad_token == "<|im_end|>" and processor.image_token == "<image>"
    decoder = model.model.language_model.state_dict()
    for name, weight in lm.model.state_dict().items():
        if name == "embed_tokens.weight":
            assert torch.equal(decoder[name][:vocab], weight)
        else:
            assert torch.equal(decoder[name], weight), name
    assert torch.equal(model.lm_head.weight[:vocab], lm.lm_head.weight)
    got = model.model.vision_tower.state_dict()
    assert got.keys() == tower_state.keys() and all(torch.equal(got[k], v) for k, v in tower_state.items())
    # The queries are the pretrained LM's encoding of the region descriptions.
    assert torch.allclose(
        model.model.region_extractor.queries,
        model.model.encode_region_descriptions(processor.tokenizer),
        atol=1e-6,
    )
    inputs = processor(images=[[xray(1)]], text=[chat(processor)], return_tensors="pt")
    with torch.no_grad():
        generated = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert generated.shape[1] > inputs["input_ids"].shape[1]
