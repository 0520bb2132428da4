"""Benchmarks name the CPU's bf16 kernels (AMX / AVX-512-BF16 / AVX2) beside the machine."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

_spec = importlib.util.spec_from_file_location(
    "bench_machine", Path(__file__).parents[2] / "benchmarks" / "machine.py"
)
machine = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(machine)

XEON = "model name\t: Intel(R) Xeon(R) Platinum 8481C\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
EPYC = "model name\t: AMD EPYC 7B13\nflags\t\t: fpu avx avx2 fma f16c\n"


def test_cpu_kernels_name_the_bf16_path():
    capability = torch.backends.cpu.get_cpu_capability()
    assert (
        machine.cpu_kernels(XEON)
        == f"AMX-BF16 AMX-TILE AVX-512-BF16 AVX-512 AVX2; torch CPU kernels: {capability}"
    )
    assert machine.cpu_kernels(EPYC) == f"AVX2 (no AMX); torch CPU kernels: {capability}"


def test_device_name_carries_the_flags_of_this_cpu():
    name = machine.device_name("cpu")
    assert "torch threads;" in name and "torch CPU kernels:" in name
