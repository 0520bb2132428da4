"""Peak memory in the logs: real figures of this process, added to what reporters see and to the history."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import TrainerControl, TrainerState, TrainingArguments

from rrg_trl.memory_logging import PeakMemoryCallback, add_memory_logging, peak_memory_gib


def _proc_kib(field: str, path: str = "/proc/self/status") -> int:
    line = next(x for x in Path(path).read_text().splitlines() if x.startswith(field + ":"))
    return int(line.split()[1])


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_peak_rss_is_in_gib_between_current_rss_and_total_memory():
    block = np.ones(64 << 20, dtype=np.uint8)  # 64 MiB, touched: resident now
    peak = peak_memory_gib()["memory/peak_rss_gib"]
    current = _proc_kib("VmRSS") / (1 << 20)
    total = _proc_kib("MemTotal", "/proc/meminfo") / (1 << 20)
    assert block.sum() == 64 << 20
    assert current - 0.01 <= peak <= total, (current, peak, total)
    assert peak_memory_gib()["memory/peak_rss_gib"] >= peak, "a high-water mark never decreases"


def test_on_log_updates_the_logged_dict_and_the_history_entry(tmp_path):
    state = TrainerState(global_step=3)
    logs = {"loss": 1.0}
    state.log_history.append({**logs, "step": 3})  # what Trainer.log does before on_log
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[])
    PeakMemoryCallback().on_log(args, state, TrainerControl(), logs=logs)
    assert logs["memory/peak_rss_gib"] > 0
    assert state.log_history[-1]["memory/peak_rss_gib"] == logs["memory/peak_rss_gib"]
    assert state.log_history[-1]["loss"] == 1.0 and state.log_history[-1]["step"] == 3


def test_registered_once_and_first(tmp_path):
    from transformers import Trainer

    trainer = Trainer(
        model=torch.nn.Linear(2, 2), args=TrainingArguments(output_dir=str(tmp_path), report_to=[])
    )
    add_memory_logging(trainer)
    add_memory_logging(trainer)
    callbacks = trainer.callback_handler.callbacks
    assert isinstance(callbacks[0], PeakMemoryCallback)
    assert sum(isinstance(cb, PeakMemoryCallback) for cb in callbacks) == 1
