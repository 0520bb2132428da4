"""OpenRLHF's local-file reward: ``--remote_rm_url /path/to/reward_server/integrations/openrlhf.py``.

OpenRLHF loads this file by path and calls ``reward_func(queries, prompts, labels)`` in a thread (batch
size 1). The completion is found exactly as the ``/v1/openrlhf`` route finds it
(:mod:`reward_server.completions`: image placeholders expanded by the processor, trailing EOS / end-of-turn
texts), then scored against ``labels`` (the reference reports, ``--label_key``) through ``RRG_REWARD_URLS``
(with ``RRG_REWARD_API_KEY``, which OpenRLHF's own HTTP mode cannot send) or in-process with
``RRG_REWARD_MODEL_DIR``. ``RRG_REWARD_POLICY_TOKENIZER`` / ``RRG_REWARD_OPENRLHF_STRIP`` add stop texts.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from reward_server.completions import CompletionExtractor
from reward_server.env import read_env
from reward_server.integrations.scoring import check_references, shared
from reward_server.radcliq.composite import SCORE_KEYS, to_reward


@functools.cache
def _extractor() -> CompletionExtractor:
    env = read_env(("policy_tokenizer", "openrlhf_strip"))
    return CompletionExtractor.build(env.get("openrlhf_strip", ()), env.get("policy_tokenizer"))


def reward_func(queries: list[str], prompts: list[str], labels: list[str], **kwargs: Any) -> dict[str, Any]:
    """``{"rewards": -RadCliQ, "scores": -RadCliQ, "extra_logs": {radcliq and components}}``, tensors of
    one value per query; ValueError naming the index for a lost prompt, a non-text item or a length mismatch."""
    completions = _extractor().completions(queries, prompts)
    labels = check_references(labels, len(completions), "labels")
    rows = shared().score(completions, labels)
    rewards = torch.tensor([to_reward(r["radcliq"]) for r in rows], dtype=torch.float32)
    extra_logs = {k: torch.tensor([r[k] for r in rows], dtype=torch.float32) for k in SCORE_KEYS}
    return {"rewards": rewards, "scores": rewards.clone(), "extra_logs": extra_logs}
