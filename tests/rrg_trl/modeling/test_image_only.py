"""Qwen2-VL processors without a video processor (no torchvision on these machines)."""

from __future__ import annotations

import json

import pytest
from transformers import AutoProcessor
from transformers.utils import is_torchvision_available

from rrg_trl.modeling import load_processor
from rrg_trl.modeling.image_only import (
    ImageOnlyQwen2_5_VLProcessor,
    ImageOnlyQwen2VLProcessor,
    ImageOnlySmolVLMProcessor,
)
from tests.rrg_trl.modeling._helpers import chat, xray


@pytest.mark.parametrize(
    ("family", "cls"), [("qwen2_vl", ImageOnlyQwen2VLProcessor), ("qwen2_5_vl", ImageOnlyQwen2_5_VLProcessor)]
)
def test_qwen_round_trip_and_outputs(tiny_policy, tmp_path, family, cls):
    processor = AutoProcessor.from_pretrained(tiny_policy(family))
    assert type(processor) is cls and not hasattr(processor, "video_processor")
    assert type(processor.image_processor).__name__ == "Qwen2VLImageProcessorPil"
    processor.save_pretrained(tmp_path)
    again = AutoProcessor.from_pretrained(tmp_path)
    inputs = again(images=[xray(1)], text=[chat(again)], return_tensors="pt")
    # What Qwen2-VL's forward needs: one grid per image, 4 patches per image token (2x2 merge).
    assert set(inputs) == {
        "input_ids",
        "attention_mask",
        "mm_token_type_ids",
        "pixel_values",
        "image_grid_thw",
    }
    n_image_tokens = int((inputs["input_ids"] == again.image_token_id).sum())
    assert n_image_tokens * 4 == int(inputs["image_grid_thw"].prod()) == inputs["pixel_values"].shape[0]
    assert int(inputs["mm_token_type_ids"].sum()) == n_image_tokens


needs_no_torchvision = pytest.mark.skipif(
    is_torchvision_available(), reason="with torchvision the built-in processor loads and is used"
)


@needs_no_torchvision
def test_hub_style_checkpoint_loads_through_load_processor(tiny_policy, tmp_path):
    """Hub checkpoints name the built-in class, which AutoProcessor cannot build without torchvision."""
    src = tiny_policy("qwen2_vl")
    for f in src.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    cfg = json.loads((tmp_path / "processor_config.json").read_text())
    cfg["processor_class"] = "Qwen2VLProcessor"
    (tmp_path / "processor_config.json").write_text(json.dumps(cfg))
    with pytest.raises(OSError, match="video processor"):
        AutoProcessor.from_pretrained(tmp_path)
    processor = load_processor(tmp_path)
    assert type(processor) is ImageOnlyQwen2VLProcessor
    assert (
        processor(images=[xray(2)], text=[chat(processor)], return_tensors="pt")["pixel_values"].shape[1]
        == 1176
    )


@needs_no_torchvision
@pytest.mark.parametrize("processor_class", ["Qwen2VLProcessor", "ImageOnlyQwen2VLProcessor"])
def test_processor_files_without_model_config(tiny_policy, tmp_path, processor_class):
    """A PEFT adapter directory holds the processor files but no config.json."""
    src = tiny_policy("qwen2_vl")
    for f in src.iterdir():
        if f.name not in ("config.json", "model.safetensors", "generation_config.json"):
            (tmp_path / f.name).write_bytes(f.read_bytes())
    cfg = json.loads((tmp_path / "processor_config.json").read_text())
    (tmp_path / "processor_config.json").write_text(json.dumps({**cfg, "processor_class": processor_class}))
    assert type(load_processor(tmp_path)) is ImageOnlyQwen2VLProcessor


def test_other_families_go_through_auto_processor(tiny_policy):
    assert type(load_processor(tiny_policy("idefics3"))).__name__ == "Idefics3Processor"


def test_smolvlm_round_trip_and_chat_template(tiny_policy, tmp_path):
    processor = AutoProcessor.from_pretrained(tiny_policy("smolvlm"))
    assert type(processor) is ImageOnlySmolVLMProcessor and not hasattr(processor, "video_processor")
    processor.save_pretrained(tmp_path)
    again = AutoProcessor.from_pretrained(tmp_path)
    inputs = again(images=[[xray(1)]], text=[chat(again)], return_tensors="pt")
    # <fake_token_around_image><global-img> + 4 image tokens + <fake_token_around_image>, no tiling
    assert int((inputs["input_ids"] == again.image_token_id).sum()) == 4
    assert inputs["pixel_values"].shape == (1, 1, 3, 64, 64)
