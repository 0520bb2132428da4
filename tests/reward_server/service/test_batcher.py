"""MicroBatcher on the real tiny-kit scorer: coalescing, chunking, fault isolation, OOM halving, shutdown."""

from __future__ import annotations

import asyncio
import random

import pytest
import torch

from reward_server.service.batcher import (
    BatcherClosedError,
    MicroBatcher,
    QueueFullError,
    ScoringError,
    is_oom,
)
from tests.reward_server.live import FaultyScorer, GatedScorer, assert_rows_close, grpo_batch, tiny_scorer


@pytest.fixture(scope="module")
def scorer(tiny_model_dir):
    return tiny_scorer(str(tiny_model_dir))


def run(coro):
    return asyncio.run(coro)


async def _with_batcher(scorer, body, **kw):
    batcher = MicroBatcher(scorer, **kw)
    await batcher.start()
    try:
        return await body(batcher)
    finally:
        await batcher.close()


def test_concurrent_requests_are_coalesced_and_returned_in_order(scorer):
    rng = random.Random(0)
    requests = [grpo_batch(rng.randint(1, 3), group=rng.choice([2, 4, 8]), seed=i) for i in range(24)]
    expected = [scorer.score(h, r) for h, r in requests]

    async def body(batcher):
        return await asyncio.gather(*(batcher.score(h, r) for h, r in requests)), batcher.stats

    got, stats = run(_with_batcher(scorer, body, max_batch_pairs=64, max_wait_ms=50))
    for g, e in zip(got, expected, strict=True):
        assert_rows_close(g, e)
    assert stats.batches < len(requests), "concurrent requests were not coalesced"
    assert stats.largest_batch <= 64
    assert stats.pairs == sum(len(h) for h, _ in requests)


def test_large_request_is_split_and_reassembled_in_order(scorer):
    hyps, refs = grpo_batch(5, group=7, seed=3)  # 35 pairs, chunks of 8
    expected = scorer.score(hyps, refs)

    async def body(batcher):
        return await batcher.score(hyps, refs), batcher.stats

    got, stats = run(_with_batcher(scorer, body, max_batch_pairs=8, max_wait_ms=0))
    assert_rows_close(got, expected)
    assert stats.chunks == 5 and stats.largest_batch == 8


def test_failing_batch_fails_only_its_requests(scorer):
    poisoned = "POISON"  # the fault fires on any batch containing this hypothesis

    def fault(groups):
        if any(poisoned in h for h, _ in groups):
            return RuntimeError("injected scorer failure")
        return None

    faulty = FaultyScorer(scorer, fault)
    good = grpo_batch(1, group=4, seed=1)
    bad = ([poisoned, *good[0][1:]], good[1])

    async def body(batcher):
        # bad and first good request share the first batch (the queue holds both before the worker wakes);
        # the later request lands in a new batch.
        first = await asyncio.gather(batcher.score(*bad), batcher.score(*good), return_exceptions=True)
        later = await batcher.score(*good)
        return first, later, batcher.stats

    (bad_res, good_res), later, stats = run(_with_batcher(faulty, body, max_batch_pairs=64, max_wait_ms=20))
    assert isinstance(bad_res, ScoringError) and isinstance(good_res, ScoringError)
    assert "injected scorer failure" in str(bad_res) and "RuntimeError" in str(bad_res)
    assert isinstance(bad_res.__cause__, RuntimeError)
    assert_rows_close(later, scorer.score(*good))
    assert stats.failed_batches == 1 and stats.batches == 2


def test_oom_retries_in_halves_then_succeeds(scorer):
    limit = 5

    def fault(groups):
        if sum(len(h) for h, _ in groups) > limit:
            return torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return None

    faulty = FaultyScorer(scorer, fault)
    requests = [grpo_batch(1, group=8, seed=s) for s in range(3)]  # 24 pairs in one batch

    async def body(batcher):
        return await asyncio.gather(*(batcher.score(h, r) for h, r in requests)), batcher.stats

    got, stats = run(_with_batcher(faulty, body, max_batch_pairs=64, max_wait_ms=50))
    for g, (h, r) in zip(got, requests, strict=True):
        assert_rows_close(g, scorer.score(h, r))
    assert stats.oom_splits > 0
    assert faulty.calls[0] == 24 and max(faulty.calls[1:]) <= 12 and min(faulty.calls) >= 1
    assert [c for c in faulty.calls if c <= limit], "never reached a batch that fits"


