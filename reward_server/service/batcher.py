"""Coalesce concurrent scoring requests into scorer batches: one asyncio worker, one scorer thread.

GRPO sends N near-simultaneous requests per generation round (one per rank; OpenRLHF one per sample).
Scoring them together fills the GPU, and the scorer's per-text cache then sees each repeated reference
once. The pattern is TRL's ``vllm_serve`` batcher: take the first queued request, wait up to
``max_wait_ms`` for more, cap the batch at ``max_batch_pairs``, run it off the event loop, resolve futures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, Protocol

logger = logging.getLogger(__name__)

Rows = list[dict[str, Any]]
# (group index in the batch, hypotheses, references): a batch group, or a slice of one after an OOM split.
_Piece = tuple[int, Sequence[str], Sequence[str]]


class BatcherError(RuntimeError):
    """Base class of the errors a caller of :meth:`MicroBatcher.score` may see."""


class QueueFullError(BatcherError):
    """Too many pairs are waiting; the caller should retry after ``retry_after`` seconds (HTTP 503)."""

    def __init__(self, queued: int, incoming: int, limit: int, retry_after: float):
        super().__init__(
            f"reward queue is full: {queued} pairs queued + {incoming} incoming > max_queue_pairs={limit}; "
            f"retry after {retry_after:g}s"
        )
        self.retry_after = retry_after


class BatcherClosedError(BatcherError):
    """The batcher is shutting down and takes no new work (HTTP 503)."""


class ScoringError(BatcherError):
    """The scorer raised on the batch that held this request; ``__cause__`` is the original exception."""


def is_oom(exc: BaseException) -> bool:
    """CUDA out-of-memory, as torch raises it (its own class, or a RuntimeError from older kernels)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _free_cuda_cache() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


class BatchObserver(Protocol):
    """What the batcher reports (implemented by :class:`reward_server.service.prometheus.ServerMetrics`)."""

    def on_queue(self, pairs: int) -> None: ...

    def on_batch(
        self, pairs: int, chunks: int, seconds: float, waited: Sequence[float], ok: bool
    ) -> None: ...

    def on_oom_split(self, pairs: int) -> None: ...


@dataclass
class BatcherStats:
    """Counters for tests and ``/v1/info``; Prometheus gets the same events through the observer."""

    batches: int = 0
    pairs: int = 0
    chunks: int = 0
    failed_batches: int = 0
    oom_splits: int = 0
    largest_batch: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(eq=False)
class _Chunk:
    hypotheses: Sequence[str]
    references: Sequence[str]
    future: asyncio.Future
    enqueued: float

    def __len__(self) -> int:
        return len(self.hypotheses)


