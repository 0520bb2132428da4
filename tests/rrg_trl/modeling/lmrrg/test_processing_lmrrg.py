"""LMRRGProcessor: one image placeholder -> num_image_tokens placeholders; TRL's chat-template paths."""

from __future__ import annotations

import pytest
from transformers import AutoProcessor

from rrg_trl.modeling import LMRRGProcessor
from rrg_trl.modeling.tiny import make_tokenizer
from tests.rrg_trl.modeling._helpers import chat, xray


def test_expansion_and_outputs(tiny_policy):
    processor = AutoProcessor.from_pretrained(tiny_policy("lmrrg"))
    assert isinstance(processor, LMRRGProcessor) and processor.num_image_tokens == 15
    texts = [chat(processor), chat(processor, "Heart size is normal.")]
    inputs = processor(images=[[xray(1)], [xray(2)]], text=texts, padding=True, return_tensors="pt")
    assert set(inputs) == {"input_ids", "attention_mask", "pixel_values"}
    assert inputs["pixel_values"].shape == (2, 3, 32, 32)
    assert (inputs["input_ids"] == processor.image_token_id).sum(-1).tolist() == [15, 15]
    with pytest.raises(ValueError, match="1 <image> tokens and 2 images"):
        processor(images=[xray(1), xray(2)], text=[chat(processor)], return_tensors="pt")


def test_processor_level_chat_template_with_images(tiny_policy):
    """SFT's conversational collator calls processor.apply_chat_template with the images in the messages."""
    processor = AutoProcessor.from_pretrained(tiny_policy("lmrrg"))
    messages = [
        [
            {
                "role": "user",
                "content": [{"type": "image", "image": xray(s)}, {"type": "text", "text": "Findings?"}],
            },
            {"role": "assistant", "content": [{"type": "text", "text": "No acute abnormality."}]},
        ]
        for s in (3, 4)
    ]
    out = processor.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_tensors="pt", processor_kwargs={"padding": True}
    )
    assert out["pixel_values"].shape[0] == 2
    assert (out["input_ids"] == processor.image_token_id).sum(-1).tolist() == [15, 15]


def test_tokenizer_without_image_token_is_rejected():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    backend = Tokenizer(models.WordLevel({"lungs": 0, "<unk>": 1}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>")
    image_processor = SiglipImageProcessorPil()
    with pytest.raises(ValueError, match="the tokenizer has no '<image>' token"):
        LMRRGProcessor(image_processor=image_processor, tokenizer=tokenizer)
    with pytest.raises(ValueError, match="num_image_tokens must be >= 1"):
        LMRRGProcessor(image_processor=image_processor, tokenizer=make_tokenizer("lmrrg"), num_image_tokens=0)
