"""RadGraph (model_type "radgraph", DyGIE++): batched inference from the official archive, and its F1 scores.

>>> from reward_server.radcliq.radgraph import RadGraph, radgraph_combined, radgraph_reward
>>> rg = RadGraph.from_pretrained(model_dir / "StanfordAIMI/RRG_scorers/radgraph.tar.gz", model_dir=model_dir)
>>> ref, hyp = rg.annotate([reference, hypothesis])
>>> radgraph_combined(ref, hyp)  # RadCliQ's feature: (entity F1 + relation F1) / 2
>>> radgraph_reward(ref, hyp, "partial")  # F1RadGraph's RG_ER; also "simple", "complete", "all"
"""

from reward_server.radcliq.radgraph.archive import RadGraphArchive, RadGraphArchiveError
from reward_server.radcliq.radgraph.f1 import (
    entity_set,
    radgraph_combined,
    radgraph_reward,
    relation_set,
    set_f1,
)
from reward_server.radcliq.radgraph.model import DocScores, RadGraph
from reward_server.radcliq.radgraph.preprocess import split_report

__all__ = [
    "DocScores",
    "RadGraph",
    "RadGraphArchive",
    "RadGraphArchiveError",
    "entity_set",
    "radgraph_combined",
    "radgraph_reward",
    "relation_set",
    "set_f1",
    "split_report",
]
