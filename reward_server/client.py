"""Clients of the reward server: :class:`RewardClient` (sync) and :class:`AsyncRewardClient`.

Both chunk a call above the server's ``max_pairs_per_request`` (read once from ``/v1/info``), shard the
chunks across replica URLs, and retry connection errors and 5xx/503 with exponential backoff (honouring
``Retry-After``, failing over to the next replica) inside one total time budget per call. After the budget
they raise :class:`RewardServerUnavailable`; a server that answers but keeps failing (5xx past
``max_error_retries``) raises :class:`RewardScoringError`; a 4xx (our request is wrong) raises
:class:`RewardRequestError` at once. This module imports neither torch nor the scorer.

That logic is written once, without I/O (``_Base._request_steps`` / ``_ready_steps``), and run by :func:`drive`
(blocking) or :func:`adrive` (asyncio); reward_server/ray.py's handle clients run their retries the same way.

    from reward_server.client import RewardClient
    with RewardClient(["http://gpu0:8000", "http://gpu1:8000"], api_key=...) as client:
        client.wait_until_ready(timeout=300)
        rewards = client.rewards(hypotheses, references)     # -RadCliQ per pair
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import threading
import time
from collections.abc import Awaitable, Callable, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

FALLBACK_MAX_PAIRS = 512  # used when a server does not publish its limit
_UNAVAILABLE_STATUS = frozenset({408, 429, 502, 503, 504})


class RewardServerError(RuntimeError):
    """The reward server could not score a request."""

    def __init__(self, message: str, status: int | None = None, detail: str | None = None):
        super().__init__(message)
        self.status = status
        self.detail = detail
        self.offset = 0  # index of the call's first pair in the request that failed (the client chunks calls)


class RewardRequestError(RewardServerError):
    """The server rejected the request (4xx): retrying the same request cannot help."""


class RewardScoringError(RewardServerError):
    """The server answered with an error (5xx) past the retries: the scorer failed on this batch."""


class RewardServerUnavailable(RewardServerError):
    """No replica answered (connection errors, timeouts, 503) within the retry budget."""


def scorer_random_weights(info: dict) -> bool:
    """Whether a server's ``/v1/info`` says its scorer models are the random tiny kit (``rrg-reward make-tiny``)."""
    return bool((info.get("scorer") or {}).get("random_weights", False))


def _check_pairs(hypotheses: Sequence[str], references: Sequence[str]) -> None:
    for name, seq in (("hypotheses", hypotheses), ("references", references)):
        if isinstance(seq, str | bytes):
            raise ValueError(f"{name} must be a list of strings, not a single {type(seq).__name__}")
        for i, text in enumerate(seq):
            if not isinstance(text, str):
                raise ValueError(f"{name}[{i}] must be a string, got {type(text).__name__}")
    if len(hypotheses) != len(references):
        raise ValueError(
            f"hypotheses and references must have the same length, got {len(hypotheses)} and {len(references)}"
        )


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    return str(body.get("detail", body)) if isinstance(body, dict) else str(body)[:500]


def _retry_after(response: httpx.Response | None) -> float:
    if response is None:
        return 0.0
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return 0.0  # HTTP-date form: fall back to our own backoff


def _refused(error: BaseException | None) -> bool:
    """Whether a connection error is "connection refused" (sync httpx says so; async wraps it in its cause)."""
    seen = 0
    while error is not None and seen < 8:
        if isinstance(error, ConnectionRefusedError) or "refused" in str(error).lower():
            return True
        error, seen = error.__cause__ or error.__context__, seen + 1
    return False


def _advance(steps: Generator, outcome: Any) -> tuple[bool, Any]:
    """Send ``outcome`` into ``steps`` (thrown in, if it is an exception): ``(False, next step)`` or ``(True, result)``."""
    try:
        return False, (steps.throw(outcome) if isinstance(outcome, Exception) else steps.send(outcome))
    except StopIteration as done:
        return True, done.value


class Delay(float):
    """Seconds that the steps ask their driver to sleep (anything else they yield is I/O)."""


def _outcome_of(perform: Callable[[Any], Any], step: Any) -> Any:
    try:
        return perform(step)
    except Exception as e:  # thrown into the steps, which decide (retry, or let it propagate)
        return e


