"""TRL reward functions: -RadCliQ and its components from the reward server (or an in-process scorer).

Registered by name (open-r1 style) and importable by dotted path::

    trl grpo ... --reward_funcs rrg_trl.rewards.radcliq
    GRPOTrainer(..., reward_funcs=get_reward_funcs(["radcliq", "radgraph"], urls=["http://gpu0:8000"]))

Every function follows TRL's contract ``f(prompts, completions, **dataset_columns) -> list[float | None]``
and is ``async``, so TRL awaits them together. All functions made from one :class:`RadCliQRewards` share a
single scoring request per batch of completions (a small in-flight cache keyed by the texts), so asking
for ``radcliq`` plus the four components costs one request, not five.

Failures: a batch the server fails to score (5xx after retries, a rejected text) gives ``None`` for those
completions -- TRL then gives them zero advantage -- and is logged; more than ``max_consecutive_failures``
such batches in a row, a server unreachable past ``retry_budget_s``, or a rejected API key raise, which
stops training. Rewards are never silently replaced by zeros.

Configuration: :class:`RewardConfig`, the reward settings of every stack (:class:`reward_server.env.RewardSettings`:
``reward_urls``, ``reward_api_key_env``, ``reward_model_dir`` to score in-process, ``reward_ray`` for the Ray Serve
handle, ...; each left unset takes its ``RRG_REWARD_*`` variable) plus the reference column and the failure limit.
``get_reward_funcs(names, urls=..., timeout_s=...)`` also takes the keys without their ``reward_`` prefix.
The components nobody trains on are logged by the scoring request itself (``rewards/<name>/mean`` and a
completions-table column, through TRL's ``log_metric`` / ``log_extra``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar

from reward_server.client import (
    AsyncRewardClient,
    RewardRequestError,
    RewardServerError,
    RewardServerUnavailable,
    scorer_random_weights,
)
from reward_server.env import RewardSettings, setting
from reward_server.integrations.scoring import open_backend
from reward_server.radcliq.composite import SCORE_KEYS, to_reward
from reward_server.radcliq.model_files import RANDOM_WEIGHTS_NOTICE

logger = logging.getLogger(__name__)

COMPONENTS = SCORE_KEYS  # one reward function per score key
_FATAL_STATUS = frozenset({401, 403, 404, 405})  # configuration errors: every later batch would fail too
_DATA_STATUS = frozenset({413, 422})  # a reference the server refuses: it comes back every epoch
_FIELD_INDEX = re.compile(r"\b(hypotheses|references)\[(\d+)\]")


class RewardComputationError(RuntimeError):
    """Rewards could not be computed for too many batches in a row: training must stop."""


@dataclass
class RewardConfig(RewardSettings):
    """The reward settings (:class:`reward_server.env.RewardSettings`: where rewards come from, defaults from
    ``RRG_REWARD_*``) plus what the TRL reward functions need: the reference column, how many failed batches in
    a row stop training, and whether the RadCliQ components are logged beside the trained rewards."""

    FALLBACKS: ClassVar[dict[str, Any]] = {
        **RewardSettings.FALLBACKS,
        "reward_reference_column": "report",
        "reward_max_consecutive_failures": 5,
    }

    reward_reference_column: str | None = setting(
        "Dataset column with the reference report (default: $RRG_REWARD_REFERENCE_COLUMN, else report)."
    )
    reward_max_consecutive_failures: int | None = setting(
        "Batches in a row the server may fail to score (they get no reward) before training stops (default 5)."
    )
    log_reward_components: bool = field(
        default=True,
        metadata={
            "help": "Also log RadCliQ and its components (radgraph, bertscore, semb, bleu2) not trained on as "
            "rewards/<name>/mean and completions-table columns, from the same scoring request."
        },
    )


def completion_text(completion: Any, index: int = 0) -> str:
    """The generated text of a standard (``str``) or conversational (list of messages) completion."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    if isinstance(completion, list) and completion and all(isinstance(m, dict) for m in completion):
        assistant = [m for m in completion if m.get("role", "assistant") == "assistant"] or completion
        content = assistant[-1].get("content", "")
        if isinstance(content, str):
            return content
        if isinstance(content, list):  # multimodal content parts
            return "".join(
                p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
            )
    raise TypeError(
        f"completions[{index}] must be a string or a list of chat messages with 'content', "
        f"got {type(completion).__name__}"
    )


