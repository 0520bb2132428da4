"""RewardClient / AsyncRewardClient against live servers: chunking, sharding, retries, restart, budget."""

from __future__ import annotations

import asyncio
import signal
import threading
import time

import pytest

from reward_server.client import (
    AsyncRewardClient,
    Delay,
    RewardClient,
    RewardRequestError,
    RewardScoringError,
    RewardServerUnavailable,
    adrive,
    drive,
)
from tests.reward_server.live import (
    FaultyScorer,
    GatedScorer,
    LiveServer,
    assert_rows_close,
    free_port,
    grpo_batch,
    spawn_server,
    tiny_scorer,
)


@pytest.fixture(scope="module")
def scorer(tiny_model_dir):
    return tiny_scorer(str(tiny_model_dir))


@pytest.fixture(scope="module")
def live(scorer):
    with LiveServer(scorer, max_pairs_per_request=8, max_wait_ms=2) as server:
        yield server


def test_sync_client_chunks_above_the_server_limit(live, scorer):
    hyps, refs = grpo_batch(3, group=10, seed=2)  # 30 pairs, server takes 8 per request
    before = live.state.batcher.stats.chunks
    with RewardClient(live.url) as client:
        scores = client.score(hyps, refs)
        rewards = client.rewards(hyps, refs)
        assert client.max_pairs_per_request == 8  # learned from /v1/info
    assert_rows_close(scores, scorer.score(hyps, refs))
    assert rewards == [-s["radcliq"] for s in scores]
    assert live.state.batcher.stats.chunks - before == 8  # 2 calls x 4 requests of <= 8 pairs


def test_async_client_matches_and_survives_new_event_loops(live, scorer):
    hyps, refs = grpo_batch(2, group=8, seed=4)
    client = AsyncRewardClient([live.url])

    async def once():
        return await client.score(hyps, refs)

    first = asyncio.run(once())
    second = asyncio.run(once())  # a new loop: the client makes a new httpx.AsyncClient
    assert_rows_close(first, scorer.score(hyps, refs))
    assert first == second


def test_sharding_across_replicas(scorer):
    hyps, refs = grpo_batch(4, group=8, seed=6)  # 32 pairs -> 4 chunks of 8 over 2 replicas
    with LiveServer(scorer, max_pairs_per_request=8) as a, LiveServer(scorer, max_pairs_per_request=8) as b:
        with RewardClient([a.url, b.url]) as client:
            assert_rows_close(client.score(hyps, refs), scorer.score(hyps, refs))
        assert a.state.batcher.stats.pairs == 16 and b.state.batcher.stats.pairs == 16

        async def run_async():
            async with AsyncRewardClient([a.url, b.url]) as client:
                return await client.score(hyps, refs)

        assert_rows_close(asyncio.run(run_async()), scorer.score(hyps, refs))
        assert a.state.batcher.stats.pairs == b.state.batcher.stats.pairs == 32


def test_failover_to_a_live_replica(live, scorer):
    dead = f"http://127.0.0.1:{free_port()}"
    hyps, refs = grpo_batch(1, group=8)
    with RewardClient([dead, live.url], retry_budget_s=10, backoff_initial_s=0.01) as client:
        for _ in range(3):  # whichever replica a call starts on, it ends on the live one
            assert_rows_close(client.score(hyps, refs), scorer.score(hyps, refs))


def test_outage_past_the_budget_raises_unavailable():
    dead = f"http://127.0.0.1:{free_port()}"
    start = time.monotonic()
    client = RewardClient(dead, retry_budget_s=1.0, backoff_initial_s=0.05, max_pairs_per_request=8)
    with client, pytest.raises(RewardServerUnavailable, match="within the retry budget") as info:
        client.score(["a"], ["b"])
    assert 1.0 <= time.monotonic() - start < 5
    assert "ConnectError" in str(info.value)

    async def run_async():
        client = AsyncRewardClient(dead, retry_budget_s=0.5, backoff_initial_s=0.05, max_pairs_per_request=8)
        await client.score(["a"], ["b"])

    with pytest.raises(RewardServerUnavailable):
        asyncio.run(run_async())


def test_4xx_is_not_retried(scorer):
    with LiveServer(scorer, api_key="right") as server:
        with RewardClient(server.url, api_key="wrong", max_pairs_per_request=8) as client:
            start = time.monotonic()
            with pytest.raises(RewardRequestError, match="invalid API key") as info:
                client.score(["a"], ["b"])
            assert info.value.status == 401 and time.monotonic() - start < 1
        with RewardClient(server.url, api_key="right") as client:
            assert len(client.score(["a"], ["b"])) == 1


def test_scorer_errors_are_retried_then_raised(scorer):
    faulty = FaultyScorer(scorer, lambda groups: RuntimeError("injected"))
    with (
        LiveServer(faulty, max_wait_ms=0) as server,
        RewardClient(server.url, max_error_retries=2, backoff_initial_s=0.01) as client,
        pytest.raises(RewardScoringError, match="RuntimeError: injected") as info,
    ):
        client.score(["a"], ["b"])
    assert info.value.status == 500
    assert len(faulty.calls) == 3  # first try + 2 retries


