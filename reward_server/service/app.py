"""The RadCliQ reward service: FastAPI routes over a :class:`~reward_server.service.batcher.MicroBatcher`.

Routes::

    POST /v1/score      {"hypotheses": [...], "references": [...]} -> {"scores": [{radcliq, radgraph,
                        bertscore, semb, bleu2}, ...], "rewards": [-radcliq, ...]}   (request order)
    POST /v1/openrlhf   OpenRLHF --remote_rm_url: {"query", "prompts", "labels"} -> {"rewards", "scores",
                        "extra_logs"}; the completion is located by reward_server.completions (prompt end
                        found past expanded image placeholders, trailing EOS / end-of-turn texts stripped)
    GET  /health        the process serves HTTP
    GET  /ready         the scorer is loaded and the batcher takes work (503 while draining)
    GET  /metrics       Prometheus text format
    GET  /v1/info       versions, RadCliQ version, model files + sha256, device, server limits

Bodies are parsed here rather than by FastAPI so every malformed input (wrong content type, non-UTF-8,
bad JSON, wrong types, nulls, extra fields) gets a 4xx that names the problem, and scorer inputs can never
crash a batch that other requests share. That check (``_checked``: body model, then ``_check_texts``) is the only one a request
gets in this module: the batcher and scorer behind it are handed pairs already known to be good.

The routes live on the module-level ``router`` (``Depends(authorize)`` where a key is needed) and read the
app's one ``_State`` from ``app.state.rrg``; :func:`create_app` only assembles them.

OpenRLHF: ``--remote_rm_url http://HOST:PORT/v1/openrlhf`` (several URLs shard the batch), or the file
``reward_server/integrations/openrlhf.py``; verl: ``reward_server/integrations/verl.py``.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import math
import time
from collections.abc import Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, StrictStr, ValidationError

from reward_server.completions import CompletionExtractor, PromptNotFoundError
from reward_server.radcliq.composite import SCORE_KEYS, to_reward
from reward_server.radcliq.model_files import random_weights_fields
from reward_server.service.batcher import BatcherClosedError, MicroBatcher, QueueFullError, ScoringError
from reward_server.service.prometheus import ServerMetrics

logger = logging.getLogger(__name__)

_JSON_TYPES = ("application/json",)


# ---------------------------------------------------------------------- settings
@dataclass
class ServerSettings:
    """Batching, limits and safety switches; every field is a ``rrg-reward serve`` flag."""

    host: str = "127.0.0.1"
    port: int = 8000
    max_batch_pairs: int = 256
    max_wait_ms: float = 5.0
    max_pairs_per_request: int = 4096
    max_text_chars: int = 20_000
    max_queue_pairs: int = 65_536
    max_body_bytes: int = 64 * 1024 * 1024
    retry_after_s: int = 1
    api_key: str | None = field(default=None, repr=False)
    openrlhf_strip: tuple[str, ...] = ()  # stripped from OpenRLHF completions on top of the defaults
    policy_tokenizer: str | None = None  # its special tokens are stripped too
    timeout_graceful_shutdown_s: float = 60.0

    def validate(self) -> None:
        for name in (
            "max_batch_pairs",
            "max_pairs_per_request",
            "max_text_chars",
            "max_queue_pairs",
            "max_body_bytes",
            "retry_after_s",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {self.max_wait_ms}")
        if self.max_queue_pairs < max(self.max_pairs_per_request, self.max_batch_pairs):
            raise ValueError(
                f"max_queue_pairs ({self.max_queue_pairs}) must be >= max_pairs_per_request "
                f"({self.max_pairs_per_request}) and max_batch_pairs ({self.max_batch_pairs})"
            )
        if self.api_key is not None and not self.api_key:
            raise ValueError("api_key must not be empty (leave it unset to disable auth)")

    def limits(self) -> dict[str, int]:
        return {
            "max_pairs_per_request": self.max_pairs_per_request,
            "max_text_chars": self.max_text_chars,
            "max_queue_pairs": self.max_queue_pairs,
            "max_body_bytes": self.max_body_bytes,
        }

    def public(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("api_key")
        out["auth"] = self.api_key is not None
        out["openrlhf_strip"] = list(self.openrlhf_strip)
        return out


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals; any other name or address is treated as exposed."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(settings: ServerSettings) -> None:
    """Refuse to expose an unauthenticated scorer beyond this machine."""
    if not is_loopback(settings.host) and settings.api_key is None:
        raise ValueError(
            f"refusing to bind {settings.host!r} without authentication: a non-loopback host requires an API "
            f"key (--api-key-env VAR, with the key in that environment variable)"
        )


# ---------------------------------------------------------------------- request models
class ScoreRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    hypotheses: list[StrictStr]
    references: list[StrictStr]


class OpenRLHFRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    query: list[StrictStr]
    prompts: list[StrictStr]
    labels: list[StrictStr]


class ApiError(Exception):
    """An HTTP error with a message meant for the client (``{"detail": ...}``)."""

    def __init__(self, status: int, detail: str, kind: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind
        self.headers = headers

    def __reduce__(self):  # picklable with its fields: Ray carries it from a replica to a handle's caller
        return (type(self), (self.status, self.detail, self.kind, self.headers))


def _format_loc(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def _validation_detail(err: ValidationError) -> str:
    msgs = []
    for e in err.errors(include_url=False)[:10]:
        msgs.append(
            f"{_format_loc(e['loc'])}: {e['msg']} (got {type(e.get('input')).__name__})"
            if e["type"] not in ("missing", "extra_forbidden")
            else f"{_format_loc(e['loc'])}: {e['msg']}"
        )
    more = err.error_count() - len(msgs)
    return "invalid request: " + "; ".join(msgs) + (f"; and {more} more" if more > 0 else "")


async def _read_json(request: Request, max_bytes: int) -> Any:
    ctype = request.headers.get("content-type", "")
    media, _, params = ctype.partition(";")
    if media.strip().lower() not in _JSON_TYPES:
        raise ApiError(415, f"Content-Type must be application/json, got {ctype or 'none'!r}", "content_type")
    charset = params.strip().lower()
    if charset.startswith("charset=") and charset[len("charset=") :].strip('"') not in ("utf-8", "utf8"):
        raise ApiError(415, f"only UTF-8 JSON is accepted, got {charset!r}", "content_type")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(
            413, f"request body of {declared} bytes exceeds max_body_bytes={max_bytes}", "too_large"
        )
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > max_bytes:
            raise ApiError(413, f"request body exceeds max_body_bytes={max_bytes}", "too_large")
    if not body:
        raise ApiError(400, "request body is empty; expected a JSON object", "malformed")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ApiError(
            400, f"request body is not valid UTF-8 (bad byte at offset {e.start})", "encoding"
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ApiError(
            400, f"malformed JSON: {e.msg} at line {e.lineno} column {e.colno}", "malformed"
        ) from None
    except RecursionError:
        raise ApiError(400, "malformed JSON: nested too deeply", "malformed") from None


def _checked(model: type[BaseModel], body: Any, settings: ServerSettings) -> Any:
    """A request's one check: the body model's types, then ``_check_texts`` over all of its fields."""
    try:
        req = model.model_validate(body)
    except ValidationError as e:
        raise ApiError(422, _validation_detail(e), "validation") from None
    _check_texts(settings, {name: getattr(req, name) for name in model.model_fields})
    return req


def _check_texts(settings: ServerSettings, named: dict[str, list[str]]) -> None:
    """Same lengths, within the limits, encodable: a bad text must never reach a shared batch."""
    lengths = {name: len(seq) for name, seq in named.items()}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{k}={v}" for k, v in lengths.items())
        raise ApiError(422, f"fields must have the same length, got {shown}", "validation")
    n = next(iter(lengths.values()))
    if n > settings.max_pairs_per_request:
        raise ApiError(
            413,
            f"{n} pairs exceed max_pairs_per_request={settings.max_pairs_per_request}; "
            f"split the request (the clients do this automatically)",
            "too_large",
        )
    for name, seq in named.items():
        for i, text in enumerate(seq):
            if len(text) > settings.max_text_chars:
                raise ApiError(
                    413,
                    f"{name}[{i}] has {len(text)} characters, above max_text_chars={settings.max_text_chars}",
                    "too_large",
                )
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as e:
                raise ApiError(
                    422, f"{name}[{i}] contains an unpaired surrogate at position {e.start}", "validation"
                ) from None


def _finite(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _rows_out(rows: list[dict[str, Any]]) -> tuple[list[dict[str, float | None]], list[float | None]]:
    scores = [{k: _finite(row[k]) for k in SCORE_KEYS} for row in rows]
    rewards = [to_reward(s["radcliq"]) for s in scores]
    return scores, rewards


# ---------------------------------------------------------------------- app
class _State:
    def __init__(self, scorer: Any, settings: ServerSettings, metrics: ServerMetrics):
        self.scorer = scorer
        self.settings = settings
        self.metrics = metrics
        self.batcher = MicroBatcher(
            scorer,
            max_batch_pairs=settings.max_batch_pairs,
            max_wait_ms=settings.max_wait_ms,
            max_queue_pairs=settings.max_queue_pairs,
            retry_after_s=settings.retry_after_s,
            observer=metrics,
        )
        self.extractor = CompletionExtractor.build(settings.openrlhf_strip, settings.policy_tokenizer)
        self.started_at = time.time()

    @property
    def ready(self) -> bool:
        return self.batcher.running

    async def run_batch(self, hyps: list[str], refs: list[str], route: str) -> list[dict[str, Any]]:
        """Score pairs already ``_checked`` through the batcher; its and the scorer's errors become the HTTP
        answer."""
        self.metrics.pairs.labels(route).inc(len(hyps))
        try:
            return await self.batcher.score(hyps, refs)
        except QueueFullError as e:
            raise ApiError(
                503, str(e), "queue_full", {"Retry-After": str(math.ceil(e.retry_after))}
            ) from None
        except BatcherClosedError as e:
            raise ApiError(
                503, str(e), "unavailable", {"Retry-After": str(self.settings.retry_after_s)}
            ) from None
        except ScoringError as e:
            raise ApiError(500, str(e), "scorer") from None

    async def score_request(self, body: Any, route: str) -> list[dict[str, Any]]:
        """``/v1/score`` after reading the JSON body (also the Ray handle's path): checks, batcher, raw rows."""
        req = _checked(ScoreRequest, body, self.settings)
        return await self.run_batch(req.hypotheses, req.references, route)


def _state(request: Request) -> _State:
    return request.app.state.rrg


async def authorize(request: Request) -> None:
    """The bearer-token check of every route but ``/health`` and ``/ready`` (a no-op without an API key)."""
    api_key = _state(request).settings.api_key
    if api_key is None:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(
            401,
            "missing bearer token: send 'Authorization: Bearer <key>'",
            "auth",
            {"WWW-Authenticate": "Bearer"},
        )
    if not hmac.compare_digest(token.strip().encode(), api_key.encode()):
        raise ApiError(401, "invalid API key", "auth", {"WWW-Authenticate": 'Bearer error="invalid_token"'})


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    _state(request).metrics.errors.labels(exc.kind).inc()
    return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=exc.headers)