class MicroBatcher:
    """Queue of scoring requests served by one worker task that batches them for ``scorer.score_many``.

    ``scorer`` needs ``score_many(groups) -> list[list[dict]]`` (one row list per ``(hyps, refs)`` group).
    Requests above ``max_batch_pairs`` are split into chunks and reassembled in order; when the scorer
    computes IDF per group (``scorer.idf``), splitting would change the numbers, so such requests run whole.
    """

    def __init__(
        self,
        scorer: Any,
        max_batch_pairs: int = 256,
        max_wait_ms: float = 5.0,
        max_queue_pairs: int = 65536,
        retry_after_s: float = 1.0,
        split_requests: bool | None = None,
        observer: BatchObserver | None = None,
    ):
        if max_batch_pairs < 1:
            raise ValueError(f"max_batch_pairs must be >= 1, got {max_batch_pairs}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        if max_queue_pairs < max_batch_pairs:
            raise ValueError(
                f"max_queue_pairs ({max_queue_pairs}) must be >= max_batch_pairs ({max_batch_pairs})"
            )
        self.scorer = scorer
        self.max_batch_pairs = max_batch_pairs
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_queue_pairs = max_queue_pairs
        self.retry_after_s = retry_after_s
        self.split_requests = (
            (not getattr(scorer, "idf", False)) if split_requests is None else split_requests
        )
        self.observer = observer
        self.stats = BatcherStats()
        self._queue: deque[_Chunk] = deque()
        self._queued_pairs = 0
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closing = False

    # ------------------------------------------------------------------ lifecycle
    @property
    def running(self) -> bool:
        return self._worker is not None and not self._worker.done() and not self._closing

    @property
    def queued_pairs(self) -> int:
        return self._queued_pairs

    async def start(self) -> None:
        """Start the worker in the running loop (idempotent)."""
        if self._worker is not None:
            return
        self._wakeup = asyncio.Event()
        # One dedicated thread: the scorer (and its CUDA context) is only ever touched from it.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rrg-scorer")
        self._worker = asyncio.create_task(self._run(), name="rrg-reward-batcher")

    async def close(self, drain: bool = True) -> None:
        """Stop taking work; with ``drain`` finish everything already queued, else fail it."""
        self._closing = True
        if not drain:
            while self._queue:
                chunk = self._pop()
                if not chunk.future.done():
                    chunk.future.set_exception(BatcherClosedError("reward server shut down before scoring"))
        if self._wakeup is not None:
            self._wakeup.set()
        if self._worker is not None:
            if not drain:
                self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        if self._executor is not None:
            self._executor.shutdown(wait=drain, cancel_futures=not drain)

    # ------------------------------------------------------------------ submit
    async def score(self, hypotheses: Sequence[str], references: Sequence[str]) -> Rows:
        """Score one request's pairs (in order) as part of whatever batch it lands in."""
        if len(hypotheses) != len(references):
            raise ValueError(
                f"hypotheses and references must have the same length, got {len(hypotheses)} and {len(references)}"
            )
        if self._closing or self._worker is None:
            raise BatcherClosedError("reward server is not accepting work (starting or shutting down)")
        n = len(hypotheses)
        if n == 0:
            return []
        if self._queued_pairs + n > self.max_queue_pairs:
            raise QueueFullError(self._queued_pairs, n, self.max_queue_pairs, self.retry_after_s)
        loop = asyncio.get_running_loop()
        step = self.max_batch_pairs if self.split_requests else n
        now = time.perf_counter()
        chunks = [
            _Chunk(hypotheses[i : i + step], references[i : i + step], loop.create_future(), now)
            for i in range(0, n, step)
        ]
        self._queue.extend(chunks)
        self._queued_pairs += n
        self._report_queue()
        self._wakeup.set()
        futures = [c.future for c in chunks]
        try:
            parts = await asyncio.gather(*futures)
        except BaseException:
            # One chunk failed (or the caller went away): drop the siblings still waiting.
            for f in futures:
                f.cancel()
            raise
        return [row for part in parts for row in part]

    # ------------------------------------------------------------------ worker
    def _pop(self) -> _Chunk:
        chunk = self._queue.popleft()
        self._queued_pairs -= len(chunk)
        return chunk

    def _drop_abandoned_head(self) -> None:
        while self._queue and self._queue[0].future.done():
            self._pop()

    def _report_queue(self) -> None:
        if self.observer is not None:
            self.observer.on_queue(self._queued_pairs)

    async def _collect(self) -> list[_Chunk]:
        """The next batch: the oldest chunk plus whatever fits that arrives within ``max_wait_ms``."""
        loop = asyncio.get_running_loop()
        batch = [self._pop()]
        pairs = len(batch[0])
        deadline = loop.time() + self.max_wait_s
        while pairs < self.max_batch_pairs:
            self._drop_abandoned_head()
            if self._queue:
                if pairs + len(self._queue[0]) > self.max_batch_pairs:
                    break
                batch.append(self._pop())
                pairs += len(batch[-1])
                continue
            timeout = deadline - loop.time()
            if self._closing or timeout <= 0:
                break
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout)
            except TimeoutError:
                break
        self._report_queue()
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._drop_abandoned_head()
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = await self._collect()
            groups = [(c.hypotheses, c.references) for c in batch]
            pairs = sum(len(c) for c in batch)
            start = time.perf_counter()
            waited = [start - c.enqueued for c in batch]
            try:
                results = await loop.run_in_executor(self._executor, self._score_groups, groups)
            except Exception as exc:  # the scorer's failure belongs to this batch's requests only
                self._finish(pairs, len(batch), start, waited, ok=False)
                logger.warning("scorer failed on a batch of %d pairs (%d chunks): %r", pairs, len(batch), exc)
                for chunk in batch:
                    if not chunk.future.done():
                        err = ScoringError(
                            f"scorer failed on a batch of {pairs} pairs: {type(exc).__name__}: {exc}"
                        )
                        err.__cause__ = exc
                        chunk.future.set_exception(err)
                continue
            self._finish(pairs, len(batch), start, waited, ok=True)
            for chunk, rows in zip(batch, results, strict=True):
                if not chunk.future.done():
                    chunk.future.set_result(rows)

    def _finish(self, pairs: int, chunks: int, start: float, waited: list[float], ok: bool) -> None:
        s = self.stats
        s.batches += 1
        s.chunks += chunks
        s.pairs += pairs
        s.failed_batches += not ok
        s.largest_batch = max(s.largest_batch, pairs)
        if self.observer is not None:
            self.observer.on_batch(pairs, chunks, time.perf_counter() - start, waited, ok)

    # ------------------------------------------------------------------ scorer thread
    def _score_groups(self, groups: list[tuple[Sequence[str], Sequence[str]]]) -> list[Rows]:
        """Runs in the scorer thread: one ``score_many`` call, split in halves on CUDA OOM."""
        merged: list[Rows] = [[] for _ in groups]
        for (index, _, _), rows in self._score_pieces([(i, h, r) for i, (h, r) in enumerate(groups)]):
            merged[index].extend(rows)
        for (hyps, _), rows in zip(groups, merged, strict=True):
            if len(rows) != len(hyps):
                raise RuntimeError(f"scorer returned {len(rows)} rows for a group of {len(hyps)} pairs")
        return merged

    def _score_pieces(self, pieces: list[_Piece]) -> list[tuple[_Piece, Rows]]:
        try:
            out = self.scorer.score_many([(h, r) for _, h, r in pieces])
        except Exception as exc:
            if not is_oom(exc):
                raise
            halves = self._halve(pieces)
            if halves is None:
                raise
            _free_cuda_cache()
            pairs = sum(len(h) for _, h, _ in pieces)
            self.stats.oom_splits += 1
            if self.observer is not None:
                self.observer.on_oom_split(pairs)
            logger.warning(
                "CUDA out of memory on %d pairs; retrying as %d + %d pairs",
                pairs,
                sum(len(h) for _, h, _ in halves[0]),
                sum(len(h) for _, h, _ in halves[1]),
            )
            return self._score_pieces(halves[0]) + self._score_pieces(halves[1])
        if len(out) != len(pieces):
            raise RuntimeError(f"scorer returned {len(out)} groups for {len(pieces)}")
        return list(zip(pieces, out, strict=True))

    def _halve(self, pieces: list[_Piece]) -> tuple[list[_Piece], list[_Piece]] | None:
        """Two non-empty halves by pair count, or None when the batch cannot get smaller."""
        total = sum(len(h) for _, h, _ in pieces)
        if total <= 1:
            return None
        target = total // 2
        left: list[_Piece] = []
        right: list[_Piece] = []
        seen = 0
        for index, hyps, refs in pieces:
            n = len(hyps)
            if seen >= target or (seen + n > target and not self.split_requests and left):
                right.append((index, hyps, refs))
            elif seen + n > target and self.split_requests:
                cut = target - seen
                left.append((index, hyps[:cut], refs[:cut]))
                right.append((index, hyps[cut:], refs[cut:]))
            else:
                left.append((index, hyps, refs))
            seen += n
        if not left or not right:
            return None
        return left, right
