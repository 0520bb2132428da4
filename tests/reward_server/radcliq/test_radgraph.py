"""RadGraph: our batched DyGIE++ equals radeval 2.2.1's RadGraph on the same random weights, report by report.

Parity means identical annotation dicts (so identical entity and relation sets), identical RadCliQ combined
F1 and identical F1RadGraph rewards, all computed by the reference's own code in a clean subprocess
(tests/parity/run_ref_radgraph.py). On a mismatch the message gives each decision kind's margin: float32
noise (~1e-6) can only flip decisions closer than that.
"""

from __future__ import annotations

import json
import os
import random
import re

import pytest
import torch

from reward_server.radcliq.model_files import ModelFiles
from reward_server.radcliq.radgraph import (
    RadGraph,
    entity_set,
    radgraph_combined,
    radgraph_reward,
    relation_set,
    set_f1,
    split_report,
)
from reward_server.tinykit.corpus import synthetic_reports
from tests.parity.pairs import iu_reports, make_pairs
from tests.parity.ref_env import run_reference


@pytest.fixture(scope="module")
def radgraph(tiny_model_dir) -> RadGraph:
    files = ModelFiles.locate(tiny_model_dir, verify=False)
    return RadGraph.from_pretrained(files.radgraph, model_dir=tiny_model_dir, device="cpu", batch_size=16)


def reference(model_dir, cache_root, texts: list[str], pairs: list[tuple[int, int]]) -> dict:
    old = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"  # the batch-1 reference is ~20x slower with 2 spinning threads
    try:
        return run_reference("run_ref_radgraph.py", model_dir, cache_root, {"texts": texts, "pairs": pairs})
    finally:
        if old is None:
            os.environ.pop("OMP_NUM_THREADS")
        else:
            os.environ["OMP_NUM_THREADS"] = old


def indexed(pairs: list[tuple[str, str]]) -> tuple[list[str], list[tuple[int, int]]]:
    """Unique texts and (ref index, hyp index) pairs."""
    index: dict[str, int] = {}
    out = [(index.setdefault(ref, len(index)), index.setdefault(hyp, len(index))) for ref, hyp in pairs]
    return list(index), out


def compare(radgraph: RadGraph, texts, pairs, ref: dict) -> dict[str, int]:
    """Assert parity of annotations, combined F1 and rewards; return what was compared."""
    ours = radgraph.annotate(texts)
    mismatches = []
    for i, (text, mine, theirs) in enumerate(zip(texts, ours, ref["annotations"], strict=True)):
        if theirs is None:  # the reference crashed: only whitespace-only reports may do that
            assert not text.strip() and text, f"reference failed on {text[:80]!r}: {ref['errors'][i]}"
            assert mine["entities"] == {}
            continue
        if json.loads(json.dumps(mine)) != theirs:
            margins = radgraph.decision_margins([text])[0]
            mismatches.append(
                f"text {i} {text[:60]!r}: entities only ours {entity_set(mine) - entity_set(theirs)}, only "
                f"reference {entity_set(theirs) - entity_set(mine)}; relations only ours "
                f"{relation_set(mine) - relation_set(theirs)}, only reference "
                f"{relation_set(theirs) - relation_set(mine)}; decision margins {margins}"
            )
    assert not mismatches, f"{len(mismatches)} of {len(texts)} reports differ:\n" + "\n".join(mismatches)
    for p, (r, h) in enumerate(pairs):
        assert radgraph_combined(ours[r], ours[h]) == ref["combined"][p], (texts[r][:60], texts[h][:60])
        if ref["rewards"][p] is not None:
            mine = radgraph_reward(ours[r], ours[h], "all", ref_text=texts[r], hyp_text=texts[h])
            assert list(mine) == ref["rewards"][p], (texts[r][:60], texts[h][:60])
    return {
        "texts": len(texts),
        "reference_failures": sum(a is None for a in ref["annotations"]),
        "entities": sum(len(a["entities"]) for a in ours),
        "relations": sum(len(e["relations"]) for a in ours for e in a["entities"].values()),
        "pairs": len(pairs),
    }


