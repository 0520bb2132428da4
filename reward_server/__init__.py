"""reward_server: RadCliQ as a library and as a batched HTTP service.

    from reward_server import RadCliQScorer, radcliq_from_components
    scorer = RadCliQScorer.from_pretrained(model_dir, device=None, version="v1", idf=False)
    rows = scorer.score(hypotheses, references)   # list[dict]: radcliq, radgraph, bertscore, semb, bleu2

Folders by job: ``radcliq/`` the metric library, ``service/`` the HTTP service (``rrg-reward serve``),
``client.py`` / ``ray.py`` / ``integrations/`` the callers' side, ``tinykit/`` tiny random models for tests and
the offline demo. Exports are resolved lazily so that light users (the HTTP client) do not import torch.
"""

from __future__ import annotations

__version__ = "0.1.0"

_EXPORTS = {
    "RadCliQScorer": "reward_server.radcliq.scorer",
    "radcliq_from_components": "reward_server.radcliq.composite",
    "RADCLIQ_V1": "reward_server.radcliq.composite",
    "RADCLIQ_V0": "reward_server.radcliq.composite",
    "RewardClient": "reward_server.client",
    "AsyncRewardClient": "reward_server.client",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'reward_server' has no attribute {name!r}")
