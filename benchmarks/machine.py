"""The machine a benchmark ran on, named in its output: GPU card, or CPU model, torch threads and the
instruction sets that decide which kernels bf16 / int8 / 4-bit take (AMX and AVX-512-BF16 run bf16 natively;
an AVX2-only CPU emulates it, several times slower than float32)."""

from __future__ import annotations

import platform
from pathlib import Path

import torch

# /proc/cpuinfo flag -> how benchmarks name it, most capable first.
KERNEL_FLAGS = {
    "amx_bf16": "AMX-BF16",
    "amx_tile": "AMX-TILE",
    "avx512_bf16": "AVX-512-BF16",
    "avx512f": "AVX-512",
    "avx2": "AVX2",
}


def _cpuinfo_field(text: str, field: str) -> str:
    return next(
        (
            line.split(":", 1)[1].strip()
            for line in text.splitlines()
            if line.split(":", 1)[0].strip() == field
        ),
        "",
    )


def cpu_kernels(cpuinfo: str | None = None) -> str:
    """``AVX-512-BF16 AVX-512 AVX2 (no AMX); torch CPU kernels: AVX512`` — which bf16 path a figure took."""
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        cpuinfo = path.read_text() if path.exists() else ""
    flags = set(_cpuinfo_field(cpuinfo, "flags").split())
    found = [name for flag, name in KERNEL_FLAGS.items() if flag in flags]
    amx = "" if "amx_bf16" in flags else " (no AMX)"
    return (
        f"{' '.join(found) or 'no AVX2'}{amx}; torch CPU kernels: {torch.backends.cpu.get_cpu_capability()}"
    )


def device_name(device: str) -> str:
    """``NVIDIA H200`` for a CUDA device; ``AMD EPYC ... (2 torch threads; AVX2 (no AMX); ...)`` for the CPU."""
    if str(device).startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    path = Path("/proc/cpuinfo")
    cpuinfo = path.read_text() if path.exists() else ""
    model = _cpuinfo_field(cpuinfo, "model name") or platform.processor() or platform.machine()
    return f"{model} ({torch.get_num_threads()} torch threads; {cpu_kernels(cpuinfo)})"
