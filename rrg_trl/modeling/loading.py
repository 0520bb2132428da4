"""Load an image-text-to-text policy (any HF VLM, or LM-RRG) with its processor, ready for TRL.

``load_policy("Qwen/Qwen2-VL-2B-Instruct", lora=True)`` and ``load_policy(tiny_dir)`` run the same code.
Without torchvision, Qwen2-VL-style processors are loaded through their image-only variants
(:mod:`rrg_trl.modeling.image_only`), since the hub checkpoints name the built-in class that demands a video
processor.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import torch

from rrg_trl.modeling.families import FAMILY_SPECS, freeze_vision_tower
from rrg_trl.modeling.image_only import IMAGE_ONLY_BY_CLASS, IMAGE_ONLY_PROCESSORS
from rrg_trl.modeling.lora import lora_config, quantization_config
from rrg_trl.modeling.quantization import check_cpu_4bit_layers

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class Policy(NamedTuple):
    model: torch.nn.Module  # a PreTrainedModel, or a PeftModel when LoRA was applied
    processor: object  # a transformers ProcessorMixin


def resolve_dtype(dtype: str | torch.dtype | None) -> str | torch.dtype | None:
    if dtype is None or dtype == "auto" or isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be 'auto', a torch.dtype or one of {sorted(DTYPES)}, got {dtype!r}")
    return DTYPES[dtype]


def _saved_processor_class(name_or_path: str | Path) -> str | None:
    """The ``processor_class`` a checkpoint records (processor or preprocessor config), if any."""
    from transformers.utils import cached_file

    for filename in ("processor_config.json", "preprocessor_config.json"):
        path = cached_file(
            name_or_path,
            filename,
            _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False,
        )
        if path is not None:
            processor_class = json.loads(Path(path).read_text()).get("processor_class")
            if processor_class:
                return processor_class
    return None


def load_processor(name_or_path: str | Path, **kwargs):
    """``AutoProcessor``, except that video-demanding processors load image-only when torchvision is absent.

    Works on model directories, hub ids and PEFT adapter directories (processor files, no ``config.json``).
    """
    from transformers import AutoConfig, AutoProcessor
    from transformers.utils import is_torchvision_available

    if not is_torchvision_available():
        saved = _saved_processor_class(name_or_path)
        if saved in IMAGE_ONLY_BY_CLASS:
            return IMAGE_ONLY_BY_CLASS[saved].from_pretrained(name_or_path, **kwargs)
        if saved is None:
            try:
                model_type = AutoConfig.from_pretrained(name_or_path).model_type
            except (OSError, ValueError):
                model_type = None
            if model_type in IMAGE_ONLY_PROCESSORS:
                return IMAGE_ONLY_PROCESSORS[model_type].from_pretrained(name_or_path, **kwargs)
    return AutoProcessor.from_pretrained(name_or_path, **kwargs)


def load_policy(
    name_or_path: str | Path,
    *,
    dtype: str | torch.dtype | None = "auto",
    attn_implementation: str | None = None,
    device_map: str | dict | None = None,
    load_in_4bit: bool = False,
    lora: bool | dict | object | None = None,
    freeze_vision: bool = True,
    gradient_checkpointing: bool = False,
    processor_kwargs: dict | None = None,
) -> Policy:
    """Load model + processor.

    ``lora``: ``None``/``False`` (no adapters), ``True`` (:func:`lora_config` defaults), a dict of
    :func:`lora_config` arguments, or a ready ``peft.LoraConfig``. To let TRL apply the adapters instead,
    leave ``lora=None`` and pass ``lora_config(model)`` as the trainer's ``peft_config``.
    ``load_in_4bit``: QLoRA's NF4 quantisation of the decoder (bitsandbytes; runs on CPU too, for layer widths
    bitsandbytes can repack: :mod:`rrg_trl.modeling.quantization`).
    """
    from transformers import AutoConfig, AutoModelForImageTextToText

    config = AutoConfig.from_pretrained(name_or_path)
    kwargs = {"dtype": resolve_dtype(dtype)}
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    if device_map is not None:
        kwargs["device_map"] = device_map
    if load_in_4bit:
        spec = FAMILY_SPECS.get(config.model_type)
        if spec is None:
            raise ValueError(
                f"4-bit loading needs to know which modules to keep unquantised; model_type {config.model_type!r} "
                f"is not one of {sorted(FAMILY_SPECS)} (add a FamilySpec for it)"
            )
        compute = kwargs["dtype"] if isinstance(kwargs["dtype"], torch.dtype) else torch.bfloat16
        kwargs["quantization_config"] = quantization_config(spec, compute_dtype=compute)
        kwargs.setdefault("device_map", {"": 0} if torch.cuda.is_available() else "cpu")
    model = AutoModelForImageTextToText.from_pretrained(name_or_path, **kwargs)
    if load_in_4bit:
        check_cpu_4bit_layers(model, name_or_path)
    processor = load_processor(name_or_path, **(processor_kwargs or {}))

    if freeze_vision:
        freeze_vision_tower(model)
    if load_in_4bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    elif gradient_checkpointing:
        model.gradient_checkpointing_enable()
    if lora:
        model = apply_lora(model, lora)
    return Policy(model, processor)


def apply_lora(model, lora: bool | dict | object):
    """Wrap ``model`` with LoRA adapters (see :func:`load_policy` for the accepted ``lora`` values)."""
    from peft import PeftConfig, get_peft_model

    if lora is True:
        config = lora_config(model)
    elif isinstance(lora, dict):
        config = lora_config(model, **lora)
    elif isinstance(lora, PeftConfig):
        config = lora
    else:
        raise ValueError(
            f"lora must be True, a dict of lora_config arguments or a peft.LoraConfig, got {lora!r}"
        )
    return get_peft_model(model, config)