class RadCliQRewards:
    """Reward functions that share one scoring call per batch (remote client or in-process scorer)."""

    def __init__(
        self,
        config: RewardConfig | None = None,
        *,
        scorer: Any = None,
        client: Any = None,
    ):
        self.config = config or RewardConfig()
        if scorer is None and client is None:
            backend = open_backend(self.config, asynchronous=True)
            scorer, client = (backend, None) if self.config.reward_model_dir else (None, backend)
        self.scorer = scorer
        self.client = client
        # The scorer is not thread-safe: in-process scoring runs in one dedicated thread.
        self._executor = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="rrg-reward") if scorer else None
        )
        self._inflight: OrderedDict[tuple, tuple[asyncio.AbstractEventLoop, asyncio.Future]] = OrderedDict()
        self._consecutive_failures = 0
        self.requests = 0  # scoring calls made (tests check the sharing)
        self.random_weights: bool | None = None  # known after the first scored batch
        self.server_info: dict | None = None  # the server's /v1/info, when it was checked before training
        self.trained: set[str] = set()  # names the trainer logs itself; the other components are logged here
        self._logged_for: Any = None  # the hook of the last batch whose components were logged

    # ------------------------------------------------------------------ reward functions
    def reward_func(self, component: str = "radcliq") -> Callable[..., Any]:
        """An async TRL reward function for ``radcliq`` (returns -RadCliQ) or one component."""
        if component not in COMPONENTS:
            raise ValueError(f"unknown reward {component!r}; available: {list(COMPONENTS)}")
        self.trained.add(component)

        async def reward(prompts: list, completions: list, **kwargs: Any) -> list[float | None]:
            return await self.compute(component, completions, kwargs)

        reward.__name__ = reward.__qualname__ = component
        reward.__doc__ = REWARD_FUNCS[component].__doc__  # the module-level function of that name
        return reward

    async def compute(
        self, component: str, completions: Sequence[Any], columns: dict[str, Any]
    ) -> list[float | None]:
        self.trained.add(component)
        rows = await self.score(
            completions,
            self._references(columns, len(completions)),
            log_metric=columns.get("log_metric"),
            ids=columns.get("id"),
            log_extra=columns.get("log_extra"),
        )
        return _values(rows, component)

    def _log_components(self, rows: list[dict | None], log_metric: Any, log_extra: Any) -> None:
        """Through TRL's reward-function hooks, once per scoring request: each component nobody trains on as
        ``rewards/<name>/mean`` (the name TRL gives a trained reward's mean) and as a completions-table column."""
        if not self.config.log_reward_components:
            return
        for name in COMPONENTS:
            if name in self.trained:
                continue
            values = _values(rows, name)
            good = [v for v in values if v is not None and math.isfinite(v)]
            if log_metric is not None and good:
                log_metric(f"rewards/{name}/mean", sum(good) / len(good))
            if log_extra is not None:
                log_extra(name, values)

    def _references(self, columns: dict[str, Any], n: int) -> list[str]:
        col = self.config.reward_reference_column
        if col not in columns:
            available = sorted(k for k, v in columns.items() if isinstance(v, list))
            raise KeyError(
                f"the RadCliQ reward needs the reference report column {col!r}, but the batch has columns "
                f"{available}; set reference_column= (or RRG_REWARD_REFERENCE_COLUMN) to the right name"
            )
        refs = columns[col]
        if len(refs) != n:
            raise ValueError(f"column {col!r} has {len(refs)} values for {n} completions")
        for i, ref in enumerate(refs):
            if not isinstance(ref, str):
                raise ValueError(
                    f"{col}[{i}] must be a string (the reference report), got {type(ref).__name__}"
                )
        return list(refs)

    # ------------------------------------------------------------------ shared scoring
    async def score(
        self,
        completions: Sequence[Any],
        references: Sequence[str],
        log_metric: Callable[[str, float], None] | None = None,
        ids: Sequence[str] | None = None,
        log_extra: Callable[[str, list], None] | None = None,
    ) -> list[dict | None]:
        """Score rows for the batch; concurrent calls with the same texts share one request, and the first of a
        batch logs the components (TRL hands every reward function of a batch the same hooks). ``ids`` (the
        studies) name the culprit when the server refuses the data."""
        texts = [completion_text(c, i) for i, c in enumerate(completions)]
        key = (tuple(texts), tuple(references))
        loop = asyncio.get_running_loop()
        entry = self._inflight.get(key)
        if entry is None or entry[0] is not loop:
            future = asyncio.ensure_future(self._fetch(texts, list(references), log_metric, ids))
            self._inflight[key] = (loop, future)
            future.add_done_callback(functools.partial(self._forget_failure, key))
            while len(self._inflight) > 8:
                self._inflight.popitem(last=False)
        else:
            future = entry[1]
        rows = await asyncio.shield(future)
        hook = log_extra or log_metric
        if hook is not None and hook is not self._logged_for:
            self._logged_for = hook
            self._log_components(rows, log_metric, log_extra)
        return rows

    def _forget_failure(self, key: tuple, future: asyncio.Future) -> None:
        """Keep finished results for late sharers, but never serve a failure to a later batch."""
        failed = (
            future.cancelled() or future.exception() is not None or any(r is None for r in future.result())
        )
        if failed and key in self._inflight and self._inflight[key][1] is future:
            del self._inflight[key]

    async def _fetch(
        self,
        texts: list[str],
        references: list[str],
        log_metric: Callable[[str, float], None] | None,
        ids: Sequence[str] | None = None,
    ) -> list[dict | None]:
        start = time.perf_counter()
        self.requests += 1
        try:
            if self.scorer is not None:
                loop = asyncio.get_running_loop()
                rows = await loop.run_in_executor(self._executor, self.scorer.score, texts, references)
            else:
                rows = await self.client.score(texts, references)
        except RewardServerUnavailable:
            raise  # the server stayed down past the retry budget: stop training
        except RewardRequestError as e:
            if e.status in _FATAL_STATUS:
                raise
            if e.status in _DATA_STATUS:
                _raise_if_data(e, references, ids)
            return self._failed(len(texts), e, log_metric)
        except (RewardServerError, RuntimeError) as e:  # a failed batch (incl. CUDA OOM in-process)
            return self._failed(len(texts), e, log_metric)
        self._consecutive_failures = 0
        if log_metric is not None:
            log_metric("reward_server/latency_s", time.perf_counter() - start)
            log_metric("reward_server/failed", 0.0)
        if self.random_weights is None:
            await self._check_random_weights()
        return rows

    async def _check_random_weights(self) -> None:
        """Once per run: say in the training log when the rewards come from the random tiny scorer kit."""
        if self.scorer is not None:
            self.random_weights = bool(getattr(self.scorer, "random_weights", False))
        else:
            known = self.client.random_weights  # set when the client read /v1/info for its limits
            if known is None:
                try:
                    known = scorer_random_weights(await self.client.info())
                except RewardServerError as e:
                    logger.warning("could not read the reward server's /v1/info: %s", e)
                    return
            self.random_weights = known
        if self.random_weights:
            logger.warning("RadCliQ rewards of this run come from %s", RANDOM_WEIGHTS_NOTICE)

    def _failed(
        self, n: int, error: Exception, log_metric: Callable[[str, float], None] | None
    ) -> list[None]:
        self._consecutive_failures += 1
        if log_metric is not None:
            log_metric("reward_server/failed", 1.0)
        if self._consecutive_failures > self.config.reward_max_consecutive_failures:
            raise RewardComputationError(
                f"RadCliQ rewards failed for {self._consecutive_failures} batches in a row "
                f"(max_consecutive_failures={self.config.reward_max_consecutive_failures}); last error: {error}"
            ) from error
        logger.warning(
            "RadCliQ reward failed for a batch of %d completions (they get no reward, i.e. zero "
            "advantage; %d failed batches in a row): %s",
            n,
            self._consecutive_failures,
            error,
        )
        return [None] * n