# Preprocessing and tokenizer edge cases (each is also annotated by the reference in the synthetic run).
EDGE_CASES = [
    "",
    " ",
    "\n\t ",
    "None",
    "normal.No",
    "3.5 cm nodule.",
    "(CAJ).",
    "Left-sided effusion; 10% of the hemithorax!",
    "Is there a pneumothorax? No/none: stable",
    "x",
    ".",
    "...",
    "NO ACUTE CARDIOPULMONARY ABNORMALITY.",
    "Ca\u0301rdiac silhouette normal.",  # combining accent: stripped by the uncased normaliser
    "heart \u200b size",  # a zero-width space is a word of zero word pieces
    "\u200b",
    "  spaced   out\treport \n with  newlines  ",
    "supercalifragilisticexpialidociouspneumonoultramicroscopicsilicovolcanoconiosis is noted.",
]


def synthetic_case(radgraph: RadGraph) -> tuple[list[str], list[tuple[int, int]]]:
    reports = synthetic_reports(60, seed=7)
    # Over-length: report text, then rare made-up words of many pieces each, so that three segments of 510
    # pieces are reached with few words (relation pairs grow with the square of the word count).
    rng = random.Random(0)
    words = " ".join(synthetic_reports(8, seed=8)).split(" ")
    while radgraph.count_pieces([" ".join(words)])[0] <= 2 * 510 + 50:
        words.append("".join(rng.choice("bcdfghjklmnpqrstvwxz") for _ in range(rng.randint(6, 14))))
        words.append(rng.choice(["opacity.", "(stable)", "left-sided", "effusion,"]))
    long_report = " ".join(words)
    # The longest prefix that still fits one segment, and the shortest that needs a second one.
    fits = max(n for n in range(1, len(words)) if radgraph.count_pieces([" ".join(words[:n])])[0] <= 510)
    boundary = [" ".join(words[:fits]), " ".join(words[: fits + 1])]
    texts = reports + EDGE_CASES + [long_report, *boundary]
    pairs = [(a, b) for a, b in zip(texts, texts[1:], strict=False)]
    pairs += [(t, t) for t in texts[:10]] + [(rng.choice(reports), t) for t in EDGE_CASES]
    return indexed(pairs)


@pytest.mark.parity
def test_synthetic_parity(radgraph, tiny_model_dir, tmp_path_factory):
    texts, pairs = synthetic_case(radgraph)
    assert max(radgraph.count_pieces(texts)) > 2 * 510  # three folded segments
    ref = reference(tiny_model_dir, tmp_path_factory.mktemp("radgraph-ref-synthetic"), texts, pairs)
    stats = compare(radgraph, texts, pairs, ref)
    print(f"RadGraph synthetic parity: {stats}")
    whitespace_only = sum(1 for t in texts if t and not t.strip())
    assert stats["reference_failures"] == whitespace_only
    assert stats["entities"] > 500 and stats["relations"] > 150, stats


def negation_flip(text: str) -> str:
    if re.search(r"\b[Nn]o\b", text):
        return re.sub(r"\b([Nn])o ", lambda m: "" if m.group(1) == "n" else "There is ", text, count=1)
    return "No " + text[:1].lower() + text[1:]


def sentence_swap(text: str) -> str:
    sentences = [s for s in re.split(r"(?<=\.)\s+", text) if s]
    if len(sentences) > 1:
        sentences[0], sentences[-1] = sentences[-1], sentences[0]
    return " ".join(sentences)