def test_oom_on_a_single_pair_fails_with_the_cause(scorer):
    faulty = FaultyScorer(scorer, lambda groups: RuntimeError("CUDA error: out of memory"))

    async def body(batcher):
        with pytest.raises(ScoringError, match="out of memory"):
            await batcher.score(*grpo_batch(1, group=4))
        return batcher.stats

    stats = run(_with_batcher(faulty, body, max_batch_pairs=64, max_wait_ms=0))
    assert faulty.calls == [4, 2, 1]  # halved down to one pair, then gave up
    assert stats.failed_batches == 1


def test_idf_scorer_requests_are_not_split(scorer):
    class IdfScorer(FaultyScorer):
        idf = True

    wrapped = IdfScorer(scorer, lambda g: None)
    hyps, refs = grpo_batch(2, group=8)

    async def body(batcher):
        return await batcher.score(hyps, refs)

    run(_with_batcher(wrapped, body, max_batch_pairs=4, max_wait_ms=0))
    assert wrapped.calls == [16]  # IDF is per request: splitting would change BERTScore


def test_queue_full_raises_with_retry_after(scorer):
    gated = GatedScorer(scorer)
    h, r = grpo_batch(1, group=8)

    async def body(batcher):
        first = asyncio.create_task(batcher.score(h, r))  # taken by the worker, blocked in the scorer
        await asyncio.to_thread(gated.entered.wait, 10)
        queued = asyncio.create_task(batcher.score(h, r))  # waits in the queue (8 of 10 pairs)
        await asyncio.sleep(0.05)
        with pytest.raises(QueueFullError, match="max_queue_pairs=10") as info:
            await batcher.score(h, r)
        assert info.value.retry_after == 2.0
        gated.gate.set()
        return await first, await queued

    a, b = run(
        _with_batcher(gated, body, max_batch_pairs=8, max_queue_pairs=10, retry_after_s=2.0, max_wait_ms=0)
    )
    assert_rows_close(a, scorer.score(h, r))
    assert_rows_close(b, scorer.score(h, r))


def test_close_drains_queued_work_and_rejects_new(scorer):
    requests = [grpo_batch(1, group=4, seed=s) for s in range(6)]

    async def body():
        batcher = MicroBatcher(scorer, max_batch_pairs=4, max_wait_ms=0)
        await batcher.start()
        tasks = [asyncio.create_task(batcher.score(h, r)) for h, r in requests]
        await asyncio.sleep(0)  # all enqueued
        await batcher.close(drain=True)
        with pytest.raises(BatcherClosedError):
            await batcher.score(*requests[0])
        return await asyncio.gather(*tasks)

    for got, (h, r) in zip(run(body()), requests, strict=True):
        assert_rows_close(got, scorer.score(h, r))


def test_cancelled_request_is_skipped(scorer):
    gated = GatedScorer(scorer)
    h, r = grpo_batch(1, group=4)

    async def body(batcher):
        first = asyncio.create_task(batcher.score(h, r))
        await asyncio.to_thread(gated.entered.wait, 10)
        abandoned = asyncio.create_task(batcher.score(*grpo_batch(1, group=4, seed=9)))
        await asyncio.sleep(0.01)
        abandoned.cancel()
        await asyncio.sleep(0.01)
        assert batcher.queued_pairs == 4
        gated.gate.set()
        await first
        await asyncio.sleep(0.05)
        return batcher.queued_pairs

    assert run(_with_batcher(gated, body, max_batch_pairs=4, max_wait_ms=0)) == 0
    assert gated.calls == [4]  # the cancelled request never reached the scorer


def test_bad_settings_and_lengths():
    with pytest.raises(ValueError, match="max_batch_pairs"):
        MicroBatcher(object(), max_batch_pairs=0)
    with pytest.raises(ValueError, match="max_queue_pairs"):
        MicroBatcher(object(), max_batch_pairs=8, max_queue_pairs=4)

    async def body():
        batcher = MicroBatcher(object())
        with pytest.raises(BatcherClosedError):
            await batcher.score(["a"], ["b"])
        with pytest.raises(ValueError, match="same length"):
            await batcher.score(["a"], [])

    run(body())


def test_is_oom():
    assert is_oom(torch.cuda.OutOfMemoryError("x"))
    assert is_oom(RuntimeError("CUDA out of memory. Tried to allocate"))
    assert not is_oom(RuntimeError("shape mismatch"))
    assert not is_oom(ValueError("out of memory"))