def _values(rows: list[dict | None], name: str) -> list[float | None]:
    """One reward per row: -RadCliQ for ``radcliq``, the component itself otherwise (None: not scored)."""
    if name == "radcliq":
        return [None if r is None else to_reward(r["radcliq"]) for r in rows]
    return [None if r is None else r[name] for r in rows]


def _raise_if_data(error: RewardRequestError, references: list[str], ids: Sequence[str] | None) -> None:
    """A 413 / 422 about a reference (or the whole body) is the data's fault and recurs every epoch: stop, naming
    the study; one about a generated text only fails this batch."""
    match = _FIELD_INDEX.search(error.detail or "")
    if match and match.group(1) == "hypotheses":
        return
    where = "the batch"
    if match:
        i = error.offset + int(match.group(2))
        study = ids[i] if ids is not None and i < len(ids) else None
        where = f"study {study!r} (reference {i} of the batch, {len(references[i])} characters)"
    raise RewardComputationError(
        f"the reward server refused {where}: HTTP {error.status}: {error.detail}. The data is at fault, so every "
        "epoch would fail the same way: shorten or drop such reports (max_report_words in the data config) or "
        "raise the server's limits (rrg-reward serve --max-text-chars / --max-body-bytes)"
    ) from error


@functools.cache
def _default() -> RadCliQRewards:
    """The module-level functions' shared instance, configured from the environment on first use."""
    return RadCliQRewards(RewardConfig())


