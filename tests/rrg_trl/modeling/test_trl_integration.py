"""TRL 1.16 trains LM-RRG exactly like a Hugging Face VLM: GRPO and SFT, a couple of steps on CPU.

Also records what TRL hands the model, since that is the contract LM-RRG's forward has to meet.
"""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForImageTextToText
from trl import GRPOConfig, GRPOTrainer, SFTConfig, SFTTrainer

from rrg_trl.modeling import family_spec, load_policy, lora_config
from tests.rrg_trl.modeling._helpers import xray

PROMPT = [
    {"role": "system", "content": "You are a radiologist."},
    {"role": "user", "content": "Write the findings section."},
]
REPORTS = [
    "The lungs are clear.",
    "No pleural effusion.",
    "Heart size is normal.",
    "Mild basilar atelectasis.",
]
# Per family: what the processor adds next to input_ids / attention_mask, i.e. what TRL forwards.
EXPECTED_MM_KWARGS = {
    "lmrrg": {"pixel_values"},
    "qwen2_vl": {"pixel_values", "image_grid_thw", "mm_token_type_ids"},
}


def _common(tmp_path):
    return {
        "output_dir": str(tmp_path),
        "use_cpu": True,
        "bf16": False,
        "report_to": "none",
        "save_strategy": "no",
        "logging_steps": 1,
        "per_device_train_batch_size": 2,
        "learning_rate": 0.05,  # large, so that one step visibly moves every trainable tensor
        "dataloader_num_workers": 0,
    }


def _snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def _assert_all_moved(model, before):
    lora_b = [n for n in before if "lora_B" in n]
    assert lora_b and all(not torch.equal(model.get_parameter(n), before[n]) for n in lora_b)
    saved = [n for n in before if "modules_to_save" in n and n.endswith("weight")]
    assert all(not torch.equal(model.get_parameter(n), before[n]) for n in saved)
    return saved


@pytest.mark.parametrize("family", ["lmrrg", "qwen2_vl"])
def test_grpo_steps(tiny_policy, tmp_path, family):
    path = tiny_policy(family)
    dataset = Dataset.from_list(
        [{"prompt": PROMPT, "image": xray(i, size=(80, 64)), "report": r} for i, r in enumerate(REPORTS)]
    )
    rewarded = []

    def length_reward(completions, report, **kwargs):
        rewarded.extend(zip(completions, report, strict=True))
        return [-abs(len(c[0]["content"]) - len(r)) / 10 for c, r in zip(completions, report, strict=True)]

    args = GRPOConfig(
        **_common(tmp_path),
        num_generations=2,
        max_completion_length=4,
        max_steps=1,
        beta=0.0,
        log_completions=False,
    )
    peft_config = lora_config(AutoModelForImageTextToText.from_pretrained(path), r=4, alpha=8)
    # LM-RRG goes in by path: TRL's own loaders (AutoProcessor, its AutoModel fallback) must resolve it.
    trainer = GRPOTrainer(
        model=str(path) if family == "lmrrg" else load_policy(path, dtype="float32").model,
        reward_funcs=length_reward,
        args=args,
        train_dataset=dataset,
        processing_class=None if family == "lmrrg" else load_policy(path).processor,
        peft_config=peft_config,
    )
    base = trainer.model.get_base_model()
    assert type(base).__name__ == (
        "LMRRGForConditionalGeneration" if family == "lmrrg" else "Qwen2VLForConditionalGeneration"
    )
    vision_calls, forward_kwargs = [], []
    base.get_submodule(family_spec(base).vision_modules[0]).register_forward_hook(
        lambda *a: vision_calls.append(1)
    )
    base.register_forward_pre_hook(
        lambda m, args, kwargs: forward_kwargs.append(set(kwargs)), with_kwargs=True
    )
    before = _snapshot(trainer.model)
    trainer.train()

    assert len(rewarded) == 2 and {r for _, r in rewarded} <= set(REPORTS)
    assert all(isinstance(c[0]["content"], str) for c, _ in rewarded)
    assert len(vision_calls) == 2  # once to generate, once for the policy log-probs
    mm_kwargs = set.union(*forward_kwargs) - {
        "input_ids",
        "attention_mask",
        "labels",
        "fused_lm_head",
        "logits_to_keep",
    }
    assert EXPECTED_MM_KWARGS[family] <= mm_kwargs
    saved = _assert_all_moved(trainer.model, before)
    assert bool(saved) == (family == "lmrrg")  # LM-RRG's region extractor and projectors train fully
    logs = trainer.state.log_history[0]
    assert torch.isfinite(torch.tensor(logs["loss"])) and logs["grad_norm"] > 0


@pytest.mark.parametrize("family", ["lmrrg", "llava"])
def test_sft_steps(tiny_policy, tmp_path, family):
    model, processor = load_policy(tiny_policy(family), dtype="float32")
    dataset = Dataset.from_list(
        [
            {"prompt": PROMPT, "completion": [{"role": "assistant", "content": r}], "image": xray(i)}
            for i, r in enumerate(REPORTS)
        ]
    )
    trainer = SFTTrainer(
        model=model,
        args=SFTConfig(**_common(tmp_path), max_steps=2, max_length=None),
        train_dataset=dataset,
        processing_class=processor,
        peft_config=lora_config(model, r=4, alpha=8),
    )
    before = _snapshot(trainer.model)
    trainer.train()
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert len(losses) == 2 and all(0 < loss < 20 for loss in losses)
    _assert_all_moved(trainer.model, before)