def drive(steps: Generator, perform: Callable[[Any], Any]) -> Any:
    """Run a client's I/O-free ``steps`` with blocking I/O and return their result.

    The retry, failover and readiness logic is written once, as generators that yield what to do: a :class:`Delay`
    is slept, anything else goes to ``perform`` (an HTTP request, a Ray handle call) whose result is
    sent back in, or whose exception is thrown in. :func:`adrive` runs the same steps under asyncio.
    """
    done, step = _advance(steps, None)
    while not done:
        done, step = _advance(steps, _outcome_of(time.sleep if isinstance(step, Delay) else perform, step))
    return step


async def adrive(steps: Generator, perform: Callable[[Any], Awaitable]) -> Any:
    """:func:`drive` under asyncio: ``perform`` returns an awaitable and delays are ``asyncio.sleep``."""
    done, step = _advance(steps, None)
    while not done:
        try:
            outcome = await (asyncio.sleep(step) if isinstance(step, Delay) else perform(step))
        except Exception as e:
            outcome = e
        done, step = _advance(steps, outcome)
    return step


class _Base:
    """Configuration, chunk planning and the retry policy shared by both clients."""

    def __init__(
        self,
        urls: str | Sequence[str],
        api_key: str | None = None,
        timeout: float = 120.0,
        connect_timeout: float = 5.0,
        retry_budget_s: float = 300.0,
        max_error_retries: int = 2,
        backoff_initial_s: float = 0.25,
        backoff_max_s: float = 10.0,
        max_pairs_per_request: int | None = None,
    ):
        urls = [urls] if isinstance(urls, str) else list(urls)
        if not urls:
            raise ValueError("at least one reward server URL is required")
        self.urls = [u.rstrip("/") for u in urls]
        for u in self.urls:
            if not u.startswith(("http://", "https://")):
                raise ValueError(f"reward server URL must start with http:// or https://, got {u!r}")
        self.api_key = api_key
        self.timeout = httpx.Timeout(timeout, connect=connect_timeout)
        self.retry_budget_s = retry_budget_s
        self.max_error_retries = max_error_retries
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.max_pairs_per_request = max_pairs_per_request
        self.random_weights: bool | None = None  # the server's scorer is the random tiny kit (from /v1/info)
        self._rr = itertools.count()
        self._lock = threading.Lock()

    @property
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def _plan(self, n: int, max_pairs: int) -> list[tuple[int, int, int]]:
        """``(start, stop, replica)`` chunks: at most ``max_pairs`` each, spread evenly over the replicas."""
        if n == 0:
            return []
        size = min(max_pairs, math.ceil(n / len(self.urls)))
        with self._lock:
            first = next(self._rr)
        return [(s, min(s + size, n), (first + i) % len(self.urls)) for i, s in enumerate(range(0, n, size))]

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        backoff = min(self.backoff_max_s, self.backoff_initial_s * 2 ** (attempt - 1))
        return max(backoff * (0.5 + random.random() / 2), _retry_after(response))

    def _judge(self, response: httpx.Response, url: str) -> str:
        """'ok', 'unavailable' or 'error' (both retried); raises RewardRequestError for a 4xx."""
        if response.status_code == 200:
            return "ok"
        if response.status_code in _UNAVAILABLE_STATUS:
            return "unavailable"
        if response.status_code >= 500:
            return "error"
        detail = _detail(response)
        raise RewardRequestError(
            f"{url} rejected the request ({response.status_code}): {detail}", response.status_code, detail
        )

    def _give_up(
        self,
        kind: str,
        url: str,
        attempts: int,
        elapsed: float,
        last: str,
        status: int | None,
        detail: str | None,
    ) -> RewardServerError:
        if kind == "error":
            return RewardScoringError(
                f"reward server {url} failed after {attempts} attempts: {last}", status, detail
            )
        return RewardServerUnavailable(
            f"reward server unavailable: no answer from {self.urls} within the retry budget "
            f"({elapsed:.1f}s of {self.retry_budget_s:g}s, {attempts} attempts); last error: {last}",
            status,
            detail,
        )

    @staticmethod
    def _parse_scores(response: httpx.Response, n: int, url: str) -> tuple[list[dict], list[float | None]]:
        try:
            body = response.json()
            scores, rewards = body["scores"], body["rewards"]
        except (ValueError, KeyError, TypeError):
            raise RewardServerError(f"{url} returned a malformed response: {response.text[:200]!r}") from None
        if len(scores) != n or len(rewards) != n:
            raise RewardServerError(f"{url} returned {len(scores)} scores for {n} pairs")
        return scores, rewards

    def _limit_from_info(self, info: dict) -> int:
        self.random_weights = scorer_random_weights(info)
        limit = (info.get("server") or {}).get("limits", {}).get("max_pairs_per_request")
        return int(limit) if isinstance(limit, int) and limit > 0 else FALLBACK_MAX_PAIRS

    # The logic of each call, written once without I/O (run by drive / adrive; see drive).

    def _request_steps(self, method: str, path: str, replica: int, json: Any = None) -> Generator:
        """One call with retries; a retry goes to the next replica. Returns the 200 response and its URL."""
        start, attempts, errors = time.monotonic(), 0, 0  # errors: the 5xx answers so far
        while True:
            url = self.urls[(replica + attempts) % len(self.urls)]
            attempts += 1
            try:
                response = yield method, url + path, json
            except httpx.TransportError as e:
                response, kind, last = None, "unavailable", f"{type(e).__name__}: {e}"
            else:
                kind = self._judge(response, url)
                if kind == "ok":
                    return response, url
                last = f"HTTP {response.status_code}: {_detail(response)}"
            errors += kind == "error"
            elapsed = time.monotonic() - start
            if elapsed >= self.retry_budget_s or (kind == "error" and errors > self.max_error_retries):
                detail = _detail(response) if response is not None else None
                status = response.status_code if response is not None else None
                raise self._give_up(kind, url, attempts, elapsed, last, status, detail)
            yield Delay(min(self._delay(attempts, response), self.retry_budget_s - elapsed))

    def _chunk_steps(self, hypotheses: Sequence[str], references: Sequence[str], chunk: tuple) -> Generator:
        """Score one ``(start, stop, replica)`` chunk of a call; returns its ``(scores, rewards)``."""
        s, e, replica = chunk
        payload = {"hypotheses": list(hypotheses[s:e]), "references": list(references[s:e])}
        try:
            response, url = yield from self._request_steps("POST", "/v1/score", replica, payload)
        except RewardRequestError as error:
            error.offset = s  # so "references[i]" in the detail can be mapped back to the caller's pair
            raise
        return self._parse_scores(response, e - s, url)

    def _ready_steps(
        self, timeout: float, interval: float, refused_give_up_s=None, progress=None, progress_every_s=10.0
    ) -> Generator:
        """Until every replica answers ``GET /ready`` with 200, or raise RewardServerUnavailable after ``timeout``.

        ``refused_give_up_s``: give up that early when every attempt so far was "connection refused" (nothing
        listens there: a wrong port, or a server that was never started); ``progress(message)`` is called every
        ``progress_every_s`` while waiting, so a long wait is never silent.
        """
        pending, last, refused_only = list(self.urls), {}, True
        start = reported = time.monotonic()
        while True:
            for url in list(pending):
                try:
                    response = yield "GET", url + "/ready", None
                except httpx.TransportError as e:
                    last[url] = f"{type(e).__name__}: {e}"
                    refused_only &= isinstance(e, httpx.ConnectError) and _refused(e)
                    continue
                if response.status_code == 200:
                    pending.remove(url)
                else:
                    last[url], refused_only = f"HTTP {response.status_code}: {_detail(response)}", False
            waited = time.monotonic() - start
            if not pending:
                return
            if waited >= timeout:
                raise RewardServerUnavailable(f"reward server(s) not ready after {timeout:g}s: {last}")
            if refused_only and refused_give_up_s is not None and waited >= refused_give_up_s:
                raise RewardServerUnavailable(
                    f"nothing is listening at {pending}: every attempt for {waited:.0f}s was refused; check the "
                    f"URL and port, and that the reward server was started (last: {last})"
                )
            if progress is not None and time.monotonic() - reported >= progress_every_s:
                reported = time.monotonic()
                progress(
                    f"waiting for reward server(s) {pending}: {waited:.0f}s of {timeout:g}s (last: {last})"
                )
            yield Delay(interval)

    def _chunks(
        self, hypotheses: Sequence[str], references: Sequence[str], max_pairs: int
    ) -> list[Generator]:
        return [self._chunk_steps(hypotheses, references, c) for c in self._plan(len(hypotheses), max_pairs)]

    @staticmethod
    def _joined(parts: Sequence[tuple[list[dict], list]]) -> tuple[list[dict], list]:
        return [s for p in parts for s in p[0]], [r for p in parts for r in p[1]]


