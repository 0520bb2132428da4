"""4-bit layers on CPU: the same result on AVX2-only and AVX-512-BF16 CPUs (AMD EPYC, Intel Xeon).

bitsandbytes decides per layer, at the first inference-mode forward, whether to repack NF4 weights for its
AVX-512-BF16 kernels (``Linear4bit.support_avx512bf16_for_cpu``, from the CPU's features). The repacking itself
is plain torch, so these tests run bitsandbytes' own conversion on every CPU: that reproduces the Intel-only
failure anywhere, and shows our load-time rule matches it layer for layer. Where this CPU has AVX-512-BF16,
the packed kernels run too and must agree with the unpacked path.
"""

from __future__ import annotations

import copy
import importlib.util

import pytest
import torch

from rrg_trl.modeling import family_spec, load_policy, quantization_config
from rrg_trl.modeling.quantization import cpu_unpackable_layers
from tests.rrg_trl.modeling._helpers import chat, xray

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("bitsandbytes") is None, reason="bitsandbytes is not installed"
)


def _raw_4bit(path):
    """The 4-bit model exactly as transformers + bitsandbytes load it, without our load-time check."""
    from transformers import AutoConfig, AutoModelForImageTextToText

    spec = family_spec(AutoModelForImageTextToText.from_config(AutoConfig.from_pretrained(path)))
    return AutoModelForImageTextToText.from_pretrained(
        path,
        dtype=torch.float32,
        device_map="cpu",
        quantization_config=quantization_config(spec, compute_dtype=torch.float32),
    )


def _packs(module) -> bool:
    """Whether bitsandbytes' CPU repacking (what an AVX-512-BF16 CPU does at inference) accepts the layer."""
    from bitsandbytes.functional import _convert_weight_packed_for_cpu

    try:
        _convert_weight_packed_for_cpu(module.weight.data.clone(), copy.deepcopy(module.weight.quant_state))
    except (RuntimeError, AssertionError):
        return False
    return True


@pytest.mark.parametrize("size", ["tiny", "qlora"])
def test_the_load_time_rule_is_bitsandbytes_own(tiny_policy, size):
    import bitsandbytes as bnb

    model = _raw_4bit(tiny_policy("qwen2_vl", size))
    layers = {n: m for n, m in model.named_modules() if isinstance(m, bnb.nn.Linear4bit)}
    refused = {entry.split(" ")[0] for entry in cpu_unpackable_layers(model)}
    assert layers and {n for n, m in layers.items() if not _packs(m)} == refused
    assert (refused == set()) == (size == "qlora"), (
        "the qlora size packs everywhere; the 32-wide tiny does not"
    )


def test_an_unpackable_4bit_model_is_refused_naming_the_layer(tiny_policy):
    with pytest.raises(ValueError) as error:
        load_policy(tiny_policy("qwen2_vl"), dtype="float32", load_in_4bit=True)
    message = str(error.value)
    assert "model.language_model.layers.0.self_attn.q_proj (32 -> 32)" in message
    assert "multiple of 64" in message and "multiple of 32" in message and "--size qlora" in message


def test_inference_takes_the_cpu_family_path_and_agrees(tiny_policy):
    """Generation (no grad, eval): packed kernels where the CPU has AVX-512-BF16, the same tokens either way."""
    import bitsandbytes as bnb
    from bitsandbytes.functional import has_avx512bf16

    model, processor = load_policy(tiny_policy("qwen2_vl", "qlora"), dtype="float32", load_in_4bit=True)
    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert all(m.support_avx512bf16_for_cpu == bool(has_avx512bf16()) for m in layers)
    batch = processor(images=[[xray(1)]], text=[chat(processor)], return_tensors="pt")
    generate = {"max_new_tokens": 6, "do_sample": False, "pad_token_id": processor.tokenizer.pad_token_id}
    unpacked = copy.deepcopy(model)
    for m in unpacked.modules():
        if isinstance(m, bnb.nn.Linear4bit):
            m.support_avx512bf16_for_cpu = False  # the AVX2 path: dequantise, then a float matmul
    model.eval()
    with torch.no_grad():
        reference = unpacked.eval()(**batch).logits
        logits = model(**batch).logits
        tokens = model.generate(**batch, **generate)
    packed = [getattr(m.weight.quant_state, "packing_format_for_cpu", False) for m in layers]
    assert all(packed) == bool(has_avx512bf16()) and any(packed) == bool(has_avx512bf16())
    # The packed kernels compute in bf16: close to, not equal to, the float32 path.
    assert torch.allclose(logits, reference, atol=0.05, rtol=0.05)
    assert tokens.shape[1] > batch["input_ids"].shape[1]
