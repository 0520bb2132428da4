"""The policy a stage trains, from TRL's ``ModelConfig`` (open-r1's ``utils/model_utils.py`` job).

``model_name_or_path`` may be

- a hub id or a full checkpoint directory (``config.json`` + weights): loaded with
  :func:`rrg_trl.modeling.load_policy`, which also handles processors that need no torchvision and LM-RRG;
- a PEFT adapter directory (``adapter_config.json``), e.g. the output of ``rrg_trl.sft`` with ``use_peft``:
  its base model is loaded and the adapter merged in, so GRPO / RLOO start from the SFT policy and train
  fresh adapters on top (the processor saved beside the adapter is used). The new adapters record that
  directory as their base, so an RL output is a chain (base -> SFT adapter -> RL adapter) that this function
  and ``rrg_trl.evaluate`` merge back in order (:mod:`rrg_trl.modeling.adapters`);
- unset (or ``null``), with ``vision_model_name_or_path`` and ``text_model_name_or_path``: an LM-RRG
  assembled from a pretrained vision backbone and causal LM, saved once to ``<output_dir>/base-model`` so
  that the adapters trained on it have a base they can be loaded onto later.

LoRA adapters come from :func:`rrg_trl.modeling.lora_config` (decoder only, never the vision tower) with
ModelConfig's ``lora_*`` values, and are handed to the trainer as ``peft_config`` so TRL applies them
(with its DeepSpeed ZeRO-3 and gradient-checkpointing handling). ``load_in_4bit`` gives QLoRA.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from rrg_trl.modeling.adapters import merge_adapters, split_adapters

logger = logging.getLogger(__name__)

BASE_MODEL_DIR = "base-model"


def _device_map(training_args: Any) -> dict | str:
    """Where a 4-bit model must live: this process's device (bitsandbytes weights cannot be moved later)."""
    import torch

    if getattr(training_args, "use_cpu", False) or not torch.cuda.is_available():
        return "cpu"
    return {"": training_args.local_process_index}


def assemble_lmrrg(script_args: Any, model_args: Any, training_args: Any) -> str:
    """Build LM-RRG from its pretrained parts once (main process first) and return the saved directory."""
    from rrg_trl.modeling import lmrrg_from_pretrained_parts
    from rrg_trl.modeling.loading import resolve_dtype

    out = Path(training_args.output_dir) / BASE_MODEL_DIR
    with training_args.main_process_first(desc="assembling LM-RRG"):
        if not (out / "config.json").is_file():
            logger.info(
                "assembling LM-RRG from %s + %s into %s",
                script_args.vision_model_name_or_path,
                script_args.text_model_name_or_path,
                out,
            )
            model, processor = lmrrg_from_pretrained_parts(
                script_args.vision_model_name_or_path,
                script_args.text_model_name_or_path,
                dtype=resolve_dtype(model_args.dtype),
            )
            model.save_pretrained(out)
            processor.save_pretrained(out)
    return str(out)


def get_policy(script_args: Any, model_args: Any, training_args: Any, padding_side: str | None = None):
    """``(model, processor)`` for the stage; LoRA is not applied here (see :func:`get_peft_config`)."""
    from rrg_trl.modeling import load_policy

    name = model_args.model_name_or_path
    if isinstance(name, str) and name.strip().lower() in ("", "none", "null"):  # `--model_name_or_path null`
        name = None
    parts = (
        getattr(script_args, "vision_model_name_or_path", None),
        getattr(script_args, "text_model_name_or_path", None),
    )
    if name is None:
        if not all(parts):
            raise ValueError(
                "set model_name_or_path (a VLM, a checkpoint or an SFT adapter directory), or both "
                "vision_model_name_or_path and text_model_name_or_path to assemble LM-RRG"
            )
        name = assemble_lmrrg(script_args, model_args, training_args)
    elif any(parts):
        raise ValueError(
            "model_name_or_path and vision/text_model_name_or_path are exclusive: set one or the other"
        )
    if Path(
        name
    ).is_dir():  # absolute, so an adapter saved from this run records a base that resolves anywhere
        name = str(Path(name).resolve())
    if model_args.load_in_8bit:
        raise ValueError("load_in_8bit is not supported for VLM policies; use load_in_4bit (QLoRA)")

    base, chain = split_adapters(name)
    if chain and model_args.load_in_4bit:
        raise ValueError(
            f"{name} is a LoRA adapter: merging it into a 4-bit base would lose precision; merge it first "
            "(PeftModel.merge_and_unload on the full-precision base) and point model_name_or_path at the result"
        )
    processor_kwargs = {"padding_side": padding_side} if padding_side else {}
    model, processor = load_policy(
        base,
        dtype=model_args.dtype or "auto",
        attn_implementation=model_args.attn_implementation,
        load_in_4bit=model_args.load_in_4bit,
        device_map=_device_map(training_args) if model_args.load_in_4bit else None,
        freeze_vision=script_args.freeze_vision_tower,
        gradient_checkpointing=bool(training_args.gradient_checkpointing) and model_args.load_in_4bit,
        processor_kwargs=processor_kwargs,
    )
    if chain:
        model, processor = merge_adapters(model, processor, chain, **processor_kwargs)
        if script_args.freeze_vision_tower:
            from rrg_trl.modeling import freeze_vision_tower

            freeze_vision_tower(model)
        # Adapters trained from here record the adapter directory as their base (PEFT reads name_or_path), so
        # loaders that follow the chain (this function, rrg_trl.evaluate) rebuild SFT + RL weights.
        model.config.name_or_path = model.name_or_path = str(chain[-1])
    return model, processor


def get_peft_config(model: Any, model_args: Any):
    """A decoder-only ``LoraConfig`` from ModelConfig's ``lora_*`` fields, or None without ``use_peft``."""
    if not model_args.use_peft:
        return None
    from rrg_trl.modeling import lora_config

    targets = model_args.lora_target_modules
    if isinstance(targets, str) and re.fullmatch(r"\w+", targets) and targets != "all-linear":
        targets = [targets]  # ModelConfig turns a one-name list into a string; keep it a decoder layer name
    return lora_config(
        model,
        r=model_args.lora_r,
        alpha=model_args.lora_alpha,
        dropout=model_args.lora_dropout,
        target_modules=targets,  # layer names are restricted to the decoder; a regex / "all-linear" is not
        modules_to_save=model_args.lora_modules_to_save,
        use_rslora=model_args.use_rslora,
        use_dora=model_args.use_dora,
    )
