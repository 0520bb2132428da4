"""load_policy: every tiny family loads, trains a LoRA step, generates, saves and reloads; QLoRA on CPU."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForImageTextToText, AutoProcessor

from rrg_trl.modeling import FAMILIES, family_spec, load_policy
from tests.rrg_trl.modeling._helpers import chat, xray


def _batch(processor, report="The lungs are clear."):
    texts = [chat(processor, report), chat(processor, report + " No effusion.")]
    return processor(images=[[xray(1)], [xray(2)]], text=texts, padding=True, return_tensors="pt")


@pytest.mark.parametrize("family", FAMILIES)
def test_lora_step_generate_save_reload(tiny_policy, tmp_path, family):
    model, processor = load_policy(tiny_policy(family), dtype="float32", lora={"r": 4, "alpha": 8})
    assert isinstance(model, PeftModel)
    spec = family_spec(model)
    batch = _batch(processor)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    out = model(**batch, labels=labels)
    out.loss.backward()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    saved = {p.rsplit(".", 1)[-1] for p in spec.new_modules}
    assert trainable and all("lora_" in n or any(s in n for s in saved) for n in trainable)
    assert all(f"model.{spec.language_model}." in n for n in trainable if "lora_" in n)
    assert any(
        model.get_parameter(n).grad is not None and model.get_parameter(n).grad.abs().sum() > 0
        for n in trainable
    )
    assert not any(
        p.requires_grad
        for v in spec.vision_modules
        for p in model.get_base_model().get_submodule(v).parameters()
    )

    # Generation from a left-padded batch of prompts.
    processor.tokenizer.padding_side = "left"
    prompts = processor(
        images=[[xray(3)], [xray(4)]], text=[chat(processor)] * 2, padding=True, return_tensors="pt"
    )
    model.eval()
    generated = model.generate(**prompts, max_new_tokens=4, do_sample=False)
    assert generated.shape[0] == 2 and 1 <= generated.shape[1] - prompts["input_ids"].shape[1] <= 4

    # Adapter and merged-model round trips reproduce the logits.
    with torch.no_grad():
        torch.nn.init.normal_(next(p for n, p in model.named_parameters() if "lora_B" in n), std=0.5)
        reference = model(**batch).logits
    model.save_pretrained(tmp_path / "adapter")
    base = AutoModelForImageTextToText.from_pretrained(tiny_policy(family))
    reloaded = PeftModel.from_pretrained(base, tmp_path / "adapter").eval()
    with torch.no_grad():
        assert torch.allclose(reloaded(**batch).logits, reference, atol=1e-5)
    merged = reloaded.merge_and_unload()
    merged.save_pretrained(tmp_path / "merged")
    processor.save_pretrained(tmp_path / "merged")
    again = AutoModelForImageTextToText.from_pretrained(tmp_path / "merged").eval()
    batch_again = _batch(AutoProcessor.from_pretrained(tmp_path / "merged"))
    assert torch.equal(batch_again["input_ids"], batch["input_ids"])
    with torch.no_grad():
        assert torch.allclose(again(**batch_again).logits, reference, atol=1e-4)


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="bitsandbytes is not installed")
@pytest.mark.parametrize("family", ["qwen2_vl", "lmrrg"])
def test_qlora_loads_and_trains_on_cpu(tiny_policy, family):
    import bitsandbytes as bnb

    policy = tiny_policy(family, "qlora")  # widths bitsandbytes can repack on AVX-512-BF16 CPUs too
    model, processor = load_policy(policy, dtype="float32", load_in_4bit=True, lora={"r": 4})
    base = model.get_base_model()
    spec = family_spec(model)
    decoder_linears = [
        m for m in base.get_submodule(spec.language_model).modules() if isinstance(m, bnb.nn.Linear4bit)
    ]
    assert len(decoder_linears) == 7 * base.config.text_config.num_hidden_layers
    for path in (*spec.vision_modules, *spec.bridge_modules):
        assert not any(isinstance(m, bnb.nn.Linear4bit) for m in base.get_submodule(path).modules())
    assert not isinstance(base.lm_head, bnb.nn.Linear4bit)
    batch = _batch(processor)
    out = model(**batch, labels=batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100))
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert any(
        p.grad is not None and p.grad.abs().sum() > 0 for n, p in model.named_parameters() if "lora_B" in n
    )


def test_bad_arguments(tiny_policy):
    with pytest.raises(ValueError, match="dtype must be 'auto', a torch.dtype or one of"):
        load_policy(tiny_policy("llava"), dtype="fp8")
    with pytest.raises(ValueError, match="lora must be True, a dict"):
        load_policy(tiny_policy("llava"), lora="yes")
