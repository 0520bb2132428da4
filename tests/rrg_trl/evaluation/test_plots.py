"""Plots: trainer states found the way users point at them, PNGs written, bad states named."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from transformers import TrainerState

from reward_server.radcliq.model_files import RANDOM_WEIGHTS_LABEL, RANDOM_WEIGHTS_NOTICE
from rrg_trl.evaluation.plots import (
    find_trainer_state,
    plot_metric_bars,
    plot_training_curves,
    read_log_history,
    run_names,
)
from rrg_trl.evaluation.table import TABLE_METRICS


def _state(path, history, step):
    """A trainer state in the real on-disk format (transformers' own writer)."""
    path.mkdir(parents=True, exist_ok=True)
    TrainerState(global_step=step, max_steps=step, log_history=history).save_to_json(
        str(path / "trainer_state.json")
    )
    return path / "trainer_state.json"


GRPO_LOG = [
    {
        "step": s,
        "loss": 0.01 * s,
        "reward": -1.5 + 0.1 * s,
        "reward_std": 0.2,
        "rewards/radcliq/mean": -1.5 + 0.1 * s,
        "rewards/radgraph/mean": 0.1 * s,
    }
    for s in range(1, 6)
]
SFT_LOG = [{"step": s, "loss": 5.0 / s, "learning_rate": 1e-4} for s in range(1, 6)] + [
    {"step": 5, "train_runtime": 1.0, "train_loss": 2.0}
]


def test_find_trainer_state_takes_the_latest_checkpoint_numerically(tmp_path):
    run = tmp_path / "grpo"
    _state(run / "checkpoint-9", GRPO_LOG[:2], 9)
    latest = _state(run / "checkpoint-10", GRPO_LOG, 10)
    assert find_trainer_state(run) == latest
    top = _state(run, GRPO_LOG, 10)  # a finished run's own state wins
    assert find_trainer_state(run) == top
    assert find_trainer_state(latest) == latest
    with pytest.raises(FileNotFoundError, match="no trainer_state.json"):
        find_trainer_state(tmp_path / "nothing")


def test_a_file_that_is_not_a_trainer_state_is_named(tmp_path):
    bad = tmp_path / "trainer_state.json"
    bad.write_text(json.dumps({"global_step": 3}))
    with pytest.raises(ValueError, match="no 'log_history' list"):
        read_log_history(bad)
    bad.write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_log_history(bad)


def test_training_curves_png(tmp_path):
    runs = run_names(
        [_state(tmp_path / "sft", SFT_LOG, 5).parent, _state(tmp_path / "grpo" / "checkpoint-5", GRPO_LOG, 5)]
    )
    assert list(runs) == ["sft", "grpo/checkpoint-5"]
    out = plot_training_curves(runs, tmp_path / "curves.png", synthetic=True)
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[1] > 700  # two rows of panels (3.4 inches each at 110 dpi)


def test_metric_bars_png_with_baseline_and_missing_values(tmp_path):
    metrics = {m.key: 0.4 for m in TABLE_METRICS} | {"METEOR": None, "radcliq_v1": 1.1}
    baseline = {m.key: 0.3 for m in TABLE_METRICS}
    out = plot_metric_bars(metrics, tmp_path / "bars.png", baseline=baseline, baseline_name="sft")
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] > 800


def test_metric_bars_of_random_scorer_models_say_so(tmp_path):
    metrics = {m.key: 0.4 for m in TABLE_METRICS}
    random = plot_metric_bars(metrics, tmp_path / "random.png", title="eval", random_weights=True)
    plain = plot_metric_bars(metrics, tmp_path / "plain.png", title="eval")
    with Image.open(random) as im:  # drawn in the title and under the bars; the same words as PNG text
        assert im.text["Title"] == f"eval ({RANDOM_WEIGHTS_LABEL})"
        assert im.text["Description"] == RANDOM_WEIGHTS_NOTICE
    with Image.open(plain) as im:
        assert im.text["Title"] == "eval" and "Description" not in im.text


def test_run_names_are_unique(tmp_path):
    names = run_names([tmp_path / "a" / "run", tmp_path / "b" / "run"])
    assert list(names) == ["run", "run (2)"]
