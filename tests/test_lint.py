"""ruff is part of the suite, so style regressions fail CI like any other test."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.parametrize("args", [["check"], ["format", "--check"]], ids=["check", "format"])
def test_ruff_clean(args):
    ruff = shutil.which("ruff") or shutil.which("ruff", path=str(REPO / ".venv" / "bin"))
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -e '.[dev]')")
    proc = subprocess.run([ruff, *args, str(REPO)], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_ruff_is_installed_in_dev_environments():
    """`make test` installs the dev extra, so a missing ruff there means a broken install, not a skip."""
    if "/.venv/" in sys.executable:
        assert shutil.which("ruff") or (REPO / ".venv" / "bin" / "ruff").exists()
