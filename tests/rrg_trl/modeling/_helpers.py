"""Shared test inputs: random greyscale radiographs and rendered chat prompts."""

from __future__ import annotations

import numpy as np
from PIL import Image


def xray(seed: int, size: tuple[int, int] = (72, 64)) -> Image.Image:
    """A random greyscale 'radiograph' as RGB, as the data module hands images over."""
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0]), dtype=np.uint8)
    return Image.fromarray(pixels, mode="L").convert("RGB")


def chat(processor, report: str | None = None) -> str:
    """The rendered prompt (and report, if given) in the typed-block form TRL produces."""
    messages = [
        {"role": "system", "content": [{"type": "text", "text": "You are a radiologist."}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Write the findings."}]},
    ]
    if report is not None:
        messages.append({"role": "assistant", "content": [{"type": "text", "text": report}]})
    return processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=report is None)