def test_503_retry_after_is_honoured(scorer):
    gated = GatedScorer(scorer)
    hyps, refs = grpo_batch(1, group=8)
    server = LiveServer(
        gated, max_batch_pairs=8, max_pairs_per_request=8, max_queue_pairs=8, retry_after_s=1, max_wait_ms=0
    ).start()
    try:
        with RewardClient(server.url, backoff_initial_s=0.01, retry_budget_s=30) as client:
            client.info()
            background = [threading.Thread(target=client.score, args=(hyps, refs)) for _ in range(2)]
            background[0].start()
            assert gated.entered.wait(10)
            background[1].start()
            while server.state.batcher.queued_pairs < 8:
                time.sleep(0.01)
            threading.Timer(0.3, gated.gate.set).start()
            start = time.monotonic()
            scores = client.score(hyps, refs)  # 503 first, then waits Retry-After (1 s) and succeeds
            assert time.monotonic() - start >= 1.0
            for t in background:
                t.join()
    finally:
        gated.gate.set()
        server.stop()
    assert_rows_close(scores, scorer.score(hyps, refs))


@pytest.mark.slow
def test_kill_and_restart_mid_stream(tiny_model_dir, scorer):
    """SIGKILL the server while a client streams requests; a new server on the same port takes over."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    batches = [grpo_batch(1, group=8, seed=s) for s in range(24)]
    proc = spawn_server(tiny_model_dir, port)
    results: list = []
    finished: list[float] = []
    errors: list = []
    progress = threading.Event()

    def stream():
        try:
            with RewardClient(url, retry_budget_s=120, backoff_initial_s=0.1, backoff_max_s=1.0) as client:
                client.wait_until_ready(timeout=120)
                for i, (h, r) in enumerate(batches):
                    results.append(client.score(h, r))
                    finished.append(time.monotonic())
                    if i == 5:
                        progress.set()
                    time.sleep(0.02)
        except Exception as e:  # surfaced by the assertions below
            errors.append(e)
            progress.set()

    worker = threading.Thread(target=stream)
    worker.start()
    try:
        assert progress.wait(180), "client made no progress"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        killed_at = time.monotonic()
        time.sleep(0.5)
        proc = spawn_server(tiny_model_dir, port)
        worker.join(240)
    finally:
        proc.terminate()
        proc.wait(30)
    assert not errors, errors
    assert len(results) == len(batches)
    assert 6 <= sum(t < killed_at for t in finished) < len(batches), "the kill did not land mid-stream"
    for (h, r), got in zip(batches, results, strict=True):
        assert_rows_close(got, scorer.score(h, r))


def test_wait_until_ready_times_out_on_a_dead_server():
    dead = f"http://127.0.0.1:{free_port()}"
    with RewardClient(dead) as client, pytest.raises(RewardServerUnavailable, match="not ready after"):
        client.wait_until_ready(timeout=0.3, interval=0.1)


def test_bad_arguments():
    with pytest.raises(ValueError, match="at least one"):
        RewardClient([])
    with pytest.raises(ValueError, match="http://"):
        RewardClient("localhost:8000")
    with RewardClient("http://127.0.0.1:1", max_pairs_per_request=8) as client:
        with pytest.raises(ValueError, match="same length"):
            client.score(["a", "b"], ["c"])
        with pytest.raises(ValueError, match=r"hypotheses\[1\] must be a string"):
            client.score(["a", None], ["c", "d"])
        with pytest.raises(ValueError, match="not a single str"):
            client.score("abc", "abc")
        assert client.score([], []) == []


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_wait_until_ready_says_it_waits_and_gives_up_early_when_every_attempt_is_refused(kind):
    """Issue 18 case 9: nothing listening meant 300 s of silence; now progress, and an early, clear stop."""
    dead = f"http://127.0.0.1:{free_port()}"
    messages: list[str] = []
    wait = dict(
        timeout=30, interval=0.05, refused_give_up_s=0.6, progress=messages.append, progress_every_s=0.2
    )
    with pytest.raises(RewardServerUnavailable) as error:
        if kind == "sync":
            with RewardClient(dead) as client:
                client.wait_until_ready(**wait)
        else:
            asyncio.run(AsyncRewardClient(dead).wait_until_ready(**wait))
    assert str(error.value).startswith(f"nothing is listening at ['{dead}']: every attempt for")
    assert "was refused; check the URL and port, and that the reward server was started" in str(error.value)
    assert messages and messages[0].startswith(f"waiting for reward server(s) ['{dead}']: ")
    assert " of 30s (last: " in messages[0]


def test_drive_and_adrive_run_the_same_steps():
    """The one retry core: a Delay is a sleep, an error from the I/O is thrown into the steps, which retry or stop."""

    def steps(calls: int):
        for attempt in range(calls):
            try:
                return (yield attempt)
            except ArithmeticError:
                yield Delay(0.01)
        raise RewardServerUnavailable(f"gave up after {calls}")

    def failing(n: int):  # the "I/O": its first n attempts fail
        return lambda attempt: f"answer {attempt}" if attempt >= n else 1 // 0

    def later(io):
        async def awaitable_io(attempt):
            return io(attempt)

        return awaitable_io

    assert drive(steps(5), failing(0)) == asyncio.run(adrive(steps(5), later(failing(0)))) == "answer 0"
    start = time.monotonic()
    assert drive(steps(5), failing(2)) == "answer 2" and time.monotonic() - start >= 0.02
    assert asyncio.run(adrive(steps(5), later(failing(2)))) == "answer 2"
    with pytest.raises(RewardServerUnavailable, match="gave up after 2"):
        drive(steps(2), failing(2))
    with pytest.raises(KeyError):  # an error the steps do not catch propagates as it is
        asyncio.run(adrive(steps(2), later(lambda attempt: {}[attempt])))
