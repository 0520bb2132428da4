"""Policies: Hugging Face VLMs with LoRA/QLoRA, the LM-RRG model and the tiny policy kit.

Importing this package registers LM-RRG and the image-only Qwen2-VL processors with the Auto classes.
"""

from __future__ import annotations

from rrg_trl.modeling.image_only import register_image_only_processors
from rrg_trl.modeling.lmrrg import (
    LMRRGConfig,
    LMRRGForConditionalGeneration,
    LMRRGModel,
    LMRRGProcessor,
    build_lmrrg,
    lmrrg_from_pretrained_parts,
)
from rrg_trl.modeling.tiny import FAMILIES, build_tiny_policy, make_tiny_policy

register_image_only_processors()

from rrg_trl.modeling.families import FAMILY_SPECS, FamilySpec, family_spec, freeze_vision_tower  # noqa: E402
from rrg_trl.modeling.loading import Policy, apply_lora, load_policy, load_processor  # noqa: E402
from rrg_trl.modeling.lora import lora_config, quantization_config  # noqa: E402

__all__ = [
    "FAMILIES",
    "FAMILY_SPECS",
    "FamilySpec",
    "Policy",
    "apply_lora",
    "family_spec",
    "freeze_vision_tower",
    "load_policy",
    "load_processor",
    "lora_config",
    "quantization_config",
    "LMRRGConfig",
    "LMRRGForConditionalGeneration",
    "LMRRGModel",
    "LMRRGProcessor",
    "build_lmrrg",
    "build_tiny_policy",
    "lmrrg_from_pretrained_parts",
    "make_tiny_policy",
]
