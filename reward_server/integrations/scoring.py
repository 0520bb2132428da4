"""One scoring backend per process for the integration files: a reward-server client, the Ray Serve handle
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
from dataclasses import dataclass, fields
from typing import Any

from reward_server.env import DEFAULT_URL, read_env
from reward_server.radcliq.composite import SCORE_KEYS, to_reward
from reward_server.radcliq.texts import check_texts


@dataclass(frozen=True)
class BackendConfig:
    """Where rewards come from (defaults, then ``RRG_REWARD_*``)."""

    urls: tuple[str, ...] = (DEFAULT_URL,)
    api_key: str | None = None
    timeout_s: float = 300.0
    retry_budget_s: float = 600.0
    model_dir: str | None = None
    device: str | None = None
    ray: bool = False  # RRG_REWARD_RAY=1: the Ray Serve deployment's handle (inside that Ray cluster)

    @classmethod
    def from_env(cls) -> BackendConfig:
        return cls(**read_env(tuple(f.name for f in fields(cls))))


class ScoringBackend:
    """``score`` (sync, thread-safe) and ``ascore`` (any event loop) over the server or an in-process scorer."""

    def __init__(self, config: BackendConfig):
        self.config = config
        self._lock = threading.Lock()  # the in-process scorer is not thread-safe
        self._scorer = self._client = self._aclient = None
        if config.model_dir:
            from reward_server import RadCliQScorer

            self._scorer = RadCliQScorer.from_pretrained(config.model_dir, device=config.device)
        elif config.ray:
            from reward_server.ray import AsyncRayRewardClient, RayRewardClient

            self._client = RayRewardClient(retry_budget_s=config.retry_budget_s)
            self._aclient = AsyncRayRewardClient(retry_budget_s=config.retry_budget_s)
        else:
            from reward_server.client import AsyncRewardClient, RewardClient

            kwargs = {
                "api_key": config.api_key,
                "timeout": config.timeout_s,
                "retry_budget_s": config.retry_budget_s,
            }
            self._client = RewardClient(list(config.urls), **kwargs)
            self._aclient = AsyncRewardClient(list(config.urls), **kwargs)

    @property
    def where(self) -> str:
        if self._scorer:
            return f"in-process scorer {self.config.model_dir}"
        return "the Ray Serve handle" if self.config.ray else f"reward server(s) {self.config.urls}"

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
            _shared = ScoringBackend(BackendConfig.from_env())
        return _shared


def check_references(refs: Any, n: int, name: str) -> list[str]:
    """``refs`` as a list of ``n`` strings, or ValueError naming the index / the length."""
    refs = check_texts(refs, name)
    if len(refs) != n:
        raise ValueError(f"{name} has {len(refs)} items for {n} completions")
    return refs
