"""Peak memory in the training logs, beside loss and reward: what an RL run is sized by (batch, group size,
ZeRO stage, reward server on the same card or not), visible per logging step wherever the run reports to.

GPU: ``torch.cuda.max_memory_allocated`` / ``max_memory_reserved`` of this process's device (reserved is what
the card must really hold). Always: the process's peak resident set (CPU memory, incl. offloaded optimizer
state under ZeRO offload). Values are per process; the logs are the main process's.
"""

from __future__ import annotations

import resource
import sys
from typing import Any

from transformers import TrainerCallback

GIB = float(1 << 30)


def peak_memory_gib() -> dict[str, float]:
    """``memory/peak_rss_gib`` always; ``memory/peak_gpu_allocated_gib`` / ``..._reserved_gib`` when CUDA is in use."""
    import torch

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    stats = {"memory/peak_rss_gib": rss / (GIB if sys.platform == "darwin" else GIB / 1024)}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        stats["memory/peak_gpu_allocated_gib"] = torch.cuda.max_memory_allocated() / GIB
        stats["memory/peak_gpu_reserved_gib"] = torch.cuda.max_memory_reserved() / GIB
    return {k: round(v, 4) for k, v in stats.items()}


class PeakMemoryCallback(TrainerCallback):
    """Adds :func:`peak_memory_gib` to every log entry (the reporters' view and ``state.log_history``)."""

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if logs is None:
            return
        stats = peak_memory_gib()
        logs.update(stats)
        # Trainer.log has already appended a copy of ``logs`` to the history: keep it in step.
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1].update(stats)


def add_memory_logging(trainer: Any) -> None:
    """Register :class:`PeakMemoryCallback` first, so the printer and every tracker see its values."""
    if not any(isinstance(cb, PeakMemoryCallback) for cb in trainer.callback_handler.callbacks):
        trainer.callback_handler.callbacks.insert(0, PeakMemoryCallback())
