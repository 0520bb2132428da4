"""LM-RRG as a ``transformers`` model; importing this package registers it with the Auto classes."""

from __future__ import annotations

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoProcessor,
)

from rrg_trl.modeling.lmrrg.building import build_lmrrg, lmrrg_from_pretrained_parts
from rrg_trl.modeling.lmrrg.configuration_lmrrg import DEFAULT_REGIONS, LMRRGConfig
from rrg_trl.modeling.lmrrg.modeling_lmrrg import LMRRGForConditionalGeneration, LMRRGModel
from rrg_trl.modeling.lmrrg.processing_lmrrg import LMRRGProcessor

AutoConfig.register("lmrrg", LMRRGConfig, exist_ok=True)
AutoModel.register(LMRRGConfig, LMRRGModel, exist_ok=True)
AutoModelForImageTextToText.register(LMRRGConfig, LMRRGForConditionalGeneration, exist_ok=True)
# TRL's `create_model_from_path` falls back to AutoModelForCausalLM for architectures outside `transformers`.
AutoModelForCausalLM.register(LMRRGConfig, LMRRGForConditionalGeneration, exist_ok=True)
AutoProcessor.register(LMRRGConfig, LMRRGProcessor, exist_ok=True)

__all__ = [
    "DEFAULT_REGIONS",
    "LMRRGConfig",
    "LMRRGForConditionalGeneration",
    "LMRRGModel",
    "LMRRGProcessor",
    "build_lmrrg",
    "lmrrg_from_pretrained_parts",
]
