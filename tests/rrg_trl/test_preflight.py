"""Mistakes a stage refuses before any data or model loads (issue 18): each test launches the real stage and
checks that the error comes from :mod:`rrg_trl.preflight` (the loaders, later in ``main``, were not reached)."""

from __future__ import annotations

import json

import pytest

from rrg_trl import grpo, sft
from rrg_trl.checkpoints import CheckpointError
from rrg_trl.preflight import PreflightError, check_model_path
from tests.rrg_trl.stage_helpers import run_stage, stage_argv


def _raised_in_preflight(excinfo) -> None:
    names = [entry.name for entry in excinfo.traceback]
    assert "preflight" in names, names
    assert not {"load_splits", "get_policy", "prepare_rewards"} & set(names), names


def test_an_output_dir_that_is_a_file_is_refused_at_start(policy_dir, tmp_path):
    """Case 8: not a FileExistsError from the trainer after the data and the policy loaded."""
    blocker = tmp_path / "run"
    blocker.write_text("not a directory")
    with pytest.raises(PreflightError, match=rf"output_dir=.*{blocker} is a file, not a directory") as error:
        run_stage(sft, stage_argv("sft", blocker / "sub", "--model_name_or_path", str(policy_dir)))
    _raised_in_preflight(error)


@pytest.mark.parametrize("name", ["{tmp}/no-such-policy", "{tmp}", "./outputs-typo", "outputs/tiny-sftt"])
def test_a_model_path_that_does_not_exist_is_named(tmp_path, monkeypatch, name):
    """Case 7: "no such directory" before the dataset loads, not a hub error after it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs").mkdir()  # "outputs/tiny-sftt" is then a local path, not a hub id
    (tmp_path / "file").write_text("x")
    name = name.format(tmp=tmp_path / "file" if name == "{tmp}" else tmp_path)
    message = "is a file" if name == str(tmp_path / "file") else "no such directory"
    with pytest.raises(PreflightError, match=rf"model_name_or_path='{name}'.*{message}") as error:
        run_stage(sft, stage_argv("sft", tmp_path / "out", "--model_name_or_path", name))
    _raised_in_preflight(error)


def test_a_hub_id_offline_and_not_cached_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PreflightError, match="not in the hub cache while HF_HUB_OFFLINE is set"):
        check_model_path("model_name_or_path", "nobody-xyz/no-such-model")


def test_reward_names_fail_when_parsed_and_weight_counts_before_anything_loads(policy_dir, tmp_path):
    """Case 11: a typo'd reward or a wrong weight count fails at once, not after the dataset and policy load."""
    argv = stage_argv("grpo", tmp_path / "out", "--model_name_or_path", str(policy_dir))
    with pytest.raises(ValueError, match=r"unknown reward_funcs \['radcliq_typo'\]"):
        grpo.make_parser().parse_args_and_config(args=[*argv, "--reward_funcs", "radcliq_typo"])
    with pytest.raises(PreflightError, match="cannot import reward 'no_such_pkg.f'") as error:
        run_stage(grpo, [*argv, "--reward_funcs", "no_such_pkg.f"])
    _raised_in_preflight(error)
    with pytest.raises(PreflightError, match=r"reward_weights has 2 values for 1 reward_funcs") as error:
        run_stage(grpo, [*argv, "--reward_weights", "1.0", "0.5"])
    _raised_in_preflight(error)


def test_abbreviated_flags_fail_like_yaml_typos(tmp_path):
    """Case 15: `--learning_rat` used to be taken as --learning_rate."""
    with pytest.raises(ValueError, match=r"not used by the HfArgumentParser: \['--learning_rat', '0.5'\]"):
        sft.make_parser().parse_args_and_config(args=[*stage_argv("sft", tmp_path), "--learning_rat", "0.5"])


def test_relaunching_a_finished_run_is_refused(sft_runs, policy_dir):
    """Case 1: the tiny SFT run ended at step 3; relaunching into its output_dir (even with other data and
    learning rate) used to train 0 steps and exit 0. Now it refuses before loading anything, saying how to go on."""
    argv = stage_argv(
        "sft",
        sft_runs.out,
        "--model_name_or_path",
        str(policy_dir),
        "--max_steps",
        "3",
        "--learning_rate",
        "0.5",
    )
    with pytest.raises(CheckpointError, match=r"already at step 3 .*resuming would train nothing") as error:
        run_stage(sft, argv)
    _raised_in_preflight(error)
    info = json.loads((sft_runs.out / "run_info.json").read_text())
    assert info["global_step"] == 3 and info["data_skipped"] == {}  # the skip counts are recorded (none here)
