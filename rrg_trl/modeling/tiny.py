"""The tiny policy kit: small RANDOM vision-language policies written in the official on-disk formats.

No model hub is reachable in CI, so every training test (and the offline demo) loads a policy that this
module writes: model weights + config (``save_pretrained``), an image processor, a byte-level BPE tokenizer
trained offline on synthetic report text (:mod:`reward_server.tinykit.corpus`) and a chat template. Each
directory loads with ``AutoModelForImageTextToText`` + ``AutoProcessor`` exactly like the hub checkpoint of
its family, so the real loading code (:mod:`rrg_trl.modeling.loading`) and TRL run unchanged against it.

Every family shares one ChatML-style template (``<|im_start|>role ... <|im_end|>``) that accepts string
content and lists of ``{"type": "image"}`` / ``{"type": "text"}`` blocks; only the image placeholder differs,
and it is the one each family's processor expands. Sizes are chosen so that the processors emit a handful of
image tokens (4 for Qwen2-VL / Idefics3 / Gemma 3, 3 for LLaVA) and the whole directory is a few MB.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import torch

from rrg_trl.modeling.chat_template import IM_END, IM_START, chatml_template

FAMILIES = ("qwen2_vl", "qwen2_5_vl", "llava", "idefics3", "smolvlm", "gemma3", "lmrrg")
SIZES = ("tiny", "qlora", "3b")

# ``size="3b"``: Qwen2.5-VL-3B-Instruct's architecture (its config.json), random weights, for GPU speed and
# memory measurements (bench_grpo). Only the vocabulary stays the tiny offline BPE (~1k tokens vs 151,936:
# no hub tokenizer here), so embedding and LM head are ~0.6 B parameters smaller than the real model's.
QWEN2_5_VL_3B_TEXT = {
    "hidden_size": 2048,
    "intermediate_size": 11008,
    "num_hidden_layers": 36,
    "num_attention_heads": 16,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True,
}
QWEN2_5_VL_3B_ROPE = {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]}
QWEN2_5_VL_3B_VISION = {
    "depth": 32,
    "hidden_size": 1280,
    "intermediate_size": 3420,
    "num_heads": 16,
    "out_hidden_size": 2048,
    "window_size": 112,
    "fullatt_block_indexes": [7, 15, 23, 31],
}
# 448x448 pixels (a common CXR input size) -> 32x32 patches -> 256 image tokens after the 2x2 merge.
QWEN2_5_VL_3B_PIXELS = 448 * 448

# Shared tiny text-decoder shapes. "qlora" doubles the widths so that every decoder linear is one that
# bitsandbytes can repack for its AVX-512-BF16 CPU kernels (input width a multiple of 64, output width a
# multiple of 32; see rrg_trl.modeling.quantization): 4-bit tests then take the same path on every x86 CPU.
TEXT_SHAPES = {
    "tiny": {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2},
    "qlora": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
    },
}
LAYERS = 2
VOCAB = 1024

PAD = "<|endoftext|>"
CHAT_SPECIALS = [PAD, IM_START, IM_END]

FAMILY_SPECIALS = {
    "qwen2_vl": ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"],
    "llava": ["<image>"],
    "idefics3": ["<image>", "<fake_token_around_image>", "<global-img>", "<end_of_utterance>"],
    "gemma3": ["<start_of_image>", "<end_of_image>", "<image_soft_token>"],
    "lmrrg": ["<image>"],
}
FAMILY_SPECIALS["qwen2_5_vl"] = FAMILY_SPECIALS["qwen2_vl"]
FAMILY_SPECIALS["smolvlm"] = FAMILY_SPECIALS["idefics3"]

# The text a chat-template image block renders to (what each family's processor expands).
IMAGE_PLACEHOLDER = {
    "qwen2_vl": "<|vision_start|><|image_pad|><|vision_end|>",
    "qwen2_5_vl": "<|vision_start|><|image_pad|><|vision_end|>",
    "llava": "<image>",
    "idefics3": "<image>",
    "smolvlm": "<image>",
    "gemma3": "<start_of_image>",
    "lmrrg": "<image>",
}


# The SigLIP tower of the tiny Gemma 3 and LM-RRG policies: 32 px images, 4x4 patches of 8 px.
TINY_SIGLIP_VISION = {
    "model_type": "siglip_vision_model",
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "image_size": 32,
    "patch_size": 8,
}


# LM-RRG's queries start at the RMS of the tiny embeddings (init std 0.02), not at unit RMS: unit-RMS queries
# drown the image in the region tokens, and the demo's SFT then learns them as fixed prompts (issue 16).
TINY_REGION_QUERY_SCALE = 0.02


@lru_cache(maxsize=8)
def _trained_bpe_json(specials: tuple[str, ...], seed: int) -> str:
    """A byte-level BPE trained on synthetic report text (cached: training takes ~1 s)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from reward_server.tinykit.corpus import tokenizer_corpus

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=list(specials),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(tokenizer_corpus(seed), trainer)
    return tok.to_str()


