"""Generation for evaluation: TRL-shaped prompts, batching, and policies given as (chains of) LoRA adapters."""

from __future__ import annotations

import json

import pytest
import torch

from rrg_trl.data import load_dataset_from_config
from rrg_trl.evaluation.generation import generate_reports, load_eval_policy
from rrg_trl.modeling import apply_lora, load_policy


@pytest.fixture(scope="module")
def split():
    return load_dataset_from_config(
        {"dataset": "synthetic", "synthetic_num_test": 3, "splits": ["test"], "image_size": 64}, split="test"
    )


def _adapter(base_dir, out_dir, seed: int):
    """A LoRA adapter with non-zero random B (peft's default init would make it a no-op), saved by PEFT."""
    model, _ = load_policy(base_dir, dtype="float32")
    torch.manual_seed(seed)
    model = apply_lora(model, {"r": 4, "init_lora_weights": False})
    model.save_pretrained(out_dir)
    return model.eval()  # get_peft_model leaves the model in train mode (LoRA dropout on)


def _logits(model, policy_dir, split):
    _, processor = load_policy(policy_dir)
    from trl.data_utils import prepare_multimodal_messages

    conv = [prepare_multimodal_messages(split[0]["prompt"], images=[split[0]["image"]])]
    inputs = processor.apply_chat_template(
        conversation=conv, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    with torch.inference_mode():
        return model(**inputs).logits


def test_reports_per_row_deterministic(policy_dir, split):
    model, processor = load_eval_policy(policy_dir, device="cpu")
    first = generate_reports(model, processor, split, batch_size=2, max_new_tokens=8, progress=False)
    again = generate_reports(model, processor, split, batch_size=2, max_new_tokens=8, progress=False)
    assert len(first) == len(split) and all(isinstance(t, str) for t in first)
    assert first == again
    assert any(first)  # the random policy does write something


def test_adapter_directory_and_chains_are_merged_onto_their_base(policy_dir, split, tmp_path):
    sft = _adapter(policy_dir, tmp_path / "sft", seed=1)
    expected_sft = _logits(sft, policy_dir, split)
    merged_sft, _ = load_eval_policy(tmp_path / "sft", device="cpu")
    torch.testing.assert_close(_logits(merged_sft, policy_dir, split), expected_sft, atol=1e-4, rtol=1e-4)

    # A second adapter trained on top of the merged SFT policy, whose config names the SFT adapter as base.
    grpo = apply_lora(merged_sft, {"r": 4, "init_lora_weights": False}).eval()
    grpo.save_pretrained(tmp_path / "grpo")
    config_path = tmp_path / "grpo" / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = str(tmp_path / "sft")
    config_path.write_text(json.dumps(config))
    expected = _logits(grpo, policy_dir, split)
    assert not torch.allclose(expected, expected_sft, atol=1e-3)  # the second adapter matters
    chained, _ = load_eval_policy(tmp_path / "grpo", device="cpu")
    torch.testing.assert_close(_logits(chained, policy_dir, split), expected, atol=1e-4, rtol=1e-4)
    on_top, _ = load_eval_policy(tmp_path / "sft", adapter_path=tmp_path / "grpo", device="cpu")
    torch.testing.assert_close(_logits(on_top, policy_dir, split), expected, atol=1e-4, rtol=1e-4)


def test_processor_saved_beside_an_adapter_is_used(policy_dir, tmp_path):
    """An SFT output holds the adapter and its processor but no config.json; its processor is the policy's."""
    _adapter(policy_dir, tmp_path / "sft", seed=1)
    _, processor = load_policy(policy_dir)
    processor.tokenizer.model_max_length = 77
    processor.save_pretrained(tmp_path / "sft")
    assert not (tmp_path / "sft" / "config.json").exists()
    _, loaded = load_eval_policy(tmp_path / "sft", device="cpu")
    assert type(loaded) is type(processor) and loaded.tokenizer.model_max_length == 77
    _, base = load_eval_policy(policy_dir, device="cpu")
    assert base.tokenizer.model_max_length != 77


def test_bad_adapter_path_and_batch_size(policy_dir, split, tmp_path):
    with pytest.raises(ValueError, match="not a PEFT adapter directory"):
        load_eval_policy(policy_dir, adapter_path=tmp_path)
    model, processor = load_eval_policy(policy_dir, device="cpu")
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        generate_reports(model, processor, split, batch_size=0, progress=False)
    with pytest.raises(ValueError, match="no 'prompt' column"):
        generate_reports(model, processor, split.remove_columns("prompt"), progress=False)


def test_image_source_swaps_only_the_images(policy_dir, split):
    """The image-ablation path: row i's prompt with row perm[i]'s image is row perm[i]'s report when prompts match."""
    model, processor = load_eval_policy(policy_dir, device="cpu")
    kwargs = dict(batch_size=2, max_new_tokens=8, progress=False, num_beams=2, no_repeat_ngram_size=2)
    own = generate_reports(model, processor, split, **kwargs)
    perm = [1, 2, 0]
    swapped = generate_reports(model, processor, split, image_source=split.select(perm), **kwargs)
    assert (
        split["prompt"][0] == split["prompt"][1] == split["prompt"][2]
    )  # the default prompt: images differ only
    assert swapped == [own[j] for j in perm]
    assert generate_reports(model, processor, split, image_source=split, **kwargs) == own
    with pytest.raises(ValueError, match="image_source has 2 rows for a dataset of 3"):
        generate_reports(model, processor, split, image_source=split.select([0, 1]), **kwargs)


def test_word_ngram_blocking_is_what_generation_applies(policy_dir, split, monkeypatch):
    """Word blocking (the default) runs the word blocker on the generated part only; token blocking does not.

    Its bans are checked against brute force in test_ngram_blocking.py (the random policy never repeats a word).
    """
    from rrg_trl.evaluation import generation
    from rrg_trl.evaluation.ngram_blocking import WordNgramBlocker

    seen = []

    class Spy(WordNgramBlocker):
        def _banned(self, text, last):
            seen.append((self.n, self.prompt_length, text))
            return super()._banned(text, last)

    monkeypatch.setattr(generation, "WordNgramBlocker", Spy)
    model, processor = load_eval_policy(policy_dir, device="cpu")
    kwargs = dict(batch_size=3, max_new_tokens=6, progress=False, num_beams=2, no_repeat_ngram_size=3)
    reports = generate_reports(model, processor, split, **kwargs)
    assert {n for n, _, _ in seen} == {3} and len(seen) == 6 * 3 * 2  # every step, every beam of every row
    assert [text for *_, text in seen[:6]] == [""] * 6 and seen[0][1] > 0  # it sees what follows the prompt
    assert any(text for *_, text in seen) and all(reports)
    seen.clear()
    generate_reports(model, processor, split, no_repeat_ngram_unit="token", **kwargs)
    assert seen == []
    with pytest.raises(ValueError, match="no_repeat_ngram_unit must be one of"):
        generate_reports(model, processor, split, no_repeat_ngram_unit="char", **kwargs)
