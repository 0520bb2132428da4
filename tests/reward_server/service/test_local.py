"""LocalRewardServer: the real `rrg-reward serve` in a child process, always stopped."""

from __future__ import annotations

import os

import pytest

from reward_server.client import RewardClient
from reward_server.service.local import LocalRewardServer


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_serves_and_stops(tiny_model_dir, tmp_path):
    log = tmp_path / "server.log"
    with LocalRewardServer(tiny_model_dir, log_path=log) as server:
        assert server.pid_path.read_text().strip() == str(server.pid)
        with RewardClient(server.url) as client:
            assert len(client.rewards(["no effusion", ""], ["no effusion", "no effusion"])) == 2
    assert server.returncode is not None and not server.pid_path.exists()
    server.proc.wait()
    assert not _alive(server.pid)


def test_a_server_that_dies_reports_its_log(tmp_path):
    server = LocalRewardServer(tmp_path / "no-models", log_path=tmp_path / "server.log")
    try:
        with pytest.raises(RuntimeError, match="exited with code") as err:
            server.wait_ready(120)
        assert "no-models" in str(err.value)  # the log tail names the missing model directory
    finally:
        server.stop()
