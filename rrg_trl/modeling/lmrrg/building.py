"""Assemble an LM-RRG policy: from configs (random weights) or from a pretrained vision backbone + causal LM.

Both paths finish the same way: the region queries are initialised from the decoder's encoding of the region
descriptions (``config.region_query_init``), and a processor is built whose placeholder expansion matches the
model's ``num_image_tokens``.
"""

from __future__ import annotations

import torch

from rrg_trl.modeling.chat_template import IM_END, IM_START, chatml_template
from rrg_trl.modeling.lmrrg.configuration_lmrrg import LMRRGConfig
from rrg_trl.modeling.lmrrg.modeling_lmrrg import LMRRGForConditionalGeneration
from rrg_trl.modeling.lmrrg.processing_lmrrg import LMRRGProcessor

IMAGE_TOKEN = "<image>"


def _image_token(tokenizer) -> str:
    """The tokenizer's own image placeholder if it declares one (as LMRRGProcessor resolves it), else ``<image>``."""
    return getattr(tokenizer, "image_token", None) or IMAGE_TOKEN


def _finish(model: LMRRGForConditionalGeneration, tokenizer, image_processor) -> LMRRGProcessor:
    config = model.config
    if config.use_regions and config.region_query_init != "random":
        model.model.init_region_queries_from_text(tokenizer)
    eos = [tokenizer.convert_tokens_to_ids(IM_END)]
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in eos:
        eos.append(tokenizer.eos_token_id)
    model.generation_config.eos_token_id = eos if len(eos) > 1 else eos[0]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return LMRRGProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=chatml_template(_image_token(tokenizer)),
        num_image_tokens=config.num_image_tokens,
        image_token=_image_token(tokenizer),
    )


def _prepare_tokenizer(tokenizer) -> None:
    """Add the image placeholder and the ChatML markers the template uses, when the tokenizer lacks them."""
    missing = [tok for tok in (_image_token(tokenizer), IM_START, IM_END) if tok not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_special_tokens(
            {"additional_special_tokens": missing}, replace_extra_special_tokens=False
        )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token


def build_lmrrg(
    tokenizer, vision_config, text_config, image_processor=None, image_size: int = 224, **config_kwargs
):
    """A randomly initialised LM-RRG ``(model, processor)`` around ``tokenizer`` (queries from the random LM)."""
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    _prepare_tokenizer(tokenizer)
    if isinstance(text_config, dict):
        text_config = {**text_config, "vocab_size": max(text_config.get("vocab_size", 0), len(tokenizer))}
    config = LMRRGConfig(
        vision_config=vision_config,
        text_config=text_config,
        image_token_id=tokenizer.convert_tokens_to_ids(_image_token(tokenizer)),
        **config_kwargs,
    )
    model = LMRRGForConditionalGeneration(config)
    if image_processor is None:
        image_processor = SiglipImageProcessorPil(size={"height": image_size, "width": image_size})
    return model, _finish(model, tokenizer, image_processor)


def lmrrg_from_pretrained_parts(
    vision_name_or_path: str, text_name_or_path: str, dtype: torch.dtype | str | None = None, **config_kwargs
):
    """LM-RRG from a pretrained vision backbone (e.g. a SigLIP / CLIP / ViT checkpoint) and a causal LM.

    The vision tower, the decoder and its LM head carry the pretrained weights; the vision projection, the
    region extractor and the projector are new (train them, e.g. as LoRA ``modules_to_save``).
    """
    from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(text_name_or_path)
    _prepare_tokenizer(tokenizer)
    lm = AutoModelForCausalLM.from_pretrained(text_name_or_path, dtype=dtype)
    if lm.get_input_embeddings().num_embeddings < len(tokenizer):
        lm.resize_token_embeddings(len(tokenizer))
    vision_config = AutoConfig.from_pretrained(vision_name_or_path)
    vision = AutoModel.from_pretrained(vision_name_or_path, dtype=dtype)
    if hasattr(vision_config, "vision_config"):  # a dual encoder (CLIP, SigLIP): keep its image tower
        vision_config, vision = vision_config.vision_config, vision.vision_model
    config = LMRRGConfig(
        vision_config=vision_config.to_dict(),
        text_config=lm.config.to_dict(),
        image_token_id=tokenizer.convert_tokens_to_ids(_image_token(tokenizer)),
        **config_kwargs,
    )
    model = LMRRGForConditionalGeneration(config).to(lm.dtype)
    tower = model.model.vision_tower
    if type(vision) is not type(tower):  # the dual encoder's inner transformer, e.g. SiglipVisionTransformer
        tower = getattr(tower, "vision_model", None)
        if type(vision) is not type(tower):
            raise ValueError(
                f"cannot place the vision weights of {vision_name_or_path} ({type(vision).__name__})"
            )
    tower.load_state_dict(vision.state_dict())
    model.model.language_model.load_state_dict(lm.get_decoder().state_dict())
    with torch.no_grad():
        model.lm_head.weight.copy_(lm.get_output_embeddings().weight)
    image_processor = AutoImageProcessor.from_pretrained(vision_name_or_path)
    return model, _finish(model, tokenizer, image_processor)