class RewardClient(_Base):
    """Synchronous client (one ``httpx.Client``; chunks go to replicas in parallel threads)."""

    def __init__(self, urls: str | Sequence[str], **kwargs: Any):
        super().__init__(urls, **kwargs)
        self._client = httpx.Client(timeout=self.timeout, headers=self._headers)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> RewardClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _send(self, step: tuple[str, str, Any]) -> httpx.Response:
        method, url, json = step
        return self._client.request(method, url, json=json)

    def info(self, replica: int = 0) -> dict:
        response, _ = drive(self._request_steps("GET", "/v1/info", replica), self._send)
        return response.json()

    def _max_pairs(self) -> int:
        if self.max_pairs_per_request is None:
            self.max_pairs_per_request = self._limit_from_info(self.info())
        return self.max_pairs_per_request

    def _score(self, hypotheses: Sequence[str], references: Sequence[str]) -> tuple[list[dict], list]:
        _check_pairs(hypotheses, references)
        chunks = self._chunks(hypotheses, references, self._max_pairs() if hypotheses else 1)
        if len(chunks) <= 1:
            return self._joined([drive(c, self._send) for c in chunks])
        with ThreadPoolExecutor(max_workers=min(len(chunks), 4 * len(self.urls))) as pool:
            return self._joined(list(pool.map(lambda c: drive(c, self._send), chunks)))

    def score(self, hypotheses: Sequence[str], references: Sequence[str]) -> list[dict]:
        """One dict per pair: radcliq (lower is better), radgraph, bertscore, semb, bleu2."""
        return self._score(hypotheses, references)[0]

    def rewards(self, hypotheses: Sequence[str], references: Sequence[str]) -> list[float | None]:
        """-RadCliQ per pair (higher is better)."""
        return self._score(hypotheses, references)[1]

    def wait_until_ready(self, timeout: float = 300.0, interval: float = 0.5, **options: Any) -> None:
        """Block until every replica answers ``GET /ready`` with 200, or raise RewardServerUnavailable;
        ``options``: ``refused_give_up_s``, ``progress``, ``progress_every_s`` (see ``_Base._ready_steps``)."""
        drive(self._ready_steps(timeout, interval, **options), self._send)


