"""Shared fixtures for the evaluation tests: the real tiny-kit scorer, a tiny policy, report pairs."""

from __future__ import annotations

import pytest

from reward_server.tinykit.corpus import synthetic_reports


@pytest.fixture(scope="session")
def scorer(tiny_model_dir):
    from tests.reward_server.live import tiny_scorer

    return tiny_scorer(str(tiny_model_dir))


@pytest.fixture(scope="session")
def policy_dir(tiny_policy):
    return tiny_policy("qwen2_vl")


@pytest.fixture(scope="session")
def pairs() -> tuple[list[str], list[str]]:
    """Hypotheses vs references with the cases a table must survive: identical, empty, unrelated, repeated."""
    refs = synthetic_reports(10, seed=3)
    hyps = synthetic_reports(10, seed=4)
    hyps[0] = refs[0]  # identical pair
    hyps[1] = ""  # empty hypothesis
    hyps[2] = hyps[3]  # a repeated hypothesis (feature cache path)
    hyps[4] = refs[5]  # the right report for the wrong study
    return hyps, refs
