"""Tiny policies written once per session (one directory per family, built on first use)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    """Tiny models are dominated by thread hand-offs: one intra-op thread is ~10x faster on a busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_policy(tmp_path_factory):
    """``tiny_policy(family)`` -> directory of that family's tiny policy (seed 0)."""
    from rrg_trl.modeling import make_tiny_policy

    root = tmp_path_factory.mktemp("tiny-policies")
    built: dict = {}

    def get(family: str):
        if family not in built:
            built[family] = make_tiny_policy(root / family, family=family, seed=0)
        return built[family]

    return get
