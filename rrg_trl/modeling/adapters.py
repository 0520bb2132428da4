"""PEFT adapter directories as policies: walk an adapter's bases down to a full model, then merge them back.

An RL stage started from an SFT adapter saves adapters whose base is that SFT directory, so a policy may be a
chain (base -> SFT adapter -> RL adapter). The stages (:func:`rrg_trl.model_utils.get_policy`) and evaluation
(:func:`rrg_trl.evaluation.generation.load_eval_policy`) both read chains here, one way:

- chain directories are absolute, since a stage records the top one as the base of the adapters it trains next
  and that base must resolve from any working directory;
- the processor is the one saved nearest the top of the chain, loaded with the base processor's class, so an
  adapter directory needs only its processor files: PEFT and TRL save no ``config.json`` beside an adapter.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

ADAPTER_CONFIG = "adapter_config.json"
PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json")
MAX_CHAIN = 8


def is_adapter_dir(path: str | Path) -> bool:
    return (Path(path) / ADAPTER_CONFIG).is_file()


def adapter_base(adapter_dir: str | Path) -> str:
    """The ``base_model_name_or_path`` PEFT recorded for an adapter directory."""
    path = Path(adapter_dir) / ADAPTER_CONFIG
    base = json.loads(path.read_text()).get("base_model_name_or_path")
    if not base:
        raise ValueError(
            f"{path} names no base_model_name_or_path; load its base model and put this adapter on top "
            "(evaluate: the base as model_name_or_path and this directory as adapter_path)"
        )
    return base


def split_adapters(name: str | Path) -> tuple[str, list[Path]]:
    """``(full model, adapter directories from the base up)``; ``(name, [])`` for a full model or hub id."""
    chain: list[Path] = []
    current = str(name)
    while is_adapter_dir(current):
        chain.insert(0, Path(current).resolve())
        if len(chain) > MAX_CHAIN:
            raise ValueError(f"adapter chain under {name} is longer than {MAX_CHAIN} directories: a cycle?")
        current = adapter_base(chain[0])
    return current, chain


def adapter_chain(name: str | Path) -> list[Path]:
    """Adapter directories from the base up (``[]`` for a full model)."""
    return split_adapters(name)[1]


def merge_adapters(model, processor, chain: list[Path], **processor_kwargs):
    """``(model, processor)`` with each adapter of ``chain`` merged in order: a plain model, no PEFT wrapper."""
    if not chain:
        return model, processor
    from peft import PeftModel

    for adapter in chain:
        logger.info("merging the adapter %s", adapter)
        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    saved = [a for a in chain if any((a / name).is_file() for name in PROCESSOR_FILES)]
    if saved:
        processor = type(processor).from_pretrained(saved[-1], **processor_kwargs)
    return model, processor
