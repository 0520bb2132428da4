"""The decoding guard decodes held-out prompts as the evaluation does, and stops RL when they degenerate."""

from __future__ import annotations

import pytest
import torch
from transformers import TrainerControl, TrainerState

from rrg_trl.data import load_dataset_from_config
from rrg_trl.decoding_guard import PREFIX, DecodingGuardCallback
from rrg_trl.evaluate import EvaluateConfig
from rrg_trl.evaluation.decoding import Decoding
from rrg_trl.modeling import load_policy

# Greedy, 16 tokens: the random tiny policy writes 5 distinct reports for these 8 images (seeded).
DECODING = Decoding(max_new_tokens=16)


@pytest.fixture(scope="module")
def probe():
    config = dict(
        dataset="synthetic",
        synthetic_text="findings",
        synthetic_num_train=0,
        synthetic_num_val=8,
        synthetic_num_test=0,
        image_size=56,
        system_prompt="",
        instruction="Findings:",
    )
    return load_dataset_from_config(config, split="val")


def _begin(guard, model, processor, step=0):
    state, control = TrainerState(), TrainerControl()
    state.global_step = step
    guard.on_train_begin(None, state, control, model=model, processing_class=processor)
    return state, control


def _step(guard, state, control, model, processor, step):
    state.global_step = step
    guard.on_step_end(None, state, control, model=model, processing_class=processor)
    return control


def _blind(model) -> None:
    """Make the policy ignore its image, as the issue's policies did: the vision merger outputs zeros."""
    last = model.model.visual.merger.mlp[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()


@pytest.mark.parametrize("with_reward", [False, True])
def test_the_guard_stops_and_restores_when_the_policy_stops_reading_the_image(
    with_reward, policy_dir, probe, stage_scorer, tmp_path
):
    """Without a reward the last passing state (step 2) comes back; with one, the best-scoring passing state:
    step 2's reports are step 0's (same weights), no better, so the starting weights."""
    model, processor = load_policy(str(policy_dir), freeze_vision=False)
    report = tmp_path / "guard.json"
    reward = (lambda h, r: [-row["radcliq"] for row in stage_scorer.score(h, r)]) if with_reward else None
    guard = DecodingGuardCallback(probe, DECODING, every_n_steps=2, reward=reward, report_path=report)
    state, control = _begin(guard, model, processor)
    # The random policy's reports differ between images.
    assert guard.baseline["identical_report_share"] < 1.0, guard.baseline
    assert ("reward" in guard.baseline) == with_reward
    before = {k: v.clone() for k, v in model.state_dict().items()}

    assert not _step(guard, state, control, model, processor, 1).should_log  # not a check step
    control = _step(guard, state, control, model, processor, 2)
    assert control.should_log and not control.should_training_stop  # unchanged policy: no rise
    _blind(model)
    control = _step(guard, state, control, model, processor, 4)

    assert control.should_training_stop and guard.stopped_at == 4
    assert guard.checks[-1]["identical_report_share"] == 1.0
    assert guard.checks[-1]["degenerate"] == ["identical_report_share"]
    logs = {"loss": 1.0}
    state.log_history = [{"loss": 1.0, "step": 4}]
    guard.on_log(None, state, control, logs=logs)
    assert logs[f"{PREFIX}identical_report_share"] == 1.0 and logs[f"{PREFIX}stopped"] == 1.0
    assert state.log_history[-1][f"{PREFIX}identical_report_share"] == 1.0
    guard.on_train_end(None, state, control, model=model)
    assert guard.restored_step == (0 if with_reward else 2)
    # The non-degenerate weights are back.
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert '"stopped_at_step": 4' in report.read_text()


def test_the_guard_decodes_with_the_evaluations_decoding_object(probe):
    settings = EvaluateConfig(model_name_or_path="m", num_beams=3, no_repeat_ngram_size=3, max_new_tokens=20)
    guard = DecodingGuardCallback(probe, settings.decoding_config())
    assert guard.decoding.generate_kwargs() == {
        **settings.decoding(),
        "max_new_tokens": 20,
        "repetition_penalty": 1.0,
    }
    assert (
        guard.report()["decoding"]
        == "beam search (3 beams), no repeated 3-gram of words, at most 20 new tokens"
    )


def test_a_rise_in_repeated_trigrams_beyond_the_tolerance_is_degenerate(probe):
    guard = DecodingGuardCallback(probe, DECODING, tolerances={"repeated_trigram_fraction": 0.1})
    guard.baseline = {"repeated_trigram_fraction": 0.05, "identical_report_share": 0.5}
    assert guard.degenerate({"repeated_trigram_fraction": 0.15, "identical_report_share": 0.5}) == []
    assert guard.degenerate({"repeated_trigram_fraction": 0.2, "identical_report_share": 0.5}) == [
        "repeated_trigram_fraction"
    ]
    with pytest.raises(ValueError, match="unknown figures"):
        DecodingGuardCallback(probe, DECODING, tolerances={"distinct_9": 0.1})
    with pytest.raises(ValueError, match="every_n_steps"):
        DecodingGuardCallback(probe, DECODING, every_n_steps=0)
