"""LM-RRG processor: an image processor + the decoder's tokenizer + a chat template.

Each image placeholder in the text (``<image>``, which the chat template emits for an ``{"type": "image"}``
block) is expanded to ``num_image_tokens`` placeholders (one per region token, or per pooled patch token in
the ablation), exactly as LLaVA's processor does; the model then writes its image tokens over them. The
outputs are ``input_ids``, ``attention_mask`` and ``pixel_values`` (one image per row), the layout TRL's
VLM trainers slice per sample.
"""

from __future__ import annotations

from transformers import ProcessorMixin


class LMRRGProcessor(ProcessorMixin):
    def __init__(
        self,
        image_processor=None,
        tokenizer=None,
        chat_template=None,
        num_image_tokens: int = 15,
        image_token: str = "<image>",
        **kwargs,
    ):
        r"""
        num_image_tokens (`int`): placeholders per image; must equal ``LMRRGConfig.num_image_tokens``.
        image_token (`str`): the placeholder the chat template writes for an image block.
        """
        if num_image_tokens < 1:
            raise ValueError(f"num_image_tokens must be >= 1, got {num_image_tokens}")
        self.num_image_tokens = num_image_tokens
        self.image_token = getattr(tokenizer, "image_token", None) or image_token
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        if self.image_token_id is None or self.image_token_id == tokenizer.unk_token_id:
            raise ValueError(
                f"the tokenizer has no {self.image_token!r} token; add it as a special token first"
            )
        super().__init__(image_processor, tokenizer, chat_template=chat_template, **kwargs)

    def replace_image_token(self, image_inputs: dict, image_idx: int, **kwargs) -> str:
        return self.image_token * self.num_image_tokens
