"""The evaluation table is the metric code itself: every value equals a direct call on the same texts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reward_server.client import RewardClient
from reward_server.radcliq.composite import radcliq_from_components
from reward_server.radcliq.radgraph import radgraph_reward
from rrg_trl.evaluation.scoring import SERVER_ONLY_REASON, score_reports
from rrg_trl.evaluation.table import TABLE_KEYS
from rrg_trl.metrics import Meteor, compute_nlg_metrics, meteor_unavailable_reason
from rrg_trl.metrics.chexbert_f1 import chexbert_f1
from tests.reward_server.live import LiveServer

# float32 encoders on differently padded batches agree to a few 1e-6 (RadCliQ's standardisation scales that up
# ~4x); a swapped or wrong pair is off by orders of magnitude more (cf. tests/reward_server/live.py).
TOL = 1e-5
RADCLIQ_TOL = 1e-4


@pytest.fixture(scope="module")
def meteor():
    """One Meteor process for the module when Java and the jar exist, else False (METEOR then unavailable)."""
    if meteor_unavailable_reason() is not None:
        yield False
        return
    with Meteor() as m:
        yield m


@pytest.fixture(scope="module")
def scored(scorer, pairs, meteor):
    hyps, refs = pairs
    return score_reports(hyps, refs, scorer=scorer, meteor=meteor, chunk_size=3, progress=False)


def test_every_table_metric_is_finite_or_explained(scored):
    for key in TABLE_KEYS:
        value = scored.metrics[key]
        if value is None:
            assert scored.unavailable.get(key), f"{key} is None without a reason"
        else:
            assert math.isfinite(value), key


def test_nlg_columns_equal_compute_nlg_metrics(scored, pairs, meteor):
    hyps, refs = pairs
    direct = compute_nlg_metrics(hyps, refs, meteor=meteor)
    for key, value in direct.corpus.items():
        assert scored.metrics[key] == value, key
        if direct.per_sample[key] is not None:
            assert [row[key] for row in scored.per_sample] == direct.per_sample[key], key
    assert {k: v for k, v in scored.unavailable.items() if k in direct.corpus} == direct.unavailable


def test_radcliq_columns_equal_the_reward(scored, scorer, pairs):
    """Same numbers as the reward server's scorer, recomputed from scratch (cache cleared)."""
    hyps, refs = pairs
    scorer.cache.clear()
    rows = scorer.score(hyps, refs)
    for i, (got, want) in enumerate(zip(scored.per_sample, rows, strict=True)):
        assert got["radgraph_combined"] == want["radgraph"], i  # set F1: exact
        assert got["bertscore"] == pytest.approx(want["bertscore"], abs=TOL), i
        assert got["semb"] == pytest.approx(want["semb"], abs=TOL), i
        assert got["bleu2_radcliq"] == want["bleu2"], i
        assert got["radcliq_v1"] == pytest.approx(want["radcliq"], abs=RADCLIQ_TOL), i
        assert got["reward"] == pytest.approx(-want["radcliq"], abs=RADCLIQ_TOL), i
        v0 = radcliq_from_components(
            want["radgraph"], want["bertscore"], want["semb"], want["bleu2"], version="v0"
        )
        assert got["radcliq_v0"] == pytest.approx(v0, abs=RADCLIQ_TOL), i
    for key, feature in (("radgraph_combined", "radgraph"), ("bertscore", "bertscore"), ("semb", "semb")):
        assert scored.metrics[key] == pytest.approx(np.mean([r[feature] for r in rows]), abs=TOL)
    assert scored.metrics["radcliq_v1"] == pytest.approx(
        np.mean([r["radcliq"] for r in rows]), abs=RADCLIQ_TOL
    )
    assert scored.details["reward"]["radcliq_version"] == "v1"


def test_radgraph_levels_equal_direct_annotation(scored, scorer, pairs):
    hyps, refs = pairs
    hyp_ann, ref_ann = scorer.radgraph.annotate(hyps), scorer.radgraph.annotate(refs)
    levels = [
        radgraph_reward(r, h, "all", ref_text=rt, hyp_text=ht)
        for h, r, ht, rt in zip(hyp_ann, ref_ann, hyps, refs, strict=True)
    ]
    assert [row["radgraph_partial"] for row in scored.per_sample] == [lv[1] for lv in levels]
    assert [row["radgraph_simple"] for row in scored.per_sample] == [lv[0] for lv in levels]
    assert scored.metrics["radgraph_partial"] == pytest.approx(np.mean([lv[1] for lv in levels]), abs=1e-12)
    assert scored.per_sample[0]["radgraph_partial"] == 1.0  # identical pair (the kit predicts entities)
    assert scored.per_sample[1]["radgraph_partial"] == 0.0  # empty hypothesis


def test_chexbert_columns_equal_direct_labels(scored, scorer, pairs):
    hyps, refs = pairs
    direct = chexbert_f1(scorer.chexbert.labels(hyps), scorer.chexbert.labels(refs))
    for n in ("14", "5"):
        for avg in ("micro", "macro"):
            assert scored.metrics[f"chexbert_f1_{n}_{avg}"] == direct[f"f1_{n}_{avg}"]
    assert scored.details["chexbert"] == direct


def test_reward_server_client_gives_the_same_features(scored, scorer, pairs):
    hyps, refs = pairs
    with LiveServer(scorer) as server, RewardClient(server.url) as client:
        remote = score_reports(hyps, refs, client=client, meteor=False, chunk_size=4, progress=False)
    for key in (
        "radgraph_combined",
        "bertscore",
        "semb",
        "radcliq_v0",
        "radcliq_v1",
        "reward",
        "BLEU_4",
        "CIDEr",
    ):
        assert remote.metrics[key] == pytest.approx(scored.metrics[key], abs=RADCLIQ_TOL), key
    for key in ("radgraph_partial", "chexbert_f1_14_micro", "chexbert_f1_5_macro"):
        assert remote.metrics[key] is None
        assert remote.unavailable[key] == SERVER_ONLY_REASON
    assert remote.details["reward"]["server_info"]["scorer"]["radcliq_version"] == "v1"
    # the tiny kit behind the server is random: the client learns it from /v1/info, as in-process scoring does
    assert remote.details["reward"]["random_weights"] is scored.details["reward"]["random_weights"] is True


def test_the_scorer_cache_bound_is_restored(scorer, pairs):
    bound = scorer.cache.max_entries
    scorer.cache.max_entries = 3
    try:
        score_reports(*pairs, scorer=scorer, meteor=False, progress=False)
        assert scorer.cache.max_entries == 3
        assert len(scorer.cache) <= 3
    finally:
        scorer.cache.max_entries = bound


@pytest.mark.parametrize(
    ("hyps", "refs", "message"),
    [
        (["a", "b"], ["a"], "same length"),
        (["a", 3], ["a", "b"], r"hyps\[1\]"),
        ([], [], "nothing to evaluate"),
    ],
)
def test_bad_pairs_are_named(scorer, hyps, refs, message):
    with pytest.raises(ValueError, match=message):
        score_reports(hyps, refs, scorer=scorer, meteor=False, progress=False)


def test_exactly_one_backend(scorer):
    with pytest.raises(ValueError, match="exactly one"):
        score_reports(["a"], ["a"], meteor=False, progress=False)
    with pytest.raises(ValueError, match="exactly one"):
        score_reports(["a"], ["a"], scorer=scorer, client=object(), meteor=False, progress=False)
