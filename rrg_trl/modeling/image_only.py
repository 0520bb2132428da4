"""Image-only variants of the processors that insist on a video processor.

``Qwen2VLProcessor``, ``Qwen2_5_VLProcessor`` and ``SmolVLMProcessor`` require a ``video_processor``; every video processor in
transformers needs torchvision, whose PyPI wheels are CUDA-only and break ``import transformers`` on CPU
torch. Report generation never feeds video, so these subclasses simply drop the ``video_processor``
attribute: ``ProcessorMixin`` derives a processor's sub-processors from its ``__init__`` signature, so they
load and save an image processor and a tokenizer only, and everything else (placeholder expansion,
``mm_token_type_ids``, chat templates) is the parent's code.

They are registered with ``AutoProcessor`` (see :func:`register_image_only_processors`), so a directory
saved by one of them (the tiny kit, a trained checkpoint) loads with ``AutoProcessor.from_pretrained``. A
hub checkpoint records the built-in name (e.g. ``"processor_class": "Qwen2VLProcessor"``), which ``AutoProcessor`` resolves to the
built-in class by name; load those with :func:`rrg_trl.modeling.loading.load_processor`.
"""

from __future__ import annotations

from transformers import (
    AutoProcessor,
    ProcessorMixin,
    Qwen2_5_VLConfig,
    Qwen2_5_VLProcessor,
    Qwen2VLConfig,
    Qwen2VLProcessor,
    SmolVLMConfig,
    SmolVLMProcessor,
)


class ImageOnlyQwen2VLProcessor(Qwen2VLProcessor):
    """``Qwen2VLProcessor`` without a video processor (works without torchvision)."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        # The parent forwards (image_processor, tokenizer, None) to ProcessorMixin, which pairs them with this
        # class's attributes (image_processor, tokenizer) only.
        super().__init__(
            image_processor, tokenizer, video_processor=None, chat_template=chat_template, **kwargs
        )


class ImageOnlyQwen2_5_VLProcessor(Qwen2_5_VLProcessor):  # noqa: N801 (mirrors the transformers name)
    """``Qwen2_5_VLProcessor`` without a video processor (works without torchvision)."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(
            image_processor, tokenizer, video_processor=None, chat_template=chat_template, **kwargs
        )


class ImageOnlySmolVLMProcessor(SmolVLMProcessor):
    """``SmolVLMProcessor`` (SmolVLM2) without a video processor; still needs ``num2words``, as the parent."""

    def __init__(
        self, image_processor=None, tokenizer=None, image_seq_len: int = 169, chat_template=None, **kwargs
    ):
        super().__init__(
            image_processor,
            tokenizer,
            None,
            image_seq_len=image_seq_len,
            chat_template=chat_template,
            **kwargs,
        )

    def apply_chat_template(self, conversation, chat_template=None, **kwargs):
        # SmolVLMProcessor's override only adds video-sampling defaults read off the video processor.
        return ProcessorMixin.apply_chat_template(self, conversation, chat_template, **kwargs)


# model_type -> image-only processor class
IMAGE_ONLY_PROCESSORS = {
    "qwen2_vl": ImageOnlyQwen2VLProcessor,
    "qwen2_5_vl": ImageOnlyQwen2_5_VLProcessor,
    "smolvlm": ImageOnlySmolVLMProcessor,
}
# built-in class name a hub checkpoint records -> its image-only variant
IMAGE_ONLY_BY_CLASS = {cls.__mro__[1].__name__: cls for cls in IMAGE_ONLY_PROCESSORS.values()}
_CONFIGS = {"qwen2_vl": Qwen2VLConfig, "qwen2_5_vl": Qwen2_5_VLConfig, "smolvlm": SmolVLMConfig}


def register_image_only_processors() -> None:
    """Make ``AutoProcessor`` resolve the image-only class names (idempotent)."""
    for model_type, processor_class in IMAGE_ONLY_PROCESSORS.items():
        AutoProcessor.register(_CONFIGS[model_type], processor_class, exist_ok=True)
