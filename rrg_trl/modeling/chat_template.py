"""The ChatML-style chat template the tiny kit and LM-RRG ship.

TRL hands processors two shapes of message content: plain strings (a conversational ``prompt`` as the data
module writes it) and lists of ``{"type": "image"}`` / ``{"type": "text", "text": ...}`` blocks (after
``prepare_multimodal_messages``, which also turns system and assistant strings into text blocks). The
template renders both; an image block becomes the family's image placeholder, which its processor expands.
"""

from __future__ import annotations

IM_START, IM_END = "<|im_start|>", "<|im_end|>"


def chatml_template(image_placeholder: str) -> str:
    """``<|im_start|>role\\n...<|im_end|>\\n`` turns; image blocks render as ``image_placeholder``."""
    if "'" in image_placeholder:
        raise ValueError(f"image placeholder {image_placeholder!r} must not contain a single quote")
    return (
        "{%- for message in messages -%}"
        "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
        "{%- if message['content'] is string -%}{{- message['content'] -}}"
        "{%- else -%}{%- for block in message['content'] -%}"
        "{%- if block['type'] == 'image' -%}{{- '" + image_placeholder + "' -}}"
        "{%- elif block['type'] == 'text' -%}{{- block['text'] -}}{%- endif -%}"
        "{%- endfor -%}{%- endif -%}"
        "{{- '<|im_end|>\\n' -}}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
    )
