"""Score generated reports with the full evaluation table, through the same code the reward uses.

Nothing here re-implements a metric. The RadCliQ features come from :class:`reward_server.RadCliQScorer`
(the object the reward server wraps) or from a running reward server, RadCliQ v0/v1 from the composite
models of :mod:`reward_server.radcliq.composite`, RadGraph RG_ER / CheXbert F1 from the per-text annotations and
[CLS] vectors the scorer has already computed (:mod:`reward_server.radcliq.radgraph`, :mod:`rrg_trl.metrics.chexbert_f1`),
and BLEU / METEOR / ROUGE-L / CIDEr from :func:`rrg_trl.metrics.compute_nlg_metrics` on the whole set at once.
So an evaluation number and a training reward for the same pair are the same number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from reward_server.client import scorer_random_weights
from reward_server.radcliq.composite import FEATURES, RADCLIQ_V0, RADCLIQ_V1, to_reward
from reward_server.radcliq.radgraph import radgraph_reward
from reward_server.radcliq.texts import check_pairs
from rrg_trl.metrics import NLG_METRICS, compute_nlg_metrics
from rrg_trl.metrics.chexbert_f1 import CONDITIONS, binarize, chexbert_f1

SERVER_ONLY_REASON = (
    "needs the scorer models in-process (--reward_model_dir): the reward server's API returns only the four "
    "RadCliQ features, not RadGraph annotations or CheXbert labels"
)
RADGRAPH_LEVELS = ("radgraph_simple", "radgraph_partial", "radgraph_complete")


@dataclass
class EvalScores:
    """Corpus-level ``metrics`` (None = unavailable, reason in ``unavailable``) and one dict per pair."""

    metrics: dict[str, float | None]
    per_sample: list[dict[str, Any]]
    unavailable: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


def _mean(values: Sequence[float | None]) -> tuple[float | None, int]:
    """Mean of the finite values and how many were missing (None or non-finite)."""
    good = [float(v) for v in values if v is not None and math.isfinite(v)]
    return (float(np.mean(good)) if good else None), len(values) - len(good)


def _chunks(items: Sequence, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _scorer_rows(scorer, hyps: list[str], refs: list[str], chunk_size: int, progress: bool):
    """RadCliQ rows for every pair, plus each side's cached TextFeatures (annotations, [CLS] vectors).

    The encoders run in chunks of distinct texts under a progress bar (filling the scorer's cache, enlarged
    to hold the whole set for the duration); then one ``scorer.score`` call over all pairs, so an IDF setting
    sees every reference, exactly as one reward request would.
    """
    distinct = list(dict.fromkeys([*hyps, *refs]))
    cache = scorer.cache
    bound = cache.max_entries
    cache.max_entries = max(bound, len(distinct))
    try:
        with tqdm(
            total=len(distinct),
            desc="scoring (RadGraph, CheXbert, BERTScore)",
            unit="text",
            disable=not progress,
        ) as bar:
            for chunk in _chunks(distinct, chunk_size):
                scorer.features(chunk)
                bar.update(len(chunk))
        rows = scorer.score(hyps, refs)
        hyp_feats, ref_feats = scorer.features(hyps), scorer.features(refs)
    finally:
        cache.max_entries = bound
        if bound <= 0:
            cache.clear()
        else:
            cache.put_many({})  # trims back to the configured bound
    return rows, hyp_feats, ref_feats


def _client_rows(client, hyps: list[str], refs: list[str], chunk_size: int, progress: bool):
    """RadCliQ rows from a running server, and its ``/v1/info`` (versions, settings, model checksums)."""
    info = client.info()
    if (info.get("scorer") or {}).get("idf", False):  # IDF is per request: one request keeps the set's IDF
        return client.score(hyps, refs), info
    rows: list[dict] = []
    with tqdm(total=len(hyps), desc="scoring (reward server)", unit="pair", disable=not progress) as bar:
        for start in range(0, len(hyps), chunk_size):
            rows += client.score(hyps[start : start + chunk_size], refs[start : start + chunk_size])
            bar.update(min(chunk_size, len(hyps) - start))
    return rows, info


def _radcliq_versions(rows: list[dict]) -> tuple[list[float | None], list[float | None]]:
    """RadCliQ v0 and v1 of each pair from its four features (None where a feature is missing)."""
    x = np.array([[np.nan if r.get(k) is None else r[k] for k in FEATURES] for r in rows], dtype=np.float64)
    ok = np.isfinite(x).all(axis=1)
    out = []
    for model in (RADCLIQ_V0, RADCLIQ_V1):
        values = np.full(len(rows), np.nan)
        if ok.any():
            values[ok] = model.predict(x[ok])
        out.append([float(v) if math.isfinite(v) else None for v in values])
    return out[0], out[1]


def score_reports(
    hypotheses: Sequence[str],
    references: Sequence[str],
    *,
    scorer: Any = None,
    client: Any = None,
    meteor: bool | Any = True,
    chunk_size: int = 64,
    progress: bool = True,
) -> EvalScores:
    """The full table for aligned hypotheses and references.

    ``scorer``: a :class:`reward_server.RadCliQScorer` (everything is available). ``client``: a
    :class:`reward_server.RewardClient` for a running server (the RadCliQ features and RadCliQ v0/v1; RadGraph
    RG_ER and CheXbert F1 are then reported unavailable). ``meteor`` as in :func:`compute_nlg_metrics`.
    """
    hyps, refs = check_pairs(hypotheses, references)
    if not hyps:
        raise ValueError("nothing to evaluate: hypotheses and references are empty")
    if (scorer is None) == (client is None):
        raise ValueError("give exactly one of scorer (in-process RadCliQScorer) or client (reward server)")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")

    metrics: dict[str, float | None] = {}
    unavailable: dict[str, str] = {}
    details: dict[str, Any] = {}
    per_sample: list[dict[str, Any]] = [{} for _ in hyps]

    nlg = compute_nlg_metrics(hyps, refs, meteor=meteor)
    for key in NLG_METRICS:
        metrics[key] = nlg.corpus[key]
        values = nlg.per_sample[key]
        for i, row in enumerate(per_sample):
            row[key] = None if values is None else float(values[i])
    unavailable.update(nlg.unavailable)

    if scorer is not None:
        rows, hyp_feats, ref_feats = _scorer_rows(scorer, hyps, refs, chunk_size, progress)
        details["reward"] = {
            "source": "in-process RadCliQScorer",
            "radcliq_version": scorer.version,
            "idf": scorer.idf,
            "random_weights": bool(getattr(scorer, "random_weights", False)),
        }
    else:
        rows, info = _client_rows(client, hyps, refs, chunk_size, progress)
        hyp_feats = ref_feats = None
        details["reward"] = {
            "source": f"reward server {', '.join(getattr(client, 'urls', ['(Ray Serve handle)']))}",
            "server_info": info,
            "random_weights": scorer_random_weights(info),
        }

    v0, v1 = _radcliq_versions(rows)
    for i, (row, r) in enumerate(zip(per_sample, rows, strict=True)):
        row["radgraph_combined"] = r.get("radgraph")
        row["bertscore"] = r.get("bertscore")
        row["semb"] = r.get("semb")
        row["bleu2_radcliq"] = r.get("bleu2")
        row["radcliq_v0"], row["radcliq_v1"] = v0[i], v1[i]
        row["reward"] = to_reward(r.get("radcliq"))

    if hyp_feats is not None:
        for row, h, r, hf, rf in zip(per_sample, hyps, refs, hyp_feats, ref_feats, strict=True):
            levels = radgraph_reward(rf.annotation, hf.annotation, "all", ref_text=r, hyp_text=h)
            row.update(dict(zip(RADGRAPH_LEVELS, map(float, levels), strict=True)))
        chexbert = scorer.chexbert
        hyp_classes = chexbert.labels_from_embeddings(np.stack([f.cls for f in hyp_feats]))
        ref_classes = chexbert.labels_from_embeddings(np.stack([f.cls for f in ref_feats]))
        f1 = chexbert_f1(hyp_classes, ref_classes)
        for n in ("14", "5"):
            for avg in ("micro", "macro", "weighted"):
                metrics[f"chexbert_f1_{n}_{avg}"] = f1[f"f1_{n}_{avg}"]
        metrics["chexbert_accuracy_5"] = f1["accuracy_5"]
        details["chexbert"] = f1
        for row, hc, rc in zip(per_sample, binarize(hyp_classes), binarize(ref_classes), strict=True):
            row["chexbert_hyp_positive"] = [c for c, v in zip(CONDITIONS, hc, strict=True) if v]
            row["chexbert_ref_positive"] = [c for c, v in zip(CONDITIONS, rc, strict=True) if v]
    else:
        for key in (
            *RADGRAPH_LEVELS,
            "chexbert_f1_14_micro",
            "chexbert_f1_14_macro",
            "chexbert_f1_14_weighted",
            "chexbert_f1_5_micro",
            "chexbert_f1_5_macro",
            "chexbert_f1_5_weighted",
            "chexbert_accuracy_5",
        ):
            metrics[key] = None
            unavailable[key] = SERVER_ONLY_REASON
        for row in per_sample:
            row.update(dict.fromkeys(RADGRAPH_LEVELS))

    for key in (
        *RADGRAPH_LEVELS,
        "radgraph_combined",
        "bertscore",
        "semb",
        "bleu2_radcliq",
        "radcliq_v0",
        "radcliq_v1",
        "reward",
    ):
        if key not in per_sample[0] or key in unavailable:
            continue
        metrics[key], missing = _mean([row[key] for row in per_sample])
        if missing:
            details.setdefault("missing_per_sample", {})[key] = missing
            if metrics[key] is None:
                unavailable[key] = "no pair could be scored (the reward server returned no value)"
    details["aggregation"] = (
        "BLEU/METEOR/ROUGE-L/CIDEr: corpus scores over the whole set (pycocoevalcap); CheXbert F1: over the "
        "label matrices of the whole set; all other metrics: mean of the per-sample values"
    )
    return EvalScores(metrics, per_sample, unavailable, details)
