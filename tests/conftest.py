"""Test-wide setup: offline hub, one tiny kit per session, and the shared public data when present."""

from __future__ import annotations

import os

# Any accidental hub access must fail loudly instead of hanging (set before transformers is imported).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tests run tiny models: one intra-op thread is much faster than two fighting over a busy 2-core machine, and
# subprocesses (reward servers, 2-process accelerate runs) inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("RRG_SHARED_DATA", REPO.parent / "shared" / "data"))

# `make test` (and so CI) installs every Python test dependency (the dev extra and radeval): there a skip for
# a missing package means a broken install, and it fails instead of silently dropping parity or lint tests.
# Skips for what pip cannot install (a GPU, a Java runtime, ../shared data) stay skips.
REQUIRE_PYTHON_DEPS = os.environ.get("RRG_REQUIRE_TEST_DEPS") == "1"
MISSING_PACKAGE = ("not installed", "could not import", "pip install")


def _fail_missing_package_skip(report) -> None:
    if REQUIRE_PYTHON_DEPS and report.skipped and any(m in str(report.longrepr) for m in MISSING_PACKAGE):
        report.outcome = "failed"
        report.longrepr = (
            f"skipped for a missing Python package under RRG_REQUIRE_TEST_DEPS=1 (`make test` installs them all): "
            f"{report.longrepr}"
        )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_missing_package_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_missing_package_skip(outcome.get_result())


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """The scorer tiny kit (``rrg-reward make-tiny``), built once per test session."""
    from reward_server.tinykit import make_tiny

    return make_tiny(tmp_path_factory.mktemp("tiny-kit") / "models", seed=0)


@pytest.fixture(scope="session")
def official_layout_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny kit as ``rrg-reward download`` would leave a directory: no random-weights marker, checksums
    rewritten by the project's own writer. Its outputs must not be labelled random."""
    import shutil

    from reward_server.radcliq.model_files import RANDOM_WEIGHTS_FILE, write_checksums

    out = tmp_path_factory.mktemp("official-layout") / "models"
    shutil.copytree(tiny_model_dir, out)
    for marker in out.rglob(RANDOM_WEIGHTS_FILE):  # the directory's own, and its component folders' copies
        marker.unlink()
    write_checksums(out)
    return out


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Pin one intra-op thread for every test, even after code under test (the demo) changed it."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_policy(tmp_path_factory):
    """``tiny_policy(family, size="tiny")`` -> directory of that tiny policy (seed 0), written once per session."""
    from rrg_trl.modeling import make_tiny_policy

    root = tmp_path_factory.mktemp("tiny-policies")
    built: dict = {}

    def get(family: str, size: str = "tiny"):
        if (family, size) not in built:
            built[family, size] = make_tiny_policy(
                root / f"{family}-{size}", family=family, seed=0, size=size
            )
        return built[family, size]

    return get


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real public data); tests that need it skip cleanly on a user's fresh clone."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (set RRG_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def iu_annotation(shared_data) -> Path:
    path = shared_data / "iu_xray" / "r2gen_annotation.json"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path