class _Timing:
    """ASGI middleware: count and time the scoring routes by final status (401s, 4xx and 5xx included).

    The route is the one the router matched (``scope["route"]``), so a ``root_path`` such as a Ray Serve
    route prefix changes nothing, and unknown paths add no label values."""

    def __init__(self, app: Any, metrics: ServerMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), 500

        async def send_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None)
            if route in _TIMED_ROUTES:
                self.metrics.requests.labels(route, str(status)).inc()
                self.metrics.request_latency.labels(route).observe(time.perf_counter() - start)


@asynccontextmanager
async def _lifespan(app: FastAPI):
    state: _State = app.state.rrg
    await state.batcher.start()
    state.metrics.ready.set(1)
    random = bool(getattr(state.scorer, "random_weights", False))  # make-tiny kit: say so where it shows
    ready = {**state.settings.public(), **random_weights_fields(random)}
    logger.log(logging.WARNING if random else logging.INFO, "reward server ready: %s", ready)
    try:
        yield
    finally:
        # uvicorn has stopped accepting connections and waited for in-flight requests; finish the rest.
        state.metrics.ready.set(0)
        await state.batcher.close(drain=True)


def _body_doc(model: type[BaseModel]) -> dict:
    """OpenAPI for a body read by hand (see the module docstring), so /docs still shows its schema."""
    schema = {"application/json": {"schema": model.model_json_schema()}}
    return {"requestBody": {"required": True, "content": schema}}


