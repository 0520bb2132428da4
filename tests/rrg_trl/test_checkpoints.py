"""Which checkpoint a stage resumes from."""

from __future__ import annotations

import pytest

from rrg_trl.checkpoints import last_checkpoint, resolve_resume_checkpoint


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
