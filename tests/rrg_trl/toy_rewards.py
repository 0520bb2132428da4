"""Deterministic rewards for the RL tests (imported by dotted path, as users pass their own rewards)."""

from __future__ import annotations

TARGET_MODULUS = 4


def target_token_share(prompts, completions, completion_ids, **kwargs):
    """Share of generated tokens whose id is divisible by 4: a fixed quarter of the vocabulary, so a random
    tiny policy scores about 0.25 and only a policy that learned scores clearly more."""
    return [token_share(ids) for ids in completion_ids]


def token_share(ids) -> float:
    ids = list(ids)
    return sum(i % TARGET_MODULUS == 0 for i in ids) / max(len(ids), 1)
