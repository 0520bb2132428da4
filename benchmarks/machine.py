"""The machine a benchmark ran on, named in its output: GPU card, or CPU model and torch threads."""

from __future__ import annotations

import platform
from pathlib import Path

import torch


def device_name(device: str) -> str:
    """``NVIDIA H200`` for a CUDA device; ``AMD EPYC ... (2 torch threads)`` for the CPU."""
    if str(device).startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    cpuinfo = Path("/proc/cpuinfo")
    model = ""
    if cpuinfo.exists():
        model = next(
            (
                line.split(":", 1)[1].strip()
                for line in cpuinfo.read_text().splitlines()
                if line.startswith("model name")
            ),
            "",
        )
    return f"{model or platform.processor() or platform.machine()} ({torch.get_num_threads()} torch threads)"