@pytest.mark.parity
def test_iu_xray_parity(radgraph, tiny_model_dir, iu_annotation, tmp_path_factory):
    reports = iu_reports(iu_annotation)
    # identical, edited, unrelated, empty, whitespace-only, padded, tiny; the "long" kind is replaced by a few
    # over-length reports of 600-1300 pieces (relations cost O(n^2) on both sides: keep the runtime sane).
    triples = [t for t in make_pairs(reports, 230, seed=0) if t[2] != "long"]
    pairs = [(ref, hyp) for hyp, ref, _ in triples]
    rng = random.Random(1)
    pairs += [(r, negation_flip(r)) for r in rng.sample(reports, 30)]
    pairs += [(r, sentence_swap(r)) for r in rng.sample(reports, 30)]
    longs = [" ".join(rng.sample(reports, rng.randint(12, 18))) for _ in range(6)]
    pairs += [(rng.choice(reports), t) for t in longs[:4]] + [(longs[4], longs[5]), (longs[5], longs[5])]
    texts, index = indexed(pairs)
    assert len(index) >= 200 and sum(n > 510 for n in radgraph.count_pieces(texts)) >= 6
    ref = reference(tiny_model_dir, tmp_path_factory.mktemp("radgraph-ref-iu"), texts, index)
    stats = compare(radgraph, texts, index, ref)
    print(f"RadGraph IU X-ray parity: {stats}")
    assert stats["entities"] > 2000 and stats["relations"] > 500, stats


# ---------------------------------------------------------------------------- our own invariants
def test_split_report_rules():
    """The outputs metric_spec.md §1.1 recorded from the reference's regex."""
    assert split_report("normal.No") == ["normal", ".", "No"]
    assert split_report("3.5") == ["3", ".", "5"]
    assert split_report("Left-sided") == ["Left-sided"]
    assert split_report("nodule;") == ["nodule;"]
    assert split_report("10%") == ["10%"]
    assert split_report("(CAJ).") == ["(", "CAJ", ")", "."]
    assert split_report("a/b,c:d!e?") == ["a", "/", "b", ",", "c", ":", "d", "!", "e", "?"]
    assert split_report("") == ["None"]
    assert split_report(" \n\t") == []


def test_batch_composition_does_not_change_annotations(radgraph):
    texts = synthetic_reports(24, seed=11) + ["", "  ", " ".join(synthetic_reports(25, seed=12))]
    together = radgraph.annotate(texts)
    shuffled = list(range(len(texts)))
    random.Random(0).shuffle(shuffled)
    batch_size = radgraph.batch_size
    try:
        radgraph.batch_size = 1
        alone = radgraph.annotate(texts)
        radgraph.batch_size = 5
        mixed = radgraph.annotate([texts[i] for i in shuffled])
    finally:
        radgraph.batch_size = batch_size
    assert together == alone
    assert [together[i] for i in shuffled] == mixed


def test_duplicates_are_equal_but_independent(radgraph):
    text = synthetic_reports(1, seed=16)[0]
    a, b = radgraph.annotate([text, text])
    assert a == b and a is not b and a["entities"]
    a["entities"].clear()
    assert b["entities"]


def test_whitespace_only_and_empty(radgraph):
    blank, empty = radgraph.annotate(["  \n", ""])
    assert blank == {"text": "", "entities": {}, "data_source": None, "data_split": "inference"}
    assert empty["text"] == "None"


def test_bad_input_names_the_index(radgraph):
    with pytest.raises(ValueError, match=r"texts\[1\]"):
        radgraph.annotate(["ok", None])
    with pytest.raises(ValueError, match="list of strings"):
        radgraph.annotate("a single string")


def test_encoder_forward_counts_pieces(radgraph):
    texts = ["No effusion.", "Heart size normal. Lungs clear."]
    n_special = 2 * len(texts)  # [CLS] and [SEP] per segment
    assert radgraph.encoder_forward(texts) == sum(radgraph.count_pieces(texts)) + n_special


