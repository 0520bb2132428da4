"""Shared fixtures of the stage tests: one tiny policy and one live reward server per session."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest


@pytest.fixture(scope="session")
def policy_dir(tiny_policy) -> Path:
    """The tiny Qwen2-VL policy the tiny recipes train (``rrg-trl make-tiny-policy``)."""
    return tiny_policy("qwen2_vl")


@pytest.fixture(scope="session")
def stage_scorer(tiny_model_dir):
    from tests.reward_server.live import tiny_scorer

    return tiny_scorer(str(tiny_model_dir))


@pytest.fixture(scope="session")
def reward_server(stage_scorer):
    """The real reward server (uvicorn, loopback, OS-chosen port) on the tiny scorer kit."""
    from tests.reward_server.live import LiveServer

    with LiveServer(stage_scorer, max_wait_ms=2) as server:
        yield server


@pytest.fixture(scope="session")
def sft_runs(policy_dir, tmp_path_factory):
    """``rrg_trl.sft`` on the tiny recipe: two steps, then a relaunch with max_steps=3 that must resume from
    checkpoint-2. The GRPO / RLOO tests start from its output (a LoRA adapter directory)."""
    from rrg_trl import sft
    from tests.rrg_trl.stage_helpers import StepCounter, VisionCalls, run_stage, stage_argv

    out = tmp_path_factory.mktemp("sft") / "tiny-sft"
    common = ["--model_name_or_path", str(policy_dir), "--save_steps", "2", "--synthetic_num_train", "16"]
    vision, counter = VisionCalls(), StepCounter()
    first = run_stage(sft, stage_argv("sft", out, *common, "--max_steps", "2"), vision.callback)
    second = run_stage(sft, stage_argv("sft", out, *common, "--max_steps", "3"), counter.callback)
    return SimpleNamespace(
        first=first, second=second, out=out, vision_calls=len(vision.calls), steps_after_resume=counter.steps
    )