class AsyncRewardClient(_Base):
    """Asyncio client. Its ``httpx.AsyncClient`` is created in the loop that first uses it (and again if
    a later call runs in another loop, as TRL's reward loop thread or successive ``asyncio.run`` do)."""

    def __init__(self, urls: str | Sequence[str], **kwargs: Any):
        super().__init__(urls, **kwargs)
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._max_pairs_lock: asyncio.Lock | None = None

    def _http(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = httpx.AsyncClient(timeout=self.timeout, headers=self._headers)
            self._loop = loop
            self._max_pairs_lock = asyncio.Lock()
        return self._client

    async def aclose(self) -> None:
        if self._client is not None and self._loop is asyncio.get_running_loop():
            await self._client.aclose()
        self._client = None

    async def __aenter__(self) -> AsyncRewardClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    def _send(self, step: tuple[str, str, Any]) -> Awaitable[httpx.Response]:
        method, url, json = step
        return self._http().request(method, url, json=json)

    async def info(self, replica: int = 0) -> dict:
        response, _ = await adrive(self._request_steps("GET", "/v1/info", replica), self._send)
        return response.json()

    async def _max_pairs(self) -> int:
        if self.max_pairs_per_request is None:
            self._http()
            async with self._max_pairs_lock:
                if self.max_pairs_per_request is None:
                    self.max_pairs_per_request = self._limit_from_info(await self.info())
        return self.max_pairs_per_request

    async def _score(self, hypotheses: Sequence[str], references: Sequence[str]) -> tuple[list[dict], list]:
        _check_pairs(hypotheses, references)
        chunks = self._chunks(hypotheses, references, await self._max_pairs() if hypotheses else 1)
        return self._joined(await asyncio.gather(*(adrive(c, self._send) for c in chunks)))

    async def score(self, hypotheses: Sequence[str], references: Sequence[str]) -> list[dict]:
        """One dict per pair: radcliq (lower is better), radgraph, bertscore, semb, bleu2."""
        return (await self._score(hypotheses, references))[0]

    async def rewards(self, hypotheses: Sequence[str], references: Sequence[str]) -> list[float | None]:
        """-RadCliQ per pair (higher is better)."""
        return (await self._score(hypotheses, references))[1]

    async def wait_until_ready(self, timeout: float = 300.0, interval: float = 0.5, **options: Any) -> None:
        """Wait until every replica answers ``GET /ready`` with 200 (options as :meth:`RewardClient.wait_until_ready`)."""
        await adrive(self._ready_steps(timeout, interval, **options), self._send)
