"""A reward server in a child process on loopback, for the demo, the benchmarks and the tests.

It runs exactly what users run (``rrg-reward serve``), waits for ``/ready``, and always stops it (SIGTERM, so
queued work drains, then SIGKILL if it hangs), so a caller never leaves a server behind.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_command(model_dir: str | Path, port: int, *extra: str, device: str | None = "cpu") -> list[str]:
    """The ``rrg-reward serve`` command line (run through this interpreter, so no PATH lookup is needed)."""
    cmd = [
        sys.executable,
        "-m",
        "reward_server.cli",
        "serve",
        "--model-dir",
        str(model_dir),
        "--port",
        str(port),
    ]
    if device:
        cmd += ["--device", device]
    return [*cmd, "--log-level", "warning", *extra]


def wait_ready(
    url: str,
    proc: subprocess.Popen | None = None,
    timeout_s: float = 120.0,
    log_tail: Callable[[], str] | None = None,
) -> float:
    """Seconds until ``url/ready`` answered 200 (the client's wait, checking between polls that ``proc`` still
    runs); RuntimeError with the server's last output if it dies or times out."""
    from reward_server.client import RewardClient, RewardServerUnavailable

    def tail() -> str:
        return log_tail() if log_tail else ""

    def still_running(_progress: str) -> None:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(
                f"the reward server exited with code {proc.returncode} before it was ready\n{tail()}"
            )

    start = time.monotonic()
    try:
        with RewardClient(url, timeout=2.0, connect_timeout=2.0) as client:
            client.wait_until_ready(timeout_s, interval=0.1, progress=still_running, progress_every_s=0.0)
    except RewardServerUnavailable as e:
        raise RuntimeError(
            f"the reward server at {url} was not ready after {timeout_s:g}s ({e})\n{tail()}"
        ) from e
    return time.monotonic() - start


class LocalRewardServer:
    """``rrg-reward serve`` on 127.0.0.1 in a child process; use as a context manager or call :meth:`stop`.

    ``log_path``: where its output goes (a ``.pid`` file is written beside it while it runs, so a user or a
    test can find the process); None inherits this process's stdout/stderr.
    """

    def __init__(
        self,
        model_dir: str | Path,
        *extra: str,
        port: int | None = None,
        device: str | None = "cpu",
        log_path: str | Path | None = None,
        env: dict[str, str] | None = None,
    ):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(log_path) if log_path is not None else None
        self._log = open(self.log_path, "w", encoding="utf-8") if self.log_path else None  # noqa: SIM115 (stop)
        full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **(env or {})}
        self.proc = subprocess.Popen(
            serve_command(model_dir, self.port, *extra, device=device),
            stdout=self._log,
            stderr=subprocess.STDOUT if self._log else None,
            env=full_env,
        )
        self.pid = self.proc.pid
        self.pid_path = self.log_path.with_suffix(".pid") if self.log_path else None
        if self.pid_path:
            self.pid_path.write_text(f"{self.pid}\n")
        self.returncode: int | None = None

    def wait_ready(self, timeout_s: float = 120.0) -> float:
        return wait_ready(self.url, self.proc, timeout_s, self._log_tail if self._log else None)

    def _log_tail(self, lines: int = 15) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return f"its log ({self.log_path}) ends with:\n" + "\n".join(text)

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM (graceful shutdown), then SIGKILL after ``timeout_s``; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log:
            self._log.close()
        if self.pid_path:
            self.pid_path.unlink(missing_ok=True)
        self.returncode = self.proc.returncode
        return self.returncode

    def __enter__(self) -> LocalRewardServer:
        self.wait_ready()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
