"""docker/healthcheck.py: the container probe exits 0 only on a 2xx from /ready, and sends the bearer key.

First against a small stdlib HTTP server (to pin each exit path), then against the real ``rrg-reward
serve`` started with the reward image's own CMD on the tiny kit, binding 0.0.0.0 with the key as in a
container, and stopped with SIGTERM like ``docker stop``.
"""

from __future__ import annotations

import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.docker.dockerfile_reader import Dockerfile

REPO = Path(__file__).resolve().parents[2]
PROBE = REPO / "docker" / "healthcheck.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def probe(port: int, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RRG_REWARD_")}
    return subprocess.run(
        [sys.executable, str(PROBE)],
        env={**clean, "RRG_REWARD_PORT": str(port), **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.fixture
def status_server():
    """Answers every GET with the status in ``state['status']`` and records the Authorization header."""
    state = {"status": 200, "auth": []}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            state["auth"].append((self.path, self.headers.get("Authorization")))
            body = b'{"ready": true}' if state["status"] == 200 else b'{"ready": false}'
            self.send_response(state["status"])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], state
    server.shutdown()
    server.server_close()


def test_ready_server_passes_and_gets_the_key(status_server):
    port, state = status_server
    result = probe(port, RRG_REWARD_API_KEY="k-123")
    assert result.returncode == 0, result.stderr
    assert state["auth"] == [("/ready", "Bearer k-123")]


def test_no_key_sends_no_header(status_server):
    port, state = status_server
    assert probe(port).returncode == 0
    assert state["auth"] == [("/ready", None)]


def test_not_ready_fails_and_says_why(status_server):
    port, state = status_server
    state["status"] = 503
    result = probe(port)
    assert result.returncode == 1
    assert "503" in result.stderr and "/ready" in result.stderr


def test_nothing_listening_fails():
    result = probe(free_port(), RRG_REWARD_HEALTH_TIMEOUT="2")
    assert result.returncode == 1
    assert "unreachable" in result.stderr


def test_explicit_url_wins(status_server):
    port, state = status_server
    assert probe(1, RRG_REWARD_HEALTH_URL=f"http://127.0.0.1:{port}/ready").returncode == 0
    assert state["auth"][0][0] == "/ready"


@pytest.mark.slow
def test_real_server_with_the_image_command(tiny_model_dir, tmp_path):
    """The CPU image's CMD, with only --model-dir and --port moved to this machine."""
    argv = Dockerfile(REPO / "docker" / "Dockerfile.reward").image({"DEVICE": "cpu"}).argv
    port = free_port()
    argv[argv.index("--model-dir") + 1] = str(tiny_model_dir)
    argv[argv.index("--port") + 1] = str(port)
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
    key_var = argv[argv.index("--api-key-env") + 1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RRG_REWARD_")}
    env.update({key_var: "image-test-key", "HF_HUB_OFFLINE": "1"})
    rrg_reward = Path(sys.executable).parent / argv[0]
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen([str(rrg_reward), *argv[1:]], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            result = probe(port, RRG_REWARD_API_KEY="image-test-key", RRG_REWARD_HEALTH_TIMEOUT="2")
            if result.returncode == 0:
                break
            assert server.poll() is None, (
                f"server exited {server.returncode}:\n{(tmp_path / 'server.log').read_text()}"
            )
            assert time.monotonic() < deadline, f"not ready in 120 s: {result.stderr}"
            time.sleep(0.5)
        server.send_signal(signal.SIGTERM)  # what `docker stop` sends to PID 1
        code = server.wait(timeout=60)
        text = (tmp_path / "server.log").read_text()
        # uvicorn drains, runs the app's shutdown, then re-raises the signal: exit by SIGTERM (143 in
        # Docker) or 0, never a crash or a hang.
        assert code in (0, -signal.SIGTERM), f"exit {code}:\n{text}"
        assert "Application shutdown complete" in text, text
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        log.close()


def test_server_without_the_key_refuses_to_start(tiny_model_dir):
    """The image's CMD binds 0.0.0.0: with the key variable unset the server must not come up open."""
    argv = Dockerfile(REPO / "docker" / "Dockerfile.reward").image({"DEVICE": "cpu"}).argv
    argv[argv.index("--model-dir") + 1] = str(tiny_model_dir)
    argv[argv.index("--port") + 1] = str(free_port())
    env = {k: v for k, v in os.environ.items() if not k.startswith("RRG_REWARD_")}
    result = subprocess.run(
        [str(Path(sys.executable).parent / argv[0]), *argv[1:]],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "RRG_REWARD_API_KEY" in result.stderr
