"""The README's main command (``make demo`` -> ``rrg-trl demo``) end to end, with fewer steps, and the promise
that it never leaves its reward server running: not after success, not after SIGTERM mid-run."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from reward_server.radcliq.model_files import RANDOM_WEIGHTS_LABEL
from rrg_trl import demo
from rrg_trl.evaluation.table import TABLE_KEYS

REPO = Path(__file__).resolve().parents[2]
SMALL = [
    "--num_train",
    "16",
    "--num_test",
    "4",
    "--sft_steps",
    "4",
    "--grpo_steps",
    "2",
    "--grpo_batch_size",
    "8",
    "--num_generations",
    "4",
    "--max_completion_length",
    "16",
    "--guard_every_n_steps",
    "2",
    "--guard_probe",
    "4",
    "--meteor",
    "false",
    "--progress",
    "false",
]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _refused(url: str) -> bool:
    try:
        httpx.get(url + "/health", timeout=2)
    except httpx.TransportError:
        return True
    return False


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One small demo through the entry point ``make demo`` calls (``rrg-trl demo``), as a user runs it."""
    out = tmp_path_factory.mktemp("demo")
    done = subprocess.run(
        [sys.executable, "-m", "rrg_trl.cli", "demo", "--output_dir", str(out), *SMALL],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out, json.loads((out / "demo_summary.json").read_text()), done.stdout


def test_demo_runs_end_to_end_and_stops_its_server(demo_run):
    out, summary, _ = demo_run
    server = summary["server"]
    assert server["stopped"] and server["exit_code"] is not None
    assert _gone(server["pid"]) and _refused(server["url"])
    assert not (out / "logs" / "reward_server.pid").exists()
    assert (out / "logs" / "reward_server.log").is_file()


def test_demo_trained_both_stages_and_evaluated_before_and_after(demo_run):
    out, summary, _ = demo_run
    for stage, steps in (("sft", 4), ("grpo", 2)):
        state = json.loads((out / stage / "trainer_state.json").read_text())
        assert state["global_step"] == steps
    assert summary["grpo_training_reward"]["steps"] == 2
    # The decoding guard decoded its probe as the evaluation decodes, before GRPO and at its check step.
    guard = summary["decoding_guard"]
    assert guard["decoding"] == summary["decoding"] and guard["probe_size"] == 4
    assert guard["baseline"]["distinct_reports"] >= 1 and [c["step"] for c in guard["checks"]] == [2]
    logged = [h for h in state["log_history"] if "decoding_guard/identical_report_share" in h]
    assert logged  # through the trainer's logs (trainer_state.json)
    for key in ("reward_before_rl", "reward_after_rl"):
        assert math.isfinite(summary[key])
    before = json.loads((out / "eval" / "before_rl" / "summary.json").read_text())
    after = json.loads((out / "eval" / "after_rl" / "summary.json").read_text())
    assert summary["reward_before_rl"] == before["metrics"]["reward"]
    assert summary["reward_after_rl"] == after["metrics"]["reward"]
    assert after["baseline"]["summary"] == str(out / "eval" / "before_rl" / "summary.json")
    for key in TABLE_KEYS:
        value = after["metrics"][key]
        assert (value is not None and math.isfinite(value)) or after["unavailable"][key], key
    for name in ("metrics.png", "training_curves.png"):
        with Image.open(out / "eval" / "after_rl" / name) as im:
            assert im.format == "PNG"


def test_demo_labels_synthetic_data_everywhere(demo_run):
    out, summary, _ = demo_run
    assert summary["synthetic"] is True and "SYNTHETIC" in summary["data"]
    assert summary["random_weights"] is True and RANDOM_WEIGHTS_LABEL in summary["reward_definition"]
    for run in ("before_rl", "after_rl"):
        evaluation = json.loads((out / "eval" / run / "summary.json").read_text())
        assert evaluation["synthetic"] is True
        assert "SYNTHETIC" in (out / "eval" / run / "table.md").read_text().splitlines()[0]
        assert evaluation["random_weights"] is True  # and the scorer models are the random tiny kit
        assert RANDOM_WEIGHTS_LABEL in (out / "eval" / run / "table.md").read_text().splitlines()[0]
        rows = [json.loads(line) for line in (out / "eval" / run / "samples.jsonl").read_text().splitlines()]
        assert len(rows) == 4 and all(r["synthetic"] for r in rows)


def test_demo_prints_table_rewards_and_outputs(demo_run):
    out, summary, text = demo_run
    assert "| RadCliQ-v1 (lower is better) |" in text and "| before RL (SFT) | change |" in text
    assert "before RL" in text and "after RL" in text and "Reward (-RadCliQ-v1" in text
    assert f"{summary['reward_before_rl']:.4f}" in text and f"{summary['reward_after_rl']:.4f}" in text
    for path in summary["outputs"].values():
        assert path in text
    assert "the reward server was stopped" in text


def test_sigterm_mid_run_stops_the_server(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "rrg_trl.demo", "--output_dir", str(tmp_path), *SMALL, "--sft_steps", "400"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    pid_file = tmp_path / "logs" / "reward_server.pid"
    try:
        deadline = time.monotonic() + 300
        while not pid_file.exists():
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "the demo never started its reward server"
            time.sleep(0.2)
        server_pid = int(pid_file.read_text())
        time.sleep(2)  # now inside the long SFT run
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, output[-3000:]
    assert "reward server stopped" in output
    assert _gone(server_pid)


def test_config_errors_are_named(tmp_path):
    with pytest.raises(ValueError, match="multiple of num_generations"):
        demo.DemoConfig(grpo_batch_size=10, num_generations=4)
    with pytest.raises(ValueError, match="sft_steps must be >= 1"):
        demo.DemoConfig(sft_steps=0)
    with pytest.raises(ValueError, match="--annotation .*no such file"):
        demo.DemoConfig(annotation=str(tmp_path / "absent.json"))
    with pytest.raises(ValueError, match="guard_every_n_steps must be >= 0"):
        demo.DemoConfig(guard_every_n_steps=-1)


def test_real_text_defaults_fill_what_the_user_left_unset(tmp_path):
    """Real text trains longer on more studies and checks the decoding guard half as often (its probe reports are
    up to 96 tokens long); whatever the user sets is kept."""
    annotation = tmp_path / "annotation.json"
    annotation.write_text("{}")
    steps, studies, every = demo.REAL_TEXT_DEFAULTS
    real = demo.DemoConfig(annotation=str(annotation))
    assert (real.sft_steps, real.num_train, real.guard_every_n_steps) == (steps, studies, every)
    synthetic = demo.DemoConfig()
    assert synthetic.guard_every_n_steps == demo.GUARD_EVERY_N_STEPS != every
    assert demo.DemoConfig(annotation=str(annotation), guard_every_n_steps=0).guard_every_n_steps == 0


def test_real_iu_text_from_the_r2gen_annotation(iu_annotation, tmp_path):
    from rrg_trl.data import DataConfig, load_dataset_from_config

    config = demo.DemoConfig(annotation=str(iu_annotation), num_train=6, num_test=3)
    train, test = demo.data_settings(config, tmp_path)
    rows = load_dataset_from_config(DataConfig.from_dict(test), split="test")
    assert (
        len(rows) == 3 and set(rows["source"]) == {"iu_xray_text+synthetic_image"} and all(rows["synthetic"])
    )
    assert len(load_dataset_from_config(DataConfig.from_dict(train), split="train")) == 6
    assert "real IU X-ray report text" in demo.describe_data(config)


def test_openi_archive_gets_a_disjoint_stable_held_out_split(shared_data, tmp_path):
    archive = shared_data / "iu_xray" / "NLMCXR_reports.tgz"
    if not archive.is_file():
        pytest.skip(f"{archive} not found")
    first = json.loads(demo.openi_split_annotation(archive, tmp_path / "a.json").read_text())
    again = json.loads(demo.openi_split_annotation(archive, tmp_path / "b.json").read_text())
    assert first == again
    train_ids = {e["id"] for e in first["train"]}
    test_ids = {e["id"] for e in first["test"]}
    assert not train_ids & test_ids
    assert 0.05 < len(test_ids) / (len(train_ids) + len(test_ids)) < 0.15
    assert all(e["report"].strip() for e in first["train"] + first["test"])


@pytest.mark.parametrize("family", ["qwen2_vl", "lmrrg"])
def test_after_the_demo_sft_the_policy_reads_the_image(family, tiny_model_dir, tmp_path):
    """Issue 16: the demo's SFT settings must give a policy whose reports depend on the X-ray it is shown.

    The demo's own SFT stage (default steps, data and learning rate; its own tiny policy) on the default
    synthetic data, then the demo's evaluation settings with the image-ablation control: reports written
    from another study's image must score lower against the study's reference than reports written from
    its own image. Seeded and deterministic on CPU; a policy that ignores the image gives a gap of exactly 0.
    """
    from rrg_trl import evaluate
    from rrg_trl.data import DataConfig
    from rrg_trl.modeling import make_tiny_policy

    config = demo.DemoConfig(output_dir=str(tmp_path), family=family, meteor=False, progress=False)
    policy = make_tiny_policy(tmp_path / "policy", family=family, seed=config.seed)
    demo.run_sft(config, policy, tmp_path / "sft", tmp_path)
    _, test_data = demo.data_settings(config, tmp_path)
    settings = {**demo.eval_settings(config), "sampled_reward_samples": 0}
    summary = evaluate.main(
        evaluate.EvaluateConfig(
            model_name_or_path=str(tmp_path / "sft"),
            reward_model_dir=str(tiny_model_dir),
            reward_device="cpu",
            output_dir=str(tmp_path / "eval"),
            **settings,
        ),
        DataConfig.from_dict(test_data),
    )
    gap = summary["image_ablation"]
    assert gap["n"] == config.num_test
    assert gap["gap"] > 0 and gap["sem"] > 0, gap  # 0 and 0 when every image gives the same report
    assert gap["gap"] > gap["sem"], gap  # beyond its standard error
    assert summary["degeneracy"]["distinct_reports"] > 1
