"""The ``rrg-trl`` console script: subcommands forward their arguments to the stage's ``run``."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess

import pytest

from rrg_trl import cli


def test_console_script_help_without_loading_torch():
    exe = shutil.which("rrg-trl")
    assert exe, "rrg-trl is not installed (pip install -e .)"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    for command in cli.STAGES:
        assert command in out.stdout


def test_no_command_and_unknown_command(capsys):
    assert cli.main([]) == 2
    assert "usage: rrg-trl" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        cli.main(["ppo"])
    assert exc.value.code == 2
    assert "invalid choice: 'ppo'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("stage", "flags"),
    [
        ("sft", ["--max_length", "--lora_r", "--dataset", "--freeze_vision_tower"]),
        (
            "grpo",
            [
                "--num_generations",
                "--reward_urls",
                "--reward_retry_budget_s",
                "--guard_penalty",
                "--use_vllm",
            ],
        ),
        ("rloo", ["--num_generations", "--reward_funcs", "--reward_guards", "--image_size"]),
    ],
)
def test_stage_help_lists_every_argument_group(stage, flags, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([stage, "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert f"usage: rrg-trl {stage}" in text
    for flag in flags:
        assert flag in text, flag


def test_stage_arguments_are_forwarded(tmp_path):
    """A bad flag reaches the stage's parser (it, not rrg-trl, rejects it)."""
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        cli.main(["grpo", "--config", str(tmp_path / "missing.yaml")])
    with pytest.raises(ValueError, match="no_such_flag"):
        cli.main(["sft", "--use_cpu", "true", "--output_dir", str(tmp_path), "--no_such_flag", "1"])


def test_make_tiny_policy(tmp_path, capsys):
    out = cli.main(["make-tiny-policy", str(tmp_path / "p"), "--family", "llava", "--seed", "1"])
    assert out == 0 and "tiny llava policy written to" in capsys.readouterr().out
    assert json.loads((tmp_path / "p" / "config.json").read_text())["model_type"] == "llava"
    from rrg_trl.modeling import load_policy

    model, processor = load_policy(tmp_path / "p")
    assert model.config.model_type == "llava" and processor.chat_template


@pytest.mark.parametrize("command", ["evaluate", "demo"])
def test_evaluate_and_demo_are_wired(command):
    assert importlib.util.find_spec(cli.STAGES[command][0]) is not None
    assert callable(cli._runner(command))


def test_a_mistake_found_before_loading_is_one_line_and_exit_2(tmp_path, capsys):
    """Issue 18: a preflight refusal is what to fix, not a traceback."""
    from tests.rrg_trl.stage_helpers import stage_argv

    (tmp_path / "file").write_text("x")
    assert cli.main(["sft", *stage_argv("sft", tmp_path / "file")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rrg-trl sft: error: output_dir=") and err.count("\n") == 1, err
