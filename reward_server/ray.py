"""The reward service on Ray Serve: the same FastAPI app on N replicas, and a handle for in-cluster callers.

One ``rrg-reward serve`` is one process on one GPU. Ray Serve places replicas on GPUs across nodes, restarts a
dead or unhealthy replica, autoscales on queue length and puts one HTTP address in front of them all::

    rrg-reward serve --ray --model-dir DIR --num-replicas 4 --num-gpus-per-replica 1   # local Ray cluster
    rrg-reward serve --ray --ray-address HEAD:6379 ...                                 # join a running one

Each replica runs :func:`reward_server.service.app.create_app` (``serve.ingress`` on the app built in the replica,
so routes, JSON contracts and micro-batching are the plain server's) and answers ``check_health`` by scoring a
fresh canary pair, so a replica whose scorer is broken is replaced. Code inside the same Ray cluster (a
trainer's reward function, an OpenRLHF / verl worker) skips HTTP::

    from reward_server.ray import get_scorer_handle
    rows = await get_scorer_handle().score.remote(hypotheses, references)   # == RadCliQScorer.score rows

or, with the HTTP clients' retries and errors, :class:`AsyncRayRewardClient` / :class:`RayRewardClient`;
:func:`reward_client` picks the handle when ``RRG_REWARD_RAY=1`` and HTTP otherwise. Ray is imported lazily:
this module loads without the ``ray`` extra; only its functions need it. Serve's own app builder for
``serve run`` / KubeRay ``RayService``: ``import_path: reward_server.ray:app_builder`` (see :func:`app_builder`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from reward_server.client import (
    Delay,
    RewardRequestError,
    RewardScoringError,
    RewardServerError,
    RewardServerUnavailable,
    _check_pairs,
    adrive,
    drive,
    scorer_random_weights,
)
from reward_server.env import ENV_VARS, parse_flag
from reward_server.service.app import ApiError, ServerSettings, _rows_out, _State, check_bind, create_app

logger = logging.getLogger(__name__)

APP_NAME = "rrg-reward"
DEPLOYMENT_NAME = "RadCliQReward"
ENV_USE_RAY = ENV_VARS["ray"]  # 1: reward clients call the Ray handle instead of HTTP
ENV_APP_NAME = ENV_VARS["ray_app"]  # the Serve application's name (default rrg-reward)
_CANARY_REFERENCE = "No acute cardiopulmonary abnormality."


# ---------------------------------------------------------------------- configuration
@dataclass
class RayServeConfig:
    """Replicas, resources and health checks of the deployment; every field is an ``rrg-reward serve`` flag.

    ``scorer``: keyword arguments of ``RadCliQScorer.from_pretrained`` (``model_dir`` at least), applied in
    each replica. ``min_replicas``/``max_replicas`` switch from a fixed ``num_replicas`` to autoscaling on
    ``target_ongoing_requests`` per replica.
    """

    scorer: dict[str, Any]
    settings: ServerSettings = field(default_factory=ServerSettings)
    app_name: str = APP_NAME
    num_replicas: int = 1
    min_replicas: int | None = None
    max_replicas: int | None = None
    target_ongoing_requests: float = 64.0
    max_ongoing_requests: int = 1024
    num_gpus_per_replica: float = 0.0
    num_cpus_per_replica: float = 1.0
    health_check_period_s: float = 10.0
    health_check_timeout_s: float = 30.0
    log_level: str = "info"  # the replicas' (and Serve's access log, at info)

    def validate(self) -> None:
        self.settings.validate()
        if not self.scorer.get("model_dir"):
            raise ValueError("scorer settings need model_dir")
        if self.num_replicas < 1:
            raise ValueError(f"num_replicas must be >= 1, got {self.num_replicas}")
        if (self.min_replicas is None) != (self.max_replicas is None):
            raise ValueError("autoscaling needs both min_replicas and max_replicas")
        if self.min_replicas is not None and not 0 <= self.min_replicas <= self.max_replicas:
            raise ValueError(
                f"need 0 <= min_replicas <= max_replicas (and max >= 1), got {self.min_replicas}, "
                f"{self.max_replicas}"
            )
        if self.max_replicas is not None and self.max_replicas < 1:
            raise ValueError(f"max_replicas must be >= 1, got {self.max_replicas}")
        for name in ("num_gpus_per_replica", "num_cpus_per_replica"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("target_ongoing_requests", "max_ongoing_requests", "health_check_period_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.health_check_timeout_s <= 1:
            raise ValueError(f"health_check_timeout_s must be > 1, got {self.health_check_timeout_s}")

    def deployment_options(self) -> dict[str, Any]:
        """Keyword arguments of ``serve.deployment`` (``ray_actor_options`` places replicas on GPUs)."""
        options: dict[str, Any] = {
            "name": DEPLOYMENT_NAME,
            # Ray's default (5) would hold requests back in Ray's router; the micro-batcher wants them all.
            "max_ongoing_requests": self.max_ongoing_requests,
            "ray_actor_options": {
                "num_cpus": self.num_cpus_per_replica,
                "num_gpus": self.num_gpus_per_replica,
            },
            "health_check_period_s": self.health_check_period_s,
            "health_check_timeout_s": self.health_check_timeout_s,
            "logging_config": {"log_level": self.log_level.upper()},
        }
        if self.min_replicas is None:
            options["num_replicas"] = self.num_replicas
        else:
            options["autoscaling_config"] = {
                "min_replicas": self.min_replicas,
                "initial_replicas": max(self.min_replicas, 1),
                "max_replicas": self.max_replicas,
                "target_ongoing_requests": self.target_ongoing_requests,
            }
        return options


# ---------------------------------------------------------------------- replica
class ReplicaHealth:
    """Ray Serve's ``check_health`` for one replica: raising makes Serve replace the replica.

    Busy replicas that finished a good batch since the last check are healthy; otherwise a canary pair with a
    fresh hypothesis (so the feature cache cannot answer for the encoders) goes through the batcher and must
    come back finite within ``timeout_s``.
    """

    def __init__(self, state: _State, timeout_s: float):
        self.state = state
        self.timeout_s = timeout_s
        self.checks = 0
        self._seen = (0, 0)  # (batches, failed batches) at the last check

    async def check(self) -> None:
        batcher = self.state.batcher
        if not self.state.ready:
            raise RuntimeError("the reward batcher is not running")
        stats = batcher.stats
        done, failed = stats.batches - self._seen[0], stats.failed_batches - self._seen[1]
        self._seen = (stats.batches, stats.failed_batches)
        if batcher.queued_pairs and done > failed:
            return
        self.checks += 1
        hypothesis = f"Health check {self.checks}: no acute cardiopulmonary abnormality."
        try:
            rows = await asyncio.wait_for(batcher.score([hypothesis], [_CANARY_REFERENCE]), self.timeout_s)
        except TimeoutError:
            raise RuntimeError(f"the scorer did not score a canary pair within {self.timeout_s:g}s") from None
        except Exception as e:
            raise RuntimeError(f"the scorer is broken: a canary pair failed: {e}") from e
        if not all(math.isfinite(v) for v in rows[0].values()):
            raise RuntimeError(f"the scorer is broken: a canary pair scored {rows[0]}")


def build_app(config: RayServeConfig):
    """The bound Serve application: ``serve.run(build_app(config), route_prefix="/")`` deploys it."""
    from ray import serve

    config.validate()
    scorer_kwargs, settings = dict(config.scorer), config.settings
    canary_timeout_s = 0.8 * config.health_check_timeout_s

    def replica_app():  # runs in each replica: its own scorer, batcher and metrics
        from reward_server import RadCliQScorer

        return create_app(RadCliQScorer.from_pretrained(**scorer_kwargs), settings)

    @serve.ingress(replica_app)
    class RadCliQReward:
        """``/v1/score`` and the other routes over HTTP; ``score`` for handles; ``check_health`` for Serve."""

        async def score(self, hypotheses: Sequence[str], references: Sequence[str]) -> list[dict[str, float]]:
            """``RadCliQScorer.score`` rows, through this replica's batcher; bad input raises ``ApiError``."""
            body = {"hypotheses": _as_list(hypotheses), "references": _as_list(references)}
            return await self.app.state.rrg.score_request(body, "ray-handle")

        async def info(self) -> dict[str, Any]:
            """``{"scorer": RadCliQScorer.info()}`` of this replica (as under ``GET /v1/info``)."""
            return {"scorer": self.app.state.rrg.scorer.info()}

        async def check_health(self) -> None:
            if not hasattr(self, "_health"):
                self._health = ReplicaHealth(self.app.state.rrg, canary_timeout_s)
            await self._health.check()

    return serve.deployment(RadCliQReward, **config.deployment_options()).bind()


