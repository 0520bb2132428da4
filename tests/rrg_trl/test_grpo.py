"""rrg_trl.grpo end to end: from the SFT adapter against a live reward server, learning a deterministic reward,
reward-server outages (transient and past the retry budget) and resuming, and 2 CPU processes under
``accelerate launch``."""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from reward_server.client import RewardServerUnavailable
from reward_server.radcliq.model_files import RANDOM_WEIGHTS_NOTICE
from rrg_trl import grpo
from rrg_trl.modeling.adapters import adapter_chain
from tests.reward_server.live import FaultyScorer, LiveServer
from tests.rrg_trl.stage_helpers import (
    REPO,
    StepCounter,
    logged,
    run_stage,
    sampled_completion_ids,
    stage_argv,
)
from tests.rrg_trl.toy_rewards import token_share

COMPONENT_KEYS = [f"rewards/{name}/mean" for name in ("radcliq", "radgraph", "bertscore", "semb", "bleu2")]


def test_grpo_from_the_sft_adapter_against_the_live_server(sft_runs, policy_dir, reward_server, tmp_path):
    from rrg_trl.modeling import load_policy

    pairs_before = reward_server.state.batcher.stats.pairs
    result = grpo.run(
        stage_argv(
            "grpo",
            tmp_path / "grpo",
            "--model_name_or_path",
            str(sft_runs.out),
            "--reward_urls",
            reward_server.url,
            "--max_steps",
            "2",
        )
    )
    assert result.stage == "grpo" and result.global_step == 2
    # Every completion was scored by the server, once (the components share the request).
    assert reward_server.state.batcher.stats.pairs - pairs_before == 2 * 4
    for key in [*COMPONENT_KEYS, "reward", "reward_server/latency_s"]:
        values = logged(result, key)
        assert len(values) == 2 and all(math.isfinite(v) for v in values), key
    assert logged(result, "reward_server/failed") == [0.0, 0.0]
    peaks = [h["memory/peak_rss_gib"] for h in result.trainer.state.log_history if "loss" in h]
    assert len(peaks) == 2 and 0 < peaks[0] <= peaks[1], "peak memory logged per step, never decreasing"
    for guard in ("empty", "too_short", "repetition", "truncated", "penalized"):
        assert len(logged(result, f"guards/{guard}")) == 2
    # The reward is -RadCliQ, guarded; the components are logged by its request (log_metric), not trained on.
    assert result.trainer.reward_weights.tolist() == [1.0]
    assert [f.__name__ for f in result.trainer.reward_funcs] == ["radcliq"]
    # The policy started from the SFT policy: the SFT adapter was merged into the base weights under the
    # fresh GRPO adapter.
    base = load_policy(policy_dir, dtype="float32").model.model.language_model.layers[0].self_attn.q_proj
    start = result.trainer.model.get_base_model().model.language_model.layers[0].self_attn.q_proj.base_layer
    assert not torch.equal(base.weight, start.weight), "SFT adapter not merged into the GRPO start"
    # The GRPO adapter records the SFT adapter as its base: the output is the chain base -> SFT -> GRPO.
    assert adapter_chain(tmp_path / "grpo") == [sft_runs.out.resolve(), (tmp_path / "grpo").resolve()]
    info = json.loads((tmp_path / "grpo" / "run_info.json").read_text())
    assert info["model_name_or_path"] == str(sft_runs.out) and info["synthetic_data"] is True


def test_grpo_raises_a_deterministic_reward_on_held_out_prompts(policy_dir, tmp_path):
    """RL learns, not just runs: the share of a fixed quarter of the vocabulary rises on the val split."""
    from rrg_trl.data import DataConfig, load_dataset_from_config
    from rrg_trl.modeling import load_policy

    val = load_dataset_from_config(
        DataConfig(synthetic_num_train=32, synthetic_num_val=8, synthetic_num_test=8, image_size=56),
        split="val",
    )
    rows = [val[i] for i in range(len(val))]

    def held_out_reward(model, processor) -> float:
        completions = sampled_completion_ids(model, processor, rows, samples=4, max_new_tokens=16)
        return sum(token_share(ids) for ids in completions) / len(completions)

    before = held_out_reward(*load_policy(policy_dir, dtype="float32"))
    result = grpo.run(
        stage_argv(
            "grpo",
            tmp_path / "learn",
            "--model_name_or_path",
            str(policy_dir),
            "--reward_funcs",
            "tests.rrg_trl.toy_rewards.target_token_share",
            "--reward_guards",
            "none",
            "--use_peft",
            "false",
            "--learning_rate",
            "3e-2",
            "--max_steps",
            "16",
            "--save_strategy",
            "no",
            "--per_device_train_batch_size",
            "8",
            "--num_generations",
            "8",
            "--max_completion_length",
            "16",
        )
    )
    after = held_out_reward(result.trainer.model.eval(), result.trainer.processing_class)
    assert after > before + 0.08, f"held-out reward {before:.3f} -> {after:.3f}"


