"""The tiny policy kit: official formats, Auto-class loading, determinism, size, chat template."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForImageTextToText, AutoProcessor

from rrg_trl.modeling import FAMILIES, make_tiny_policy
from rrg_trl.modeling.tiny import IMAGE_PLACEHOLDER
from tests.rrg_trl.modeling._helpers import chat, xray

EXPECTED_CLASSES = {
    "qwen2_vl": ("Qwen2VLForConditionalGeneration", "ImageOnlyQwen2VLProcessor"),
    "qwen2_5_vl": ("Qwen2_5_VLForConditionalGeneration", "ImageOnlyQwen2_5_VLProcessor"),
    "llava": ("LlavaForConditionalGeneration", "LlavaProcessor"),
    "idefics3": ("Idefics3ForConditionalGeneration", "Idefics3Processor"),
    "smolvlm": ("SmolVLMForConditionalGeneration", "ImageOnlySmolVLMProcessor"),
    "gemma3": ("Gemma3ForConditionalGeneration", "Gemma3Processor"),
    "lmrrg": ("LMRRGForConditionalGeneration", "LMRRGProcessor"),
}


@pytest.mark.parametrize("family", FAMILIES)
def test_loads_with_auto_classes_and_is_small(tiny_policy, family):
    path = tiny_policy(family)
    files = {p.name for p in path.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"} <= files
    assert sum(p.stat().st_size for p in path.iterdir()) < 5_000_000
    model = AutoModelForImageTextToText.from_pretrained(path)
    processor = AutoProcessor.from_pretrained(path)
    assert (type(model).__name__, type(processor).__name__) == EXPECTED_CLASSES[family]
    assert json.loads((path / "config.json").read_text())["architectures"] == [EXPECTED_CLASSES[family][0]]
    # The processor expands the placeholder into image tokens that the model consumes.
    inputs = processor(images=[xray(0)], text=[chat(processor)], return_tensors="pt")
    image_token_id = model.config.image_token_id if family != "gemma3" else model.config.image_token_index
    assert (inputs["input_ids"] == image_token_id).sum() >= 2
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape[:2] == inputs["input_ids"].shape and torch.isfinite(logits).all()


@pytest.mark.parametrize("family", ["qwen2_vl", "lmrrg"])
def test_deterministic_per_seed(tmp_path, family):
    a = make_tiny_policy(tmp_path / "a", family=family, seed=0)
    b = make_tiny_policy(tmp_path / "b", family=family, seed=0)
    c = make_tiny_policy(tmp_path / "c", family=family, seed=1)
    wa, wb, wc = (load_file(d / "model.safetensors") for d in (a, b, c))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert (a / "tokenizer.json").read_bytes() == (b / "tokenizer.json").read_bytes()
    assert any(not torch.equal(wa[k], wc[k]) for k in wa)


def test_chat_template_renders_strings_and_blocks(tiny_policy):
    processor = AutoProcessor.from_pretrained(tiny_policy("llava"))
    as_strings = [
        {"role": "system", "content": "You are a radiologist."},
        {"role": "user", "content": "Write the findings."},
    ]
    text = processor.apply_chat_template(as_strings, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|im_start|>system\nYou are a radiologist.<|im_end|>\n"
        "<|im_start|>user\nWrite the findings.<|im_end|>\n<|im_start|>assistant\n"
    )
    blocks = chat(processor)
    assert blocks == text.replace("user\n", "user\n" + IMAGE_PLACEHOLDER["llava"])
    # Generation stops at the end of the assistant turn.
    assert processor.tokenizer.eos_token == "<|im_end|>"


def test_tokenizer_is_trained_on_report_text(tiny_policy):
    tokenizer = AutoProcessor.from_pretrained(tiny_policy("qwen2_vl")).tokenizer
    words = "pleural effusion pneumothorax cardiomediastinal"
    assert len(tokenizer(words, add_special_tokens=False)["input_ids"]) <= 6
    assert tokenizer.decode(tokenizer(words)["input_ids"]) == words


def test_unknown_family_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown tiny policy family 'blip'"):
        make_tiny_policy(tmp_path, family="blip")


def test_3b_size_is_qwen2_5_vl_3b_shaped():
    """The real-shaped benchmark policy: Qwen2.5-VL-3B-Instruct's published config (built on the meta
    device: no memory), 256 image tokens for a 448 px image."""
    from PIL import Image

    from rrg_trl.modeling.tiny import build_tiny_policy

    with torch.device("meta"):
        model, processor = build_tiny_policy("qwen2_5_vl", size="3b")
    text, vision = model.config.text_config, model.config.vision_config
    assert (text.hidden_size, text.intermediate_size, text.num_hidden_layers) == (2048, 11008, 36)
    assert (text.num_attention_heads, text.num_key_value_heads) == (16, 2)
    assert (vision.depth, vision.hidden_size, vision.intermediate_size, vision.num_heads) == (
        32,
        1280,
        3420,
        16,
    )
    assert vision.out_hidden_size == 2048 and vision.fullatt_block_indexes == [7, 15, 23, 31]
    n = sum(p.numel() for p in model.parameters())
    # The real checkpoint's 3,754,622,976 parameters, with its 151,936-token tied embedding swapped for ours.
    assert n - text.vocab_size * 2048 + 151936 * 2048 == 3_754_622_976
    image = Image.new("L", (512, 512)).convert("RGB")
    grid = processor.image_processor(images=[image], return_tensors="pt")["image_grid_thw"]
    assert int(grid.prod()) // 4 == 256


def test_3b_size_only_for_qwen2_5_vl(tmp_path):
    with pytest.raises(ValueError, match="use family 'qwen2_5_vl'"):
        make_tiny_policy(tmp_path, family="llava", size="3b")
    with pytest.raises(ValueError, match="unknown policy size '7b'"):
        make_tiny_policy(tmp_path, family="qwen2_5_vl", size="7b")


@pytest.mark.parametrize("family", FAMILIES)
def test_qlora_size_has_packable_decoder_widths(family):
    """``size="qlora"``: every decoder linear 4-bit-packable on any CPU (inputs x64, outputs x32), and it runs."""
    from rrg_trl.modeling import family_spec
    from rrg_trl.modeling.quantization import CPU_PACK_ROWS, NF4_BLOCKSIZE
    from rrg_trl.modeling.tiny import build_tiny_policy

    model, processor = build_tiny_policy(family, size="qlora")
    decoder = model.get_submodule(family_spec(model).language_model)
    linears = [m for m in decoder.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(
        m.in_features % NF4_BLOCKSIZE == 0 and m.out_features % CPU_PACK_ROWS == 0 for m in linears
    )
    batch = processor(images=[[xray(0)]], text=[chat(processor, "The lungs are clear.")], return_tensors="pt")
    with torch.no_grad():
        assert torch.isfinite(model(**batch).logits).all()