def _as_list(seq: Any) -> Any:
    return list(seq) if isinstance(seq, tuple) else seq


def app_builder(args: dict[str, Any]):
    """Serve's application builder (``serve run reward_server.ray:app_builder model_dir=/models``, KubeRay).

    ``args``: ``model_dir`` (required), scorer keys (``device``, ``dtype``, ``version``, ``idf``, ``verify``,
    ``cache_size``), :class:`ServerSettings` keys, :class:`RayServeConfig` keys, and ``api_key_env``: the
    environment variable that holds the API key (never the key itself in a manifest).
    """
    args = dict(args)
    types = {f.name: f.type for cls in (ServerSettings, RayServeConfig) for f in fields(cls)}
    types.update(_SCORER_ARGS)
    unknown = set(args) - (set(types) - {"api_key", "scorer", "settings"} | {"api_key_env"})
    if unknown:
        raise ValueError(f"unknown rrg-reward Ray args {sorted(unknown)}")
    # `serve run ... key=value` passes strings; a manifest passes YAML types.
    args = {k: _coerce(k, v, types.get(k, "str")) for k, v in args.items()}
    setting_keys = {f.name for f in fields(ServerSettings)} & set(args)
    settings = ServerSettings(**{k: args[k] for k in setting_keys})
    if "openrlhf_strip" in args:
        strip = args["openrlhf_strip"]
        settings.openrlhf_strip = (strip,) if isinstance(strip, str) else tuple(strip)
    if args.get("api_key_env"):
        settings.api_key = os.environ.get(args["api_key_env"]) or None
        if settings.api_key is None:
            raise ValueError(
                f"api_key_env={args['api_key_env']}: that environment variable is unset or empty"
            )
    config_keys = {f.name for f in fields(RayServeConfig)} & set(args)
    return build_app(
        RayServeConfig(
            scorer={k: args[k] for k in set(_SCORER_ARGS) & set(args)},
            settings=settings,
            **{k: args[k] for k in config_keys},
        )
    )