def test_transient_reward_failure_gives_no_reward_and_training_continues(
    policy_dir, stage_scorer, tmp_path, caplog
):
    """Issue 4: a batch the server fails to score gets None (zero advantage), is logged, and training goes on."""
    failing = {"on": False}
    faulty = FaultyScorer(
        stage_scorer, lambda groups: RuntimeError("injected scorer fault") if failing["on"] else None
    )
    counter = StepCounter(on_step=lambda step: failing.update(on=step == 1))  # step 2's batch fails
    with (
        LiveServer(faulty, max_wait_ms=0) as server,
        caplog.at_level(logging.WARNING, logger="rrg_trl.rewards"),
    ):
        result = run_stage(
            grpo,
            stage_argv(
                "grpo",
                tmp_path / "out",
                "--model_name_or_path",
                str(policy_dir),
                "--reward_urls",
                server.url,
                "--max_steps",
                "3",
                "--save_strategy",
                "no",
            ),
            counter.callback,
        )
    assert result.global_step == 3 and counter.steps == [1, 2, 3]
    assert logged(result, "reward_server/failed") == [0.0, 1.0, 0.0]
    radcliq = logged(result, "rewards/radcliq/mean")  # NaN (no reward) is logged as None
    assert math.isfinite(radcliq[0]) and radcliq[1] is None and math.isfinite(radcliq[2])
    assert logged(result, "grad_norm")[1] == 0.0, "unscored completions get zero advantage: no update"
    assert "RadCliQ reward failed for a batch of 4 completions" in caplog.text
    assert "injected scorer fault" in caplog.text
    said = [
        r for r in caplog.records if r.name == "rrg_trl.rewards" and RANDOM_WEIGHTS_NOTICE in r.getMessage()
    ]
    assert len(said) == 1  # the server runs the tiny kit: the run's reward log says so, once


def test_server_down_past_the_budget_stops_training_and_a_relaunch_resumes(
    policy_dir, stage_scorer, tmp_path
):
    """Issue 4: a server down past the retry budget stops training with a clear error (never silent zeros);
    relaunching against a server that is back resumes from the last checkpoint."""
    out = tmp_path / "out"

    def argv(url: str) -> list[str]:
        return stage_argv(
            "grpo",
            out,
            "--model_name_or_path",
            str(policy_dir),
            "--reward_urls",
            url,
            "--max_steps",
            "3",
            "--save_steps",
            "1",
            "--reward_retry_budget_s",
            "1",
        )

    server = LiveServer(stage_scorer).start()
    counter = StepCounter(on_step=lambda step: server.stop() if step == 1 else None)
    with pytest.raises(RewardServerUnavailable, match=r"reward server unavailable.*retry budget"):
        run_stage(grpo, argv(server.url), counter.callback)
    assert counter.steps == [1] and (out / "checkpoint-1").is_dir()

    resumed = StepCounter()
    with LiveServer(stage_scorer) as back:
        result = run_stage(grpo, argv(back.url), resumed.callback)
    assert result.resumed_from == str(out / "checkpoint-1")
    assert result.global_step == 3 and resumed.steps == [2, 3], "the relaunch continues at step 2"


HAS_DEEPSPEED = importlib.util.find_spec("deepspeed") is not None
NO_DEEPSPEED = pytest.mark.skipif(not HAS_DEEPSPEED, reason="deepspeed not installed (extra 'deepspeed')")


@pytest.mark.slow
@pytest.mark.parametrize(
    "config",
    [
        "ddp",
        pytest.param("zero2", marks=NO_DEEPSPEED),
        pytest.param("zero3", marks=NO_DEEPSPEED),
    ],
)
def test_accelerate_launch_with_two_cpu_processes(config, policy_dir, reward_server, tmp_path):
    """The documented launch line with each accelerate config: 2 processes (gloo on CPU; DeepSpeed's CPU
    accelerator for ZeRO), each rank scoring its own slice against the live reward server."""
    out = tmp_path / config
    accelerate = Path(sys.executable).with_name("accelerate")
    cmd = [
        str(accelerate),
        "launch",
        "--config_file",
        str(REPO / "recipes" / "accelerate" / f"{config}.yaml"),
        "--num_processes",
        "2",
        "--mixed_precision",
        "no",
        "-m",
        "rrg_trl.grpo",
        *stage_argv(
            "grpo",
            out,
            "--model_name_or_path",
            str(policy_dir),
            "--reward_urls",
            reward_server.url,
            "--max_steps",
            "2",
            "--save_strategy",
            "no",
        ),
    ]
    pairs_before = reward_server.state.batcher.stats.pairs
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"accelerate launch failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    # 2 steps x 2 ranks x 4 completions per rank: both processes trained and scored (one rank would be 8).
    assert reward_server.state.batcher.stats.pairs - pairs_before == 16
    first = state["log_history"][0]
    assert first["epoch"] == pytest.approx(8 / (32 * 4)), "8 completions a step; an epoch is 32 prompts x 4"
    assert math.isfinite(first["rewards/radcliq/mean"])
    assert (out / "adapter_model.safetensors").is_file(), "the LoRA adapter is saved (ZeRO-3: gathered)"
