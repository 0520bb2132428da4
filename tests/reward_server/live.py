"""Helpers for tests against a real server: the tiny-kit scorer, uvicorn on loopback, fault injection."""

from __future__ import annotations

import functools
import os
import random
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import uvicorn

from reward_server.service.app import ServerSettings, create_app
from reward_server.service.local import free_port, serve_command, wait_ready  # noqa: F401 (used by the tests)
from reward_server.tinykit.corpus import synthetic_reports

REPO = Path(__file__).resolve().parents[2]


@functools.cache
def tiny_scorer(model_dir: str):
    """One real RadCliQScorer on the tiny kit per test process (loading costs seconds, scoring ms)."""
    from reward_server import RadCliQScorer

    return RadCliQScorer.from_pretrained(model_dir, device="cpu")


@functools.cache
def reports(n: int, seed: int = 0) -> list[str]:
    return synthetic_reports(n, seed=seed)


def pool() -> list[str]:
    """A fixed set of texts: the scorer's feature cache makes repeated texts cost microseconds, so tests
    exercise batching and plumbing at full speed; the pairwise metric work is still done per pair."""
    return reports(64, seed=0)


def grpo_batch(n_refs: int, group: int = 8, seed: int = 0) -> tuple[list[str], list[str]]:
    """GRPO-shaped pairs: ``group`` hypotheses per reference, each reference repeated ``group`` times."""
    rng = random.Random(seed)
    refs = [rng.choice(pool()) for _ in range(n_refs)]
    hyps = [rng.choice(pool()) for _ in range(n_refs * group)]
    return hyps, [r for r in refs for _ in range(group)]


def assert_rows_close(got: list[dict], expected: list[dict], tol: float = 1e-4) -> None:
    """Row-by-row equality up to float32 noise: encoders and BERTScore run on padded batches, so the last
    digits (~1e-6, ~1e-5 after RadCliQ's standardisation) depend on which texts shared a batch, in which
    process; a swapped or lost row differs by orders of magnitude more."""
    assert len(got) == len(expected), f"{len(got)} rows for {len(expected)} pairs"
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        assert g.keys() == e.keys(), i
        for k in e:
            assert abs(g[k] - e[k]) <= tol, f"row {i} {k}: {g[k]} != {e[k]}"


class FaultyScorer:
    """The real scorer, except that ``score_many`` raises whatever ``fault(groups)`` returns (if anything)."""

    def __init__(self, scorer, fault: Callable[[Sequence], BaseException | None]):
        self._scorer = scorer
        self.fault = fault
        self.calls: list[int] = []  # pairs per score_many call

    def score_many(self, groups):
        self.calls.append(sum(len(h) for h, _ in groups))
        exc = self.fault(groups)
        if exc is not None:
            raise exc
        return self._scorer.score_many(groups)

    def __getattr__(self, name):
        return getattr(self._scorer, name)


class GatedScorer(FaultyScorer):
    """Blocks every batch until ``gate`` is set: lets a test fill the queue deterministically."""

    def __init__(self, scorer):
        super().__init__(scorer, lambda groups: None)
        self.gate = threading.Event()
        self.entered = threading.Event()

    def score_many(self, groups):
        self.entered.set()
        if not self.gate.wait(timeout=60):
            raise RuntimeError("test gate never opened")
        return super().score_many(groups)


class LiveServer:
    """The real app under uvicorn, on 127.0.0.1 with an OS-chosen port, in a background thread."""

    def __init__(self, scorer, settings: ServerSettings | None = None, **overrides):
        settings = settings or ServerSettings(port=0, **overrides)
        self.app = create_app(scorer, settings)
        self.state = self.app.state.rrg
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=settings.port,
            log_level="warning",
            timeout_graceful_shutdown=settings.timeout_graceful_shutdown_s,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = ""

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def spawn_server(model_dir: str | Path, port: int, *extra: str, env: dict | None = None) -> subprocess.Popen:
    """``rrg-reward serve`` in a child process (what users run), logs to a pipe."""
    cmd = serve_command(model_dir, port, *extra)
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(env or {})}
    return subprocess.Popen(
        cmd, cwd=REPO, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