# RadCliQScorer.from_pretrained's keyword arguments that app_builder takes, with their types.
_SCORER_ARGS = {
    "model_dir": "str",
    "device": "str | None",
    "dtype": "str",
    "version": "str",
    "idf": "bool",
    "verify": "bool",
    "cache_size": "int",
}


def _coerce(name: str, value: Any, annotation: str) -> Any:
    if not isinstance(value, str) or annotation.startswith("str") or "tuple" in annotation:
        return value
    try:
        if annotation.startswith("bool"):
            if value.strip().lower() not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                raise ValueError(value)
            return value.strip().lower() in ("1", "true", "yes", "on")
        if annotation.startswith("int"):
            return int(value)
        if annotation.startswith("float"):
            return float(value)
    except ValueError:
        raise ValueError(f"{name}={value!r}: expected {annotation}") from None
    return value


# ---------------------------------------------------------------------- rrg-reward serve --ray
def serve_ray(
    config: RayServeConfig,
    address: str | None = None,
    num_cpus: int | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Deploy on Ray Serve (HTTP on ``settings.host:port``) and block until SIGINT/SIGTERM or ``stop``.

    Without ``address`` a local Ray cluster is started here and shut down on exit; with one, this process
    joins that cluster and deletes only its own application on exit (the cluster and Serve keep running).
    """
    import ray
    from ray import serve

    config.validate()
    check_bind(config.settings)
    ray.init(address=address, num_cpus=num_cpus if address is None else None, include_dashboard=False)
    stop = stop or _stop_on_signals()  # after ray.init, whose core worker installs its own SIGTERM handler
    try:
        serve.start(http_options={"host": config.settings.host, "port": config.settings.port})
        serve.run(build_app(config), name=config.app_name, route_prefix="/")
        logger.info(
            "rrg-reward on Ray Serve: http://%s:%d, app %r",
            config.settings.host,
            config.settings.port,
            config.app_name,
        )
        while not stop.wait(0.5):
            pass
    finally:
        if address is None:
            serve.shutdown()
        else:
            serve.delete(config.app_name)
        ray.shutdown()


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


# ---------------------------------------------------------------------- callers inside the cluster
def _app_name(app_name: str | None) -> str:
    """``app_name``, else ``RRG_REWARD_RAY_APP``, else the default application name."""
    return app_name or os.environ.get(ENV_APP_NAME) or APP_NAME


def get_scorer_handle(app_name: str | None = None):
    """The deployment's Serve handle: ``await handle.score.remote(hyps, refs)`` -> RadCliQScorer rows.

    Connects this process to the running Ray cluster (``RAY_ADDRESS``, else ``auto``) when it is not yet.
    """
    import ray
    from ray import serve

    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS", "auto"))
    return serve.get_app_handle(_app_name(app_name))


def use_ray_handle(value: str | None = None) -> bool:
    """True when ``RRG_REWARD_RAY`` (or ``value``) asks reward clients to use the Ray handle, not HTTP."""
    return parse_flag(os.environ.get(ENV_USE_RAY, "") if value is None else value)


def reward_client(urls: str | Sequence[str] | None = None, *, sync: bool = False, **kwargs: Any):
    """A reward client: the Ray handle when ``RRG_REWARD_RAY=1``, else HTTP to ``urls``.

    Both have ``client.score(hyps, refs)`` / ``rewards(...)`` (awaitable, or blocking with ``sync=True``) with
    the same rows and error classes; ``kwargs`` are the HTTP client's (``api_key``, ``timeout``,
    ``retry_budget_s``, ...), of which the handle clients take the retry settings. ``RRG_REWARD_RAY_APP``
    names the Serve application.
    """
    if use_ray_handle():
        keep = {"retry_budget_s", "max_error_retries", "backoff_initial_s", "backoff_max_s"}
        cls = RayRewardClient if sync else AsyncRayRewardClient
        return cls(**{k: v for k, v in kwargs.items() if k in keep})
    from reward_server.client import AsyncRewardClient, RewardClient

    if not urls:
        raise ValueError("reward server URL(s) required (or set RRG_REWARD_RAY=1 inside a Ray cluster)")
    return (RewardClient if sync else AsyncRewardClient)(urls, **kwargs)


@dataclass
class _HandleRetry:
    """The HTTP clients' policy over a handle: 4xx raises, 5xx retries a few times, unavailable until the
    budget is spent (a replica killed mid-request, Serve's back-pressure, a deployment still starting)."""

    retry_budget_s: float = 300.0
    max_error_retries: int = 2
    backoff_initial_s: float = 0.25
    backoff_max_s: float = 10.0
    start: float = field(default_factory=time.monotonic)
    attempts: int = 0
    errors: int = 0

    def delay(self, exc: BaseException) -> float:
        """Seconds to wait before the next try; raises the client error class when there is none."""
        self.attempts += 1
        kind, message, status = _classify(exc)
        if kind == "request":
            raise RewardRequestError(
                f"the reward deployment rejected the request ({status}): {message}", status, message
            )
        self.errors += kind == "error"
        elapsed = time.monotonic() - self.start
        if kind == "error" and self.errors > self.max_error_retries:
            raise RewardScoringError(
                f"the reward deployment failed after {self.attempts} attempts: {message}", status, message
            ) from exc
        if elapsed >= self.retry_budget_s:
            raise RewardServerUnavailable(
                f"reward deployment unavailable within the retry budget ({elapsed:.1f}s of "
                f"{self.retry_budget_s:g}s, {self.attempts} attempts); last error: {message}",
                status,
                message,
            ) from exc
        backoff = min(self.backoff_max_s, self.backoff_initial_s * 2 ** (self.attempts - 1))
        return min(backoff, self.retry_budget_s - elapsed)


def _classify(exc: BaseException) -> tuple[str, str, int | None]:
    """('request' | 'error' | 'unavailable', message, HTTP-like status) for an exception from a handle call."""
    from ray.exceptions import RayActorError, RayTaskError
    from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

    cause = exc.cause if isinstance(exc, RayTaskError) and exc.cause is not None else exc
    if isinstance(cause, ApiError):
        if cause.status in (408, 429, 502, 503, 504):
            return "unavailable", cause.detail, cause.status
        return ("request" if cause.status < 500 else "error"), cause.detail, cause.status
    if isinstance(cause, RayActorError | BackPressureError | DeploymentUnavailableError | TimeoutError):
        return "unavailable", f"{type(cause).__name__}: {cause}", None
    if isinstance(exc, RayTaskError):
        return "error", f"{type(cause).__name__}: {cause}", 500
    raise exc


class _HandleClient:
    """The Serve handle, fetched on first use, and the retry settings (see :class:`_HandleRetry`)."""

    def __init__(self, app_name: str | None = None, handle: Any = None, **retry: Any):
        self.app_name = app_name
        self._handle = handle
        self._retry = retry
        self.random_weights: bool | None = None  # the replicas' scorer is the random tiny kit (from info())

    @property
    def handle(self):
        if self._handle is None:
            self._handle = get_scorer_handle(self.app_name)
        return self._handle

    def _score_steps(self, hypotheses: Sequence[str], references: Sequence[str]) -> Generator:
        """One score call under :class:`_HandleRetry`, without I/O (run by ``drive`` / ``adrive`` of
        reward_server.client): yields the handle call to make, then each delay."""
        _check_pairs(hypotheses, references)
        if not hypotheses:
            return [], []
        tries = _HandleRetry(**self._retry)
        while True:
            try:
                return _rows_out((yield lambda: self.handle.score.remote(list(hypotheses), list(references))))
            except RewardServerError:
                raise
            except Exception as e:
                yield Delay(tries.delay(e))


class AsyncRayRewardClient(_HandleClient):
    """:class:`~reward_server.client.AsyncRewardClient`'s ``score``/``rewards`` over the Serve handle."""

    async def _score(self, hypotheses: Sequence[str], references: Sequence[str]) -> tuple[list[dict], list]:
        return await adrive(self._score_steps(hypotheses, references), lambda call: call())

    async def score(self, hypotheses: Sequence[str], references: Sequence[str]) -> list[dict]:
        """One dict per pair, as the HTTP client returns it (non-finite values are None)."""
        return (await self._score(hypotheses, references))[0]

    async def rewards(self, hypotheses: Sequence[str], references: Sequence[str]) -> list[float | None]:
        """-RadCliQ per pair (higher is better)."""
        return (await self._score(hypotheses, references))[1]

    async def info(self) -> dict[str, Any]:
        """The scorer's ``info()`` from one replica (``random_weights`` among it)."""
        info = await self.handle.info.remote()
        self.random_weights = scorer_random_weights(info)
        return info

    async def aclose(self) -> None:
        """Nothing to close (the handle belongs to Ray); here so callers treat both clients alike."""


class RayRewardClient(_HandleClient):
    """Blocking ``score``/``rewards`` over the Serve handle, for synchronous callers (not inside a loop)."""

    def _score(self, hypotheses: Sequence[str], references: Sequence[str]) -> tuple[list[dict], list]:
        return drive(self._score_steps(hypotheses, references), lambda call: call().result())

    def score(self, hypotheses: Sequence[str], references: Sequence[str]) -> list[dict]:
        """One dict per pair, as the HTTP client returns it (non-finite values are None)."""
        return self._score(hypotheses, references)[0]

    def rewards(self, hypotheses: Sequence[str], references: Sequence[str]) -> list[float | None]:
        """-RadCliQ per pair (higher is better)."""
        return self._score(hypotheses, references)[1]

    def info(self) -> dict[str, Any]:
        """The scorer's ``info()`` from one replica (``random_weights`` among it)."""
        info = self.handle.info.remote().result()
        self.random_weights = scorer_random_weights(info)
        return info

    def wait_until_ready(self, timeout: float = 300.0, interval: float = 1.0) -> None:
        """Block until the deployment scores a canary pair, or raise RewardServerUnavailable (fail fast)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                canary = self.handle.score.remote([_CANARY_REFERENCE], [_CANARY_REFERENCE])
                canary.result(timeout_s=max(1.0, deadline - time.monotonic()))
                return
            except Exception as e:
                last = f"{type(e).__name__}: {e}"
            if time.monotonic() >= deadline:
                raise RewardServerUnavailable(
                    f"Ray Serve app {_app_name(self.app_name)!r} not ready after {timeout:g}s: {last}"
                )
            time.sleep(interval)


def config_from(scorer: dict[str, Any], settings: ServerSettings, **overrides: Any) -> RayServeConfig:
    """A :class:`RayServeConfig` with the CLI's values (None means: keep the default)."""
    return replace(
        RayServeConfig(scorer=scorer, settings=settings),
        **{k: v for k, v in overrides.items() if v is not None},
    )
