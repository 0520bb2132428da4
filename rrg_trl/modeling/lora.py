"""LoRA / QLoRA configuration for VLM policies: adapters on the decoder only, never on the vision tower.

A plain ``target_modules=["q_proj", "v_proj"]`` would also hit the CLIP/SigLIP attention of LLaVA and
Gemma 3, so the defaults are a regex anchored at the family's decoder path. The result is an ordinary
``peft.LoraConfig``: pass it to TRL as ``peft_config`` or apply it with ``peft.get_peft_model``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from torch import nn

from rrg_trl.modeling.families import FamilySpec, family_spec

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def lora_target_regex(spec: FamilySpec, targets: Sequence[str] = DEFAULT_TARGETS) -> str:
    """A PEFT ``target_modules`` regex matching ``targets`` inside the decoder only."""
    names = "|".join(re.escape(t) for t in targets)
    return rf"{re.escape(spec.language_model)}\..*\.({names})"


def lora_config(
    model: nn.Module,
    r: int = 16,
    alpha: int = 32,
    dropout: float = 0.05,
    target_modules: str | Sequence[str] | None = None,
    modules_to_save: Sequence[str] | None = None,
    **kwargs,
):
    """A ``LoraConfig`` for ``model``.

    ``target_modules``: ``None`` (attention + MLP projections of the decoder), a list of layer names
    (restricted to the decoder), or a string passed to PEFT untouched (a regex, or ``"all-linear"``).
    ``modules_to_save`` defaults to the family's new modules (LM-RRG's region extractor and projectors).
    """
    from peft import LoraConfig

    if r < 1:
        raise ValueError(f"LoRA rank must be >= 1, got r={r}")
    spec = family_spec(model)
    if target_modules is None or not isinstance(target_modules, str):
        targets = tuple(target_modules) if target_modules is not None else DEFAULT_TARGETS
        if not targets:
            raise ValueError("target_modules is empty")
        target_modules = lora_target_regex(spec, targets)
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        if not any(re.fullmatch(target_modules, name) for name, _ in base.named_modules()):
            leaves = sorted(
                {
                    n.rsplit(".", 1)[-1]
                    for n, m in base.named_modules()
                    if isinstance(m, nn.Linear) and n.startswith(spec.language_model + ".")
                }
            )
            raise ValueError(
                f"none of {list(targets)} is a layer of the decoder {spec.language_model}; it has {leaves}"
            )
    if modules_to_save is None:
        modules_to_save = [path.rsplit(".", 1)[-1] for path in spec.new_modules] or None
    return LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=target_modules,
        modules_to_save=list(modules_to_save) if modules_to_save else None,
        task_type="CAUSAL_LM",
        **kwargs,
    )


def quantization_config(spec: FamilySpec, compute_dtype: torch.dtype = torch.bfloat16):
    """QLoRA's 4-bit NF4 with double quantisation; vision tower, bridge and LM head stay unquantised."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
        llm_int8_skip_modules=[*spec.vision_modules, *spec.bridge_modules, "lm_head"],
    )
