"""Which checkpoint a stage resumes from."""

from __future__ import annotations

import json

import pytest

from rrg_trl.checkpoints import (
    CheckpointError,
    check_checkpoint,
    last_checkpoint,
    plan_resume,
    resolve_resume_checkpoint,
)


@pytest.fixture
def output_dir(tmp_path):
    for step in (2, 10, 4):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-notes.txt").write_text("not a checkpoint")
    (tmp_path / "base-model").mkdir()
    return tmp_path


def test_last_checkpoint_is_the_highest_step_not_the_newest_name(output_dir, tmp_path_factory):
    assert last_checkpoint(output_dir) == str(output_dir / "checkpoint-10")
    assert last_checkpoint(tmp_path_factory.mktemp("empty")) is None
    assert last_checkpoint(output_dir / "missing") is None


@pytest.mark.parametrize("value", [None, True, "true", "True", "last", "yes"])
def test_unset_or_true_resumes_from_the_last_checkpoint(output_dir, value):
    assert resolve_resume_checkpoint(value, output_dir) == str(output_dir / "checkpoint-10")


@pytest.mark.parametrize("value", [None, True, "true"])
def test_nothing_to_resume_starts_fresh(tmp_path, value):
    assert resolve_resume_checkpoint(value, tmp_path / "new-run") is None


@pytest.mark.parametrize("value", [False, "false", "no", "none", ""])
def test_false_always_starts_fresh(output_dir, value):
    assert resolve_resume_checkpoint(value, output_dir) is None


def test_explicit_path(output_dir):
    path = str(output_dir / "checkpoint-4")
    assert resolve_resume_checkpoint(path, output_dir) == path
    with pytest.raises(ValueError, match="is not a directory"):
        resolve_resume_checkpoint(str(output_dir / "checkpoint-99"), output_dir)
    with pytest.raises(ValueError, match="no trainer_state.json"):
        resolve_resume_checkpoint(str(output_dir / "base-model"), output_dir)


def _state(path, step, epoch=1.0):
    path.mkdir(parents=True, exist_ok=True)
    (path / "trainer_state.json").write_text(json.dumps({"global_step": step, "epoch": epoch}))
    return path


def test_a_half_written_newest_checkpoint_is_skipped_with_a_warning(tmp_path, caplog):
    """Issue 18 case 13: no trainer_state.json (a save cut short) -> the newest complete one, and a warning."""
    _state(tmp_path / "checkpoint-2", 2)
    (tmp_path / "checkpoint-4").mkdir()
    (tmp_path / "checkpoint-4" / "adapter_model.safetensors").write_bytes(b"")
    with caplog.at_level("WARNING", logger="rrg_trl.checkpoints"):
        assert resolve_resume_checkpoint(None, tmp_path) == str(tmp_path / "checkpoint-2")
    assert f"skipping {tmp_path / 'checkpoint-4'}: it has no trainer_state.json" in caplog.text


def test_resuming_says_where_and_how_many_steps_remain(tmp_path, caplog):
    checkpoint = _state(tmp_path / "checkpoint-2", 2)
    with caplog.at_level("WARNING", logger="rrg_trl.checkpoints"):
        assert plan_resume(str(checkpoint), max_steps=5, num_train_epochs=3) == 2
    assert f"resuming from {checkpoint} at step 2: 3 steps remain (max_steps=5)" in caplog.text


@pytest.mark.parametrize(
    ("max_steps", "epochs", "target"), [(3, 3.0, "max_steps=3"), (-1, 1.0, "num_train_epochs=1")]
)
def test_a_finished_run_is_refused_not_resumed_for_zero_steps(tmp_path, max_steps, epochs, target):
    """Issue 18 case 1: a checkpoint already at the end would 'train' 0 steps and exit 0."""
    checkpoint = _state(tmp_path / "checkpoint-3", 3, epoch=1.0)
    with pytest.raises(
        CheckpointError, match=rf"already at step 3 .* \({target}\).*another output_dir.*raise"
    ):
        plan_resume(str(checkpoint), max_steps=max_steps, num_train_epochs=epochs)


@pytest.mark.parametrize("damaged", ["adapter_model.safetensors", "optimizer.pt", "trainer_state.json"])
def test_a_truncated_file_names_the_checkpoint_and_the_previous_one(tmp_path, damaged):
    """Issue 18 case 12: a cut safetensors / torch / JSON file is named with its checkpoint before anything
    loads, with the command that resumes from the previous checkpoint."""
    import torch
    from safetensors.torch import save_file

    for step in (2, 4):
        checkpoint = _state(tmp_path / f"checkpoint-{step}", step)
        save_file({"w": torch.zeros(64, 64)}, str(checkpoint / "adapter_model.safetensors"))
        torch.save({"state": torch.zeros(64)}, checkpoint / "optimizer.pt")
    for step in (2, 4):
        check_checkpoint(tmp_path / f"checkpoint-{step}")  # intact files pass
    file = tmp_path / "checkpoint-4" / damaged
    file.write_bytes(file.read_bytes()[: len(file.read_bytes()) * 2 // 3])
    with pytest.raises(CheckpointError) as error:
        check_checkpoint(tmp_path / "checkpoint-4")
    message = str(error.value)
    assert f"checkpoint {tmp_path / 'checkpoint-4'} is damaged: {damaged}" in message
    assert f"--resume_from_checkpoint {tmp_path / 'checkpoint-2'}" in message
