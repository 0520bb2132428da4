"""Reward settings into a backend (:func:`open_backend`, for every stack and ``rrg-trl`` command), and one
scoring backend per process for the integration files: a reward-server client, the Ray Serve handle
(``RRG_REWARD_RAY=1``) or an in-process scorer.

The frameworks load our files by path (OpenRLHF once per agent executor, verl once per reward manager), and
call them from threads (OpenRLHF's ``asyncio.to_thread``, verl's executor) or event loops (verl's reward
loop); the backend lives here, in a normally imported module, so every such copy shares it.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Sequence
from typing import Any

from reward_server.env import RewardSettings
from reward_server.radcliq.composite import SCORE_KEYS, to_reward
from reward_server.radcliq.texts import check_texts


def open_backend(settings: RewardSettings, *, asynchronous: bool = False) -> Any:
    """The one place settings become a backend: the in-process :class:`~reward_server.RadCliQScorer` (not
    thread-safe), the Ray Serve handle's client, or the HTTP client (sync, or async for event loops)."""
    if settings.reward_model_dir:
        from reward_server import RadCliQScorer

        return RadCliQScorer.from_pretrained(settings.reward_model_dir, device=settings.reward_device)
    retry = {"retry_budget_s": settings.reward_retry_budget_s}
    if settings.reward_ray:
        from reward_server.ray import AsyncRayRewardClient, RayRewardClient

        return (AsyncRayRewardClient if asynchronous else RayRewardClient)(settings.reward_ray_app, **retry)
    from reward_server.client import AsyncRewardClient, RewardClient

    client = AsyncRewardClient if asynchronous else RewardClient
    return client(settings.urls, api_key=settings.api_key, timeout=settings.reward_timeout_s, **retry)


class ScoringBackend:
    """``score`` (sync, thread-safe) and ``ascore`` (any event loop) over the server or an in-process scorer."""

    def __init__(self, config: RewardSettings):
        self.config = config
        self._lock = threading.Lock()  # the in-process scorer is not thread-safe
        self._scorer = self._client = self._aclient = None
        if config.reward_model_dir:
            self._scorer = open_backend(config)
        else:
            self._client = open_backend(config)
            self._aclient = open_backend(config, asynchronous=True)

    @property
    def where(self) -> str:
        if self._scorer:
            return f"in-process scorer {self.config.reward_model_dir}"
        return "the Ray Serve handle" if self.config.reward_ray else f"reward server(s) {self.config.urls}"

    def _score_locally(self, hyps: list[str], refs: list[str]) -> list[dict]:
        with self._lock:
            return self._scorer.score(hyps, refs)

    def score(self, hyps: Sequence[str], refs: Sequence[str]) -> list[dict[str, float]]:
        hyps, refs = list(hyps), list(refs)
        rows = self._score_locally(hyps, refs) if self._scorer else self._client.score(hyps, refs)
        return self._checked(rows)

    async def ascore(self, hyps: Sequence[str], refs: Sequence[str]) -> list[dict[str, float]]:
        hyps, refs = list(hyps), list(refs)
        if self._scorer:
            rows = await asyncio.to_thread(self._score_locally, hyps, refs)
        else:
            rows = await self._aclient.score(hyps, refs)
        return self._checked(rows)

    def _checked(self, rows: list[dict]) -> list[dict[str, float]]:
        """Rows with float components; a non-finite RadCliQ raises (never a silent made-up reward)."""
        out = []
        for i, row in enumerate(rows):
            value = row.get("radcliq")
            if value is None or not math.isfinite(float(value)):
                raise RuntimeError(f"pair {i}: RadCliQ is not finite ({value!r}) from {self.where}")
            out.append({k: float(row[k]) if row.get(k) is not None else math.nan for k in SCORE_KEYS})
        return out


def reward_row(row: dict[str, float]) -> dict[str, float]:
    """verl's per-sample dict: ``score`` = -RadCliQ, then RadCliQ and its four components."""
    return {"score": to_reward(row["radcliq"]), **row}


_shared: ScoringBackend | None = None
_shared_lock = threading.Lock()


def shared() -> ScoringBackend:
    """This process's backend, configured from the environment on first use (threads race to it safely)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = ScoringBackend(RewardSettings())
        return _shared


def check_references(refs: Any, n: int, name: str) -> list[str]:
    """``refs`` as a list of ``n`` strings, or ValueError naming the index / the length."""
    refs = check_texts(refs, name)
    if len(refs) != n:
        raise ValueError(f"{name} has {len(refs)} items for {n} completions")
    return refs
