"""Where each VLM family keeps its decoder, vision tower and vision-language bridge (transformers 5 layout).

LoRA targets the decoder only, the vision tower is frozen by default, and 4-bit quantisation leaves the
vision tower, the bridge and the LM head in full precision (the usual QLoRA recipe for VLMs); all three
need these module paths. Unknown image-text-to-text models are handled by :func:`family_spec`, which finds
the decoder through ``get_decoder()`` and the vision tower by its usual attribute names.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class FamilySpec:
    language_model: str  # module path of the decoder stack (LoRA goes here)
    vision_modules: tuple[str, ...]  # frozen by default; never quantised
    bridge_modules: tuple[str, ...] = ()  # projector / connector; never quantised
    new_modules: tuple[str, ...] = ()  # modules a LoRA run must train fully (PEFT ``modules_to_save``)


_LLAVA_LIKE = FamilySpec("model.language_model", ("model.vision_tower",), ("model.multi_modal_projector",))
_IDEFICS_LIKE = FamilySpec("model.text_model", ("model.vision_model",), ("model.connector",))
_LMRRG_BRIDGE = ("model.vision_projection", "model.region_extractor", "model.multi_modal_projector")

FAMILY_SPECS: dict[str, FamilySpec] = {
    "qwen2_vl": FamilySpec("model.language_model", ("model.visual",)),  # the merger lives inside `visual`
    "qwen2_5_vl": FamilySpec("model.language_model", ("model.visual",)),
    "llava": _LLAVA_LIKE,
    "gemma3": _LLAVA_LIKE,
    "idefics3": _IDEFICS_LIKE,
    "smolvlm": _IDEFICS_LIKE,
    # LM-RRG's bridge is new (randomly initialised) when built from pretrained parts: train it fully.
    "lmrrg": FamilySpec(
        "model.language_model", ("model.vision_tower",), _LMRRG_BRIDGE, new_modules=_LMRRG_BRIDGE
    ),
}

_VISION_NAMES = ("vision_tower", "visual", "vision_model", "vision_encoder", "image_encoder")


def family_spec(model: nn.Module) -> FamilySpec:
    """The spec for ``model`` (a PEFT wrapper is looked through); inferred for families not in the table."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    model_type = getattr(base.config, "model_type", None)
    if model_type in FAMILY_SPECS:
        return FAMILY_SPECS[model_type]
    names = {module: name for name, module in base.named_modules()}
    decoder = base.get_decoder() if hasattr(base, "get_decoder") else None
    if decoder is None or decoder not in names:
        raise ValueError(
            f"cannot find the language model of {type(base).__name__} (model_type={model_type!r})"
        )
    vision = tuple(name for name in names.values() if name.rsplit(".", 1)[-1] in _VISION_NAMES)
    return FamilySpec(names[decoder], vision)


def freeze_vision_tower(model: nn.Module, spec: FamilySpec | None = None) -> int:
    """Stop gradients into the vision tower; returns how many parameters were frozen."""
    spec = spec or family_spec(model)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    frozen = 0
    for name, param in base.named_parameters():
        if any(name == path or name.startswith(path + ".") for path in spec.vision_modules):
            param.requires_grad_(False)
            # Under ZeRO-3 a parameter is partitioned and numel() is 0 on every rank; ds_numel is its size.
            frozen += getattr(param, "ds_numel", param.numel())
    if not frozen:
        raise ValueError(
            f"no vision-tower parameters found under {spec.vision_modules} in {type(base).__name__}; "
            "pass freeze_vision_tower=False for a model without one"
        )
    return frozen