def make_tokenizer(family: str, seed: int = 0):
    """The family's tokenizer: ChatML specials + the family's multimodal specials, ``<|im_end|>`` as eos."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    specials = CHAT_SPECIALS + FAMILY_SPECIALS[family]
    backend = Tokenizer.from_str(_trained_bpe_json(tuple(specials), seed))
    extra = {}
    if family == "gemma3":  # Gemma3Processor reads these attributes off the tokenizer
        extra = {
            "boi_token": "<start_of_image>",
            "eoi_token": "<end_of_image>",
            "image_token": "<image_soft_token>",
        }
    elif family in ("llava", "idefics3", "smolvlm", "lmrrg"):
        extra = {"image_token": "<image>"}
    elif family in ("qwen2_vl", "qwen2_5_vl"):
        extra = {"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"}
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=IM_END,
        pad_token=PAD,
        extra_special_tokens=extra,
        model_max_length=2048,
        padding_side="left",
    )


def _text_kwargs(tokenizer, size: str) -> dict:
    return {
        "vocab_size": len(tokenizer),
        **TEXT_SHAPES["tiny" if size == "3b" else size],
        "num_hidden_layers": LAYERS,
        "max_position_embeddings": 2048,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "bos_token_id": tokenizer.convert_tokens_to_ids(IM_START),
    }


def _build_qwen_vl(tokenizer, family: str, size: str = "tiny"):
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from rrg_trl.modeling.image_only import IMAGE_ONLY_PROCESSORS

    ids = tokenizer.convert_tokens_to_ids
    text = _text_kwargs(tokenizer, size)
    hidden = text["hidden_size"]
    head_dim = hidden // text["num_attention_heads"]
    # Multimodal RoPE: the t/h/w sections must add up to head_dim / 2.
    rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [1, 1, head_dim // 2 - 2]}
    vision = {"depth": 1, "num_heads": 2, "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2}
    if family == "qwen2_vl":
        from transformers import Qwen2VLConfig as Config
        from transformers import Qwen2VLForConditionalGeneration as Model

        vision.update(embed_dim=32, hidden_size=hidden, mlp_ratio=2)
    else:
        from transformers import Qwen2_5_VLConfig as Config
        from transformers import Qwen2_5_VLForConditionalGeneration as Model

        vision.update(
            hidden_size=32,
            out_hidden_size=hidden,
            intermediate_size=64,
            window_size=56,
            fullatt_block_indexes=[0],
        )
    text["rope_parameters"] = rope
    pixels = 56 * 56  # 4x4 patches of 14 px -> 4 tokens after the 2x2 merge
    if size == "3b":
        text.update(QWEN2_5_VL_3B_TEXT, rope_parameters=QWEN2_5_VL_3B_ROPE)
        vision.update(QWEN2_5_VL_3B_VISION)
        pixels = QWEN2_5_VL_3B_PIXELS
    config = Config(
        text_config=text,
        vision_config=vision,
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
    )
    image_processor = Qwen2VLImageProcessorPil(min_pixels=pixels, max_pixels=pixels)
    processor = IMAGE_ONLY_PROCESSORS[family](image_processor=image_processor, tokenizer=tokenizer)
    return Model(config), processor


def _build_llava(tokenizer, family: str, size: str = "tiny"):
    from transformers import LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    vision = {
        "model_type": "clip_vision_model",
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": 28,
        "patch_size": 14,
        "projection_dim": 32,
    }
    config = LlavaConfig(
        vision_config=vision,
        text_config={"model_type": "llama", **_text_kwargs(tokenizer, size)},
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_seq_length=4,
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28})
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=14,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's CLS token, dropped by the "default" strategy
    )
    return LlavaForConditionalGeneration(config), processor


def _build_idefics3(tokenizer, family: str, size: str = "tiny"):
    """Idefics3 (SmolVLM v1 checkpoints use it too) and SmolVLM2 (``smolvlm``): same layout, same sizes."""
    if family == "idefics3":
        from transformers import Idefics3Config as Config
        from transformers import Idefics3ForConditionalGeneration as Model
        from transformers import Idefics3Processor as Processor
        from transformers.models.idefics3.image_processing_pil_idefics3 import (
            Idefics3ImageProcessorPil as Images,
        )
    else:
        from transformers import SmolVLMConfig as Config
        from transformers import SmolVLMForConditionalGeneration as Model
        from transformers.models.smolvlm.image_processing_pil_smolvlm import (
            SmolVLMImageProcessorPil as Images,
        )

        from rrg_trl.modeling.image_only import ImageOnlySmolVLMProcessor as Processor
    config = Config(
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 64,
            "patch_size": 16,
        },
        text_config={"model_type": "llama", **_text_kwargs(tokenizer, size)},
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        scale_factor=2,
        pad_token_id=tokenizer.pad_token_id,
    )
    # 64 px / 16 px patches = 4x4, pixel-shuffled by 2 -> 4 image tokens; no tiling for the tiny model.
    image_processor = Images(
        do_image_splitting=False, size={"longest_edge": 64}, max_image_size={"longest_edge": 64}
    )
    processor = Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=4)
    return Model(config), processor


def _build_gemma3(tokenizer, family: str, size: str = "tiny"):
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3Processor
    from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil

    ids = tokenizer.convert_tokens_to_ids
    text = _text_kwargs(tokenizer, size)
    head_dim = text["hidden_size"] // text["num_attention_heads"]
    text.update(head_dim=head_dim, query_pre_attn_scalar=head_dim, sliding_window=64)
    config = Gemma3Config(
        text_config=text,
        vision_config=dict(TINY_SIGLIP_VISION),  # a copy: config classes may edit what they are given
        mm_tokens_per_image=4,  # 4x4 patches average-pooled to 2x2
        boi_token_index=ids("<start_of_image>"),
        eoi_token_index=ids("<end_of_image>"),
        image_token_index=ids("<image_soft_token>"),
    )
    image_processor = Gemma3ImageProcessorPil(size={"height": 32, "width": 32})
    processor = Gemma3Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_length=4)
    return Gemma3ForConditionalGeneration(config), processor


def _build_lmrrg(tokenizer, family: str, size: str = "tiny"):
    from rrg_trl.modeling.lmrrg import build_lmrrg

    return build_lmrrg(
        tokenizer,
        vision_config=dict(TINY_SIGLIP_VISION),  # a copy: config classes may edit what they are given
        text_config={"model_type": "llama", **_text_kwargs(tokenizer, size)},
        image_size=32,
        region_query_scale=TINY_REGION_QUERY_SCALE,
    )


_BUILDERS: dict[str, Callable] = {
    "qwen2_vl": _build_qwen_vl,
    "qwen2_5_vl": _build_qwen_vl,
    "llava": _build_llava,
    "idefics3": _build_idefics3,
    "smolvlm": _build_idefics3,
    "gemma3": _build_gemma3,
    "lmrrg": _build_lmrrg,
}


def build_tiny_policy(family: str = "qwen2_vl", seed: int = 0, size: str = "tiny"):
    """The tiny (model, processor) pair in memory, deterministic for a given seed.

    ``size="qlora"``: the tiny policy with decoder widths bitsandbytes can pack on every CPU (:data:`TEXT_SHAPES`).
    ``size="3b"`` (``qwen2_5_vl`` only) gives the real-shaped policy of :data:`QWEN2_5_VL_3B_TEXT` instead.
    """
    if family not in _BUILDERS:
        raise ValueError(f"unknown tiny policy family {family!r}; choose one of {FAMILIES}")
    if size not in SIZES:
        raise ValueError(f"unknown policy size {size!r}; choose one of {SIZES}")
    if size == "3b" and family != "qwen2_5_vl":
        raise ValueError(f"size {size!r} is the Qwen2.5-VL-3B shape: use family 'qwen2_5_vl', not {family!r}")
    tokenizer = make_tokenizer(family, seed)
    torch.manual_seed(seed)
    model, processor = _BUILDERS[family](tokenizer, family, size)
    processor.chat_template = chatml_template(IMAGE_PLACEHOLDER[family])
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.convert_tokens_to_ids(IM_START)
    return model.eval(), processor


def make_tiny_policy(
    out_dir: str | Path, family: str = "qwen2_vl", seed: int = 0, overwrite: bool = True, size: str = "tiny"
) -> Path:
    """Write a tiny random policy (model + processor + tokenizer + chat template) to ``out_dir``.

    ``size="3b"`` writes the real-shaped Qwen2.5-VL-3B policy in bfloat16 (~6.9 GB; minutes on a CPU).
    """
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out} is not empty")
        shutil.rmtree(out)
    model, processor = build_tiny_policy(family, seed, size)
    if size == "3b":
        model = model.to(torch.bfloat16)  # the dtype such checkpoints ship in: half the disk and load time
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out
