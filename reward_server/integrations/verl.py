"""verl's custom reward: ``custom_reward_function.path`` = this file (``python -c "import
reward_server.integrations.verl as m; print(m.__file__)"``), ``.name`` = one of:

- ``compute_score``: synchronous, per sample -- ``reward_manager: naive`` in verl <= 0.6, verl >= 0.7 with
  ``use_reward_loop=False``, and the >= 0.7 reward loop (which runs sync functions in its executor);
- ``compute_score_async``: the same as a coroutine, for the >= 0.7 reward loop (no executor thread);
- ``compute_score_batch``: ``reward_manager: batch``, one request for the whole batch (the fast path: the
  per-sample functions pay one HTTP round trip per sample).

Each gives ``{"score": -radcliq, "radcliq", "radgraph", "bertscore", "semb", "bleu2"}`` per sample (verl
puts the extra keys in ``reward_extra_info``). ``**kwargs`` takes verl's ``reward_kwargs`` and the reward
loop's extras, which the reward does not use. Scoring goes through ``RRG_REWARD_URLS`` /
``RRG_REWARD_API_KEY`` or in-process with ``RRG_REWARD_MODEL_DIR``, one client per process.
"""

from __future__ import annotations

from typing import Any

from reward_server.integrations.scoring import check_references, reward_row, shared
from reward_server.radcliq.texts import check_texts


def _pair(solution_str: Any, ground_truth: Any) -> tuple[list[str], list[str]]:
    return check_texts([solution_str], "solution_str"), check_texts([ground_truth], "ground_truth")


def compute_score(
    data_source: Any, solution_str: str, ground_truth: str, extra_info: dict | None = None, **kwargs: Any
) -> dict[str, float]:
    """-RadCliQ of one decoded response against its reference report, with the components."""
    return reward_row(shared().score(*_pair(solution_str, ground_truth))[0])


async def compute_score_async(
    data_source: Any, solution_str: str, ground_truth: str, extra_info: dict | None = None, **kwargs: Any
) -> dict[str, float]:
    """:func:`compute_score` as a coroutine (verl >= 0.7 reward loop)."""
    return reward_row((await shared().ascore(*_pair(solution_str, ground_truth)))[0])


def compute_score_batch(
    data_sources: Any, solution_strs: list[str], ground_truths: list[str], extra_infos: Any, **kwargs: Any
) -> list[dict[str, float]]:
    """One scoring request for the batch (``reward_manager: batch``); ValueError naming a bad index."""
    hyps = check_texts(solution_strs, "solution_strs")
    refs = check_references(ground_truths, len(hyps), "ground_truths")
    return [reward_row(row) for row in shared().score(hyps, refs)]
