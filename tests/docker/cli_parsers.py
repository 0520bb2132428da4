"""Feed the command lines the images and compose run to the package's real argument parsers.

The point is to catch drift: a flag renamed in ``rrg-reward`` or a stage, a recipe path that moved, an
accelerate option spelled wrong. Nothing here re-implements a parser; argparse errors (SystemExit) are
turned into test failures that show the argv.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _parse(parser: argparse.ArgumentParser, argv: list[str], what: str) -> argparse.Namespace:
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return parser.parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"{what} rejects {argv} (exit {exc.code}):\n{err.getvalue()}")


def parse_rrg_reward(argv: list[str]) -> argparse.Namespace:
    """``rrg-reward <argv>`` through ``reward_server.cli.build_parser()``."""
    from reward_server.cli import build_parser

    return _parse(build_parser(), argv, "rrg-reward")


def parse_accelerate_launch(argv: list[str]) -> argparse.Namespace:
    """``accelerate launch <argv>`` through accelerate's own launch parser."""
    from accelerate.commands.launch import launch_command_parser

    return _parse(launch_command_parser(), argv, "accelerate launch")


def parse_stage(module: str, argv: list[str]) -> tuple:
    """A training stage's arguments through that module's ``make_parser()`` (a TrlParser), run from the
    repository root like the image's WORKDIR, so relative recipe paths resolve as they do in the image.

    The recipes target bf16 GPUs; on a CPU-only machine TrainingArguments refuses ``bf16: true`` when it
    is built. That refusal is about the machine running the test, not the flags, so it is lifted here
    (only when no CUDA device is present); every other validation of the real configs still runs.
    """
    import torch
    import transformers.training_args as training_args

    stage = importlib.import_module(module)
    parser = stage.make_parser()
    saved_env, saved_cwd = dict(os.environ), Path.cwd()
    saved_bf16 = training_args.is_torch_bf16_gpu_available
    try:
        os.chdir(REPO)
        if not torch.cuda.is_available():
            training_args.is_torch_bf16_gpu_available = lambda: True
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err):
                return parser.parse_args_and_config(args=list(argv))
        except SystemExit as exc:
            pytest.fail(f"{module} rejects {argv} (exit {exc.code}):\n{err.getvalue()}")
    finally:
        training_args.is_torch_bf16_gpu_available = saved_bf16
        os.chdir(saved_cwd)
        os.environ.clear()  # a recipe's `env:` block is exported by TrlParser; keep it out of other tests
        os.environ.update(saved_env)


def option(argv: list[str], flag: str) -> str:
    """The value following ``flag`` in ``argv`` (fails when absent)."""
    assert flag in argv, f"{flag} missing from {argv}"
    return argv[argv.index(flag) + 1]