async def radcliq(prompts: list, completions: list, **kwargs: Any) -> list[float | None]:
    """Negative RadCliQ of each completion against its reference report (higher is better)."""
    return await _default().compute("radcliq", completions, kwargs)


async def radgraph(prompts: list, completions: list, **kwargs: Any) -> list[float | None]:
    """RadGraph F1 (mean of entity and relation F1) of each completion against its reference."""
    return await _default().compute("radgraph", completions, kwargs)


async def bertscore(prompts: list, completions: list, **kwargs: Any) -> list[float | None]:
    """BERTScore F1 (distilroberta-base, baseline-rescaled) against the reference."""
    return await _default().compute("bertscore", completions, kwargs)


async def semb(prompts: list, completions: list, **kwargs: Any) -> list[float | None]:
    """CheXbert embedding cosine similarity (s_emb) against the reference."""
    return await _default().compute("semb", completions, kwargs)


async def bleu2(prompts: list, completions: list, **kwargs: Any) -> list[float | None]:
    """BLEU-2 against the reference."""
    return await _default().compute("bleu2", completions, kwargs)


REWARD_FUNCS: dict[str, Callable[..., Any]] = {
    "radcliq": radcliq,
    "radgraph": radgraph,
    "bertscore": bertscore,
    "semb": semb,
    "bleu2": bleu2,
}


def registered_name(name: str) -> str | None:
    """The registry name of ``name`` or of its dotted path ``rrg_trl.rewards.<name>``; None for other rewards."""
    short = name.removeprefix(f"{__name__}.")
    return short if short in REWARD_FUNCS else None


def get_reward_funcs(
    names: Sequence[str], *, scorer: Any = None, client: AsyncRewardClient | None = None, **config: Any
) -> list[Callable[..., Any]]:
    """Reward functions by name; with ``scorer``/``client``/config keys they share a new instance,
    otherwise the module-level functions (configured from the environment) are returned."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in names if n not in REWARD_FUNCS]
    if unknown:
        raise ValueError(f"unknown reward function(s) {unknown}; available: {sorted(REWARD_FUNCS)}")
    if scorer is None and client is None and not config:
        return [REWARD_FUNCS[n] for n in names]
    rewards = RadCliQRewards(RewardConfig.from_env(**config), scorer=scorer, client=client)
    return [rewards.reward_func(n) for n in names]
