"""Prometheus metrics of the reward server (``GET /metrics``).

Each app gets its own registry, so several servers (tests, replicas in one process) never share counters.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)


class ServerMetrics:
    """Request, batch and queue metrics; also the batcher's observer."""

    def __init__(self, registry: CollectorRegistry | None = None, namespace: str = "rrg_reward"):
        self.registry = registry if registry is not None else CollectorRegistry()
        kw = {"namespace": namespace, "registry": self.registry}
        self.requests = Counter(
            "requests", "HTTP requests by route and status code.", ["route", "status"], **kw
        )
        self.pairs = Counter("pairs", "Pairs received for scoring, by route.", ["route"], **kw)
        self.errors = Counter("errors", "Failed requests by kind.", ["kind"], **kw)
        self.request_latency = Histogram(
            "request_latency_seconds",
            "Time from request arrival to response.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            **kw,
        )
        self.queue_wait = Histogram(
            "queue_wait_seconds",
            "Time a chunk waited in the queue before its batch started.",
            buckets=_LATENCY_BUCKETS,
            **kw,
        )
        self.batch_latency = Histogram(
            "batch_latency_seconds", "Scorer time per batch.", ["outcome"], buckets=_LATENCY_BUCKETS, **kw
        )
        self.batch_pairs = Histogram("batch_pairs", "Pairs per scorer batch.", buckets=_SIZE_BUCKETS, **kw)
        self.batch_chunks = Histogram(
            "batch_chunks", "Request chunks coalesced per scorer batch.", buckets=_SIZE_BUCKETS, **kw
        )
        self.queue_pairs = Gauge("queue_pairs", "Pairs waiting for a batch.", **kw)
        self.oom_splits = Counter("oom_splits", "Batches split in halves after CUDA out-of-memory.", **kw)
        self.ready = Gauge("ready", "1 when the scorer is loaded and the batcher accepts work.", **kw)

    # ------------------------------------------------------------------ batcher observer
    def on_queue(self, pairs: int) -> None:
        self.queue_pairs.set(pairs)

    def on_batch(self, pairs: int, chunks: int, seconds: float, waited: Sequence[float], ok: bool) -> None:
        self.batch_pairs.observe(pairs)
        self.batch_chunks.observe(chunks)
        self.batch_latency.labels("ok" if ok else "error").observe(seconds)
        for w in waited:
            self.queue_wait.observe(w)

    def on_oom_split(self, pairs: int) -> None:
        self.oom_splits.inc()

    # ------------------------------------------------------------------ exposition
    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