router = APIRouter()
_TIMED_ROUTES = ("/v1/score", "/v1/openrlhf")
_AUTH = [Depends(authorize)]


@router.post("/v1/score", openapi_extra=_body_doc(ScoreRequest), dependencies=_AUTH)
async def score(request: Request) -> Response:
    """RadCliQ and its components per pair, plus rewards = -RadCliQ, in request order."""
    state = _state(request)
    rows = await state.score_request(await _read_json(request, state.settings.max_body_bytes), "/v1/score")
    scores, rewards = _rows_out(rows)
    return JSONResponse({"scores": scores, "rewards": rewards})


@router.post("/v1/openrlhf", openapi_extra=_body_doc(OpenRLHFRequest), dependencies=_AUTH)
async def openrlhf(request: Request) -> Response:
    """OpenRLHF ``--remote_rm_url`` protocol; ``labels`` are the reference reports."""
    state = _state(request)
    req = _checked(OpenRLHFRequest, await _read_json(request, state.settings.max_body_bytes), state.settings)
    try:
        completions = state.extractor.completions(req.query, req.prompts)
    except PromptNotFoundError as e:
        raise ApiError(422, str(e), "validation") from None
    scores, rewards = _rows_out(await state.run_batch(completions, req.labels, "/v1/openrlhf"))
    extra_logs = {k: [s[k] for s in scores] for k in SCORE_KEYS}
    return JSONResponse({"rewards": rewards, "scores": rewards, "extra_logs": extra_logs})


