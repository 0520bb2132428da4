"""Fixtures for the NLG metric tests."""

from __future__ import annotations

import pytest

from tests.rrg_trl.metrics.pairs import iu_report_pairs, synthetic_pairs


@pytest.fixture(scope="session")
def synthetic() -> tuple[list[str], list[list[str]]]:
    return synthetic_pairs()


@pytest.fixture(scope="session")
def iu_pairs(iu_annotation) -> tuple[list[str], list[list[str]]]:
    return iu_report_pairs(iu_annotation)