def test_decision_margins_are_far_from_float_noise(radgraph):
    margins = [m for m in radgraph.decision_margins(synthetic_reports(40, seed=13)) if m is not None]
    assert min(m["ner"] for m in margins) > 5e-6  # float32 batching noise is ~1e-6
    assert min(m["relation"] for m in margins) > 5e-6


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_matches_cpu(radgraph, tiny_model_dir):
    files = ModelFiles.locate(tiny_model_dir, verify=False)
    gpu = RadGraph.from_pretrained(files.radgraph, model_dir=tiny_model_dir, device="cuda")
    texts = synthetic_reports(64, seed=14)
    assert gpu.annotate(texts) == radgraph.annotate(texts)


def test_bf16_is_opt_in_and_close(radgraph, tiny_model_dir):
    files = ModelFiles.locate(tiny_model_dir, verify=False)
    half = RadGraph.from_pretrained(
        files.radgraph, model_dir=tiny_model_dir, device="cpu", dtype=torch.bfloat16
    )
    assert next(half.backbone.parameters()).dtype == torch.bfloat16
    assert next(radgraph.backbone.parameters()).dtype == torch.float32
    texts = synthetic_reports(20, seed=15)
    full, approx = radgraph.annotate(texts), half.annotate(texts)
    agree = [set_f1(entity_set(a), entity_set(b)) for a, b in zip(full, approx, strict=True)]
    assert sum(agree) / len(agree) > 0.8


# ---------------------------------------------------------------------------- F1 set rules
def _ann(*entities) -> dict:
    return {
        "entities": {
            str(i + 1): {
                "tokens": t,
                "label": lab,
                "start_ix": 0,
                "end_ix": 0,
                "relations": [list(r) for r in rels],
            }
            for i, (t, lab, rels) in enumerate(entities)
        }
    }


def test_set_f1_rules():
    assert set_f1(set(), set()) == 0.0
    assert set_f1({1}, set()) == 0.0 and set_f1(set(), {1}) == 0.0
    assert set_f1({1, 2}, {2, 3}) == 0.5


def test_combined_rules():
    a = _ann(("effusion", "OBS-DP", []), ("pleural", "ANAT-DP", []))
    assert radgraph_combined(a, a) == 0.5  # no relations on either side: relation F1 is 0, not 1
    assert radgraph_combined({}, {}) == 0.0
    cased = _ann(("Effusion", "OBS-DP", []), ("pleural", "ANAT-DP", []))
    assert radgraph_combined(a, cased) == 0.25  # case-sensitive: one of two entities matches
    related = _ann(("effusion", "OBS-DP", [("located_at", "2")]), ("pleural", "ANAT-DP", []))
    assert radgraph_combined(related, related) == 1.0
    dangling = _ann(("effusion", "OBS-DP", [("located_at", "9")]), ("pleural", "ANAT-DP", []))
    assert relation_set(dangling) == set()
    dup = _ann(("effusion", "OBS-DP", []), ("effusion", "OBS-DP", []))
    assert entity_set(dup) == {("effusion", "OBS-DP")}


def test_reward_levels():
    ref = _ann(("effusion", "OBS-DP", [("located_at", "2")]), ("pleural", "ANAT-DP", []))
    hyp = _ann(("Effusion", "OBS-DP", [("located_at", "2")]), ("Pleural", "ANAT-DP", []))
    assert radgraph_reward(ref, ref, "simple") == 1.0
    assert radgraph_reward(ref, hyp, "simple") == 0.0  # case-sensitive
    assert radgraph_reward(ref, hyp, "partial") == 0.0
    # complete lower-cases the relation items but not the relation-free entities: 1 of 2 items match.
    assert radgraph_reward(ref, hyp, "complete") == 0.5
    assert radgraph_reward(ref, hyp, "all") == (0.0, 0.0, 0.5)
    assert radgraph_reward(ref, _ann(), "partial") == 0.0  # no entities on one side
    assert radgraph_reward(ref, ref, "simple", hyp_text="") == 0.0  # zero-length text
    assert radgraph_reward(ref, ref, "all", ref_text="") == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="level"):
        radgraph_reward(ref, ref, "exact")