@router.get("/health")
async def health() -> dict:
    """Liveness: the process answers HTTP."""
    return {"status": "ok"}


@router.get("/ready")
async def ready(request: Request) -> Response:
    """Readiness: the scorer is loaded and the batcher accepts work."""
    state = _state(request)
    if state.ready:
        return JSONResponse({"ready": True, "queued_pairs": state.batcher.queued_pairs})
    return JSONResponse(
        {"ready": False, "detail": "not accepting work (starting or shutting down)"},
        status_code=503,
        headers={"Retry-After": str(state.settings.retry_after_s)},
    )


@router.get("/metrics", dependencies=_AUTH)
async def metrics(request: Request) -> Response:
    body, ctype = _state(request).metrics.render()
    return Response(body, media_type=ctype)


@router.get("/v1/info", dependencies=_AUTH)
async def info(request: Request) -> Response:
    """Scorer versions, model files and checksums, device; server limits (clients chunk by them)."""
    state = _state(request)
    server = {
        **state.settings.public(),
        "limits": state.settings.limits(),
        "openrlhf": state.extractor.info(),
        "ready": state.ready,
        "uptime_s": round(time.time() - state.started_at, 3),
        "batcher": state.batcher.stats.as_dict(),
    }
    return JSONResponse({"scorer": state.scorer.info(), "server": server})


def create_app(
    scorer: Any, settings: ServerSettings | None = None, metrics: ServerMetrics | None = None
) -> FastAPI:
    """The reward service around a loaded scorer (``RadCliQScorer`` or anything with its methods); its
    state (scorer, settings, batcher, metrics) is ``app.state.rrg``, which the module's routes read."""
    settings = settings or ServerSettings()
    settings.validate()
    app = FastAPI(title="rrg-reward", summary="Batched RadCliQ reward service", lifespan=_lifespan)
    app.state.rrg = _State(scorer, settings, metrics or ServerMetrics())
    app.add_exception_handler(ApiError, _api_error)
    app.add_middleware(_Timing, metrics=app.state.rrg.metrics)
    app.include_router(router)
    return app


def serve(scorer: Any, settings: ServerSettings, log_level: str = "info") -> None:
    """Run the service with uvicorn until SIGINT/SIGTERM, finishing queued work before exiting."""
    import uvicorn

    check_bind(settings)
    app = create_app(scorer, settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        timeout_graceful_shutdown=settings.timeout_graceful_shutdown_s,
        # One process per scorer: a second worker would load a second copy of the models.
        workers=1,
    )
    uvicorn.Server(config).run()
