"""BERTScore: parity with radeval 2.2.1's vendored bert-score on the same random weights, and our own decisions.

Parity runs the reference in a clean subprocess (tests/parity/run_ref_bertscore.py) on the tiny kit's
distilroberta-base, over real IU X-ray pairs (skipped without ../shared) and synthetic pairs (always), with idf
off (CXR-Report-Metric / ReXrank) and on (radeval's RadCliQ), comparing P, R and F per pair.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import shutil

import numpy as np
import pytest
import torch

from reward_server.radcliq.bertscore import (
    BASELINE_EN,
    REFERENCE_PAIR_CHUNK,
    BERTScorer,
    TokenWeights,
    read_baseline,
)
from reward_server.tinykit.corpus import synthetic_reports
from tests.parity.pairs import iu_reports, make_pairs
from tests.parity.ref_env import run_reference

TOL = 1e-5
needs_radeval = pytest.mark.skipif(
    importlib.util.find_spec("radeval") is None, reason="radeval not installed"
)


@pytest.fixture(scope="module")
def kit(tiny_model_dir):
    return tiny_model_dir


@pytest.fixture(scope="module")
def scorer(kit):
    return BERTScorer.from_pretrained(kit / "distilroberta-base", device="cpu")


@pytest.fixture(scope="module")
def reference(kit, request, tmp_path_factory):
    """One reference subprocess for every parity set: synthetic pairs always, IU pairs when ../shared exists."""
    sets = {"synthetic": make_pairs(synthetic_reports(200, seed=7), 120, seed=1)}
    with contextlib.suppress(pytest.skip.Exception):  # no ../shared: synthetic pairs only
        sets["iu"] = make_pairs(iu_reports(request.getfixturevalue("iu_annotation")), 240, seed=0)
    runs, texts = {}, []
    for name, pairs in sets.items():
        hyps, refs = [h for h, _, _ in pairs], [r for _, r, _ in pairs]
        runs[name] = [{"hyps": hyps, "refs": refs, "idf": False}, {"hyps": hyps, "refs": refs, "idf": True}]
        texts += hyps + refs
    # M = 1: every reference idf is ln(2/2) = 0, so R is NaN and F is 0 (radeval's single-pair RadCliQ).
    runs["synthetic"].append(
        {"hyps": [sets["synthetic"][1][0]], "refs": [sets["synthetic"][1][1]], "idf": True}
    )
    flat = [run for name in runs for run in runs[name]]
    out = run_reference(
        "run_ref_bertscore.py", kit, tmp_path_factory.mktemp("ref-cache"), {"runs": flat, "texts": texts}
    )
    results, k = {}, 0
    for name in runs:
        results[name] = (sets[name], runs[name], out["runs"][k : k + len(runs[name])])
        k += len(runs[name])
    return {"sets": results, "texts": texts, "ids": out["ids"]}


def _compare(scorer, runs, out, label):
    """Per-pair P, R, F of each run against the reference; NaN exactly where the reference has NaN."""
    worst = {}
    for k, (run, ref) in enumerate(zip(runs, out, strict=True)):
        ours = scorer.score(run["hyps"], run["refs"], idf=run["idf"])
        for name, a, b in zip("PRF", ours, (ref["P"], ref["R"], ref["F"]), strict=True):
            b = np.asarray(b, dtype=np.float32)
            assert a.dtype == np.float32 and a.shape == b.shape
            np.testing.assert_array_equal(
                np.isnan(a), np.isnan(b), err_msg=f"{label} run {k} {name}: NaN pattern"
            )
            diff = np.abs(a - b)[~np.isnan(b)]
            worst[f"run{k}-idf{run['idf']}-{name}"] = float(diff.max()) if diff.size else 0.0
            bad = np.flatnonzero(np.abs(a - b) > TOL)
            assert bad.size == 0, (
                f"{label} run {k} {name}: pairs {bad[:10].tolist()} differ by {diff.max():.3g}"
            )
    print(f"\n[bertscore parity {label}] max |ours - reference|: {json.dumps(worst)}")
    return worst


def _min_best_cosine(scorer, hyps, refs) -> float:
    """Smallest, over pairs and tokens, of a token's best real cosine with the other text (both directions)."""
    embs = scorer.encode(list(hyps) + list(refs))
    worst = 1.0
    for h, r in zip(embs[: len(hyps)], embs[len(hyps) :], strict=True):
        sim = h.emb @ r.emb.T
        worst = min(worst, sim.max(dim=1).values.min().item(), sim.max(dim=0).values.min().item())
    return worst


@needs_radeval
@pytest.mark.parity
def test_tokenization_parity(scorer, reference):
    assert scorer.tokenize(reference["texts"]) == reference["ids"]
    assert max(len(ids) for ids in reference["ids"]) == 512  # over-length texts truncated like the reference


@needs_radeval
@pytest.mark.parity
def test_parity_iu(scorer, reference, iu_annotation):
    pairs, runs, out = reference["sets"]["iu"]
    assert len(pairs) >= 200
    assert {k for _, _, k in pairs} >= {"identical", "edited", "unrelated", "empty", "whitespace", "long"}
    _compare(scorer, runs, out, "iu")
    # The tiny kit never lets the reference's padded zeros win the greedy max on these texts.
    assert _min_best_cosine(scorer, runs[0]["hyps"], runs[0]["refs"]) > 0.05


@needs_radeval
@pytest.mark.parity
def test_parity_synthetic(scorer, reference):
    pairs, runs, out = reference["sets"]["synthetic"]
    _compare(scorer, runs, out, "synthetic")
    assert _min_best_cosine(scorer, runs[0]["hyps"], runs[0]["refs"]) > 0.05
    assert (
        np.isnan(out[2]["R"][0])
        and out[2]["F"][0] == scorer.score(runs[2]["hyps"], runs[2]["refs"], idf=True)[2][0]
    )


@needs_radeval
@pytest.mark.parity
def test_reference_padding_reproduces_the_artefact(kit, tmp_path_factory):
    """On an isotropic variant (cosines of both signs) padded zeros do win; reference_padding=True copies that."""
    from transformers import AutoModel

    iso = tmp_path_factory.mktemp("iso-kit")
    shutil.copytree(kit / "distilroberta-base", iso / "distilroberta-base")
    model = AutoModel.from_pretrained(iso / "distilroberta-base")
    with torch.no_grad():
        model.embeddings.token_type_embeddings.weight.zero_()  # remove the shared direction
    model.save_pretrained(iso / "distilroberta-base")
    rng = np.random.default_rng(0)
    words = ["normal", "No.", ".", "x", "Effusion", "?", "heart", "lungs", "clear", "3.5 cm", "(stable)"]
    texts = [" ".join(rng.choice(words, rng.integers(1, 4))) for _ in range(100)] + synthetic_reports(
        40, seed=5
    )
    hyps = [texts[i] for i in rng.integers(0, len(texts), 2 * REFERENCE_PAIR_CHUNK + 20)]
    refs = [texts[i] for i in rng.integers(0, len(texts), len(hyps))]
    out = run_reference(
        "run_ref_bertscore.py",
        iso,
        tmp_path_factory.mktemp("iso-cache"),
        {"runs": [{"hyps": hyps, "refs": refs, "idf": False}]},
    )
    ref_f = np.asarray(out["runs"][0]["F"], dtype=np.float32)
    scorer = BERTScorer.from_pretrained(iso / "distilroberta-base", device="cpu")
    emulated = scorer.score(hyps, refs, reference_padding=True)[2]
    default = scorer.score(hyps, refs)[2]
    print(
        f"\n[bertscore reference_padding] max |ours - reference| {np.abs(emulated - ref_f).max():.3g}; "
        f"{int((np.abs(default - ref_f) > 1e-3).sum())} pairs where the artefact moves F by > 1e-3"
    )
    np.testing.assert_allclose(emulated, ref_f, rtol=0, atol=TOL)
    assert (np.abs(default - ref_f) > 1e-3).any()  # the artefact is really exercised here
    assert _min_best_cosine(scorer, hyps, refs) < 0


def test_pairs_scored_independently(scorer):
    """Default mode: a pair's score does not depend on the other pairs of the request.

    Only float32 rounding may differ (the encoder pads each batch to its longest text; x6.5 after rescaling).
    """
    texts = synthetic_reports(30, seed=3) + ["", "No.", "x", " ".join(synthetic_reports(12, seed=4))]
    hyps, refs = texts[::2], texts[1::2]
    together = scorer.score(hyps, refs)
    for i in range(len(hyps)):
        alone = scorer.score([hyps[i]], [refs[i]])
        for a, b in zip(alone, together, strict=True):
            np.testing.assert_allclose(a[0], b[i], rtol=0, atol=TOL)


def test_empty_identical_and_degenerate_idf(scorer):
    baseline = read_baseline(BASELINE_EN, 5)
    empty_f = (np.float32(0) - baseline[2]) / (np.float32(1) - baseline[2])
    P, R, F = scorer.score(
        ["", "   \n", "The lungs are clear.", "Heart normal."],
        ["No effusion.", "No effusion.", "", "Heart normal."],
    )
    np.testing.assert_array_equal(F[:3], np.full(3, empty_f, dtype=np.float32))
    np.testing.assert_array_equal(P[:3], (0 - baseline[0]) / (1 - baseline[0]))
    assert abs(F[3] - 1.0) < 1e-6 and abs(P[3] - 1.0) < 1e-6
    # idf with a single reference: every reference weight is ln(2/2) = 0, so R is NaN and F becomes 0.
    P, R, F = scorer.score(["Heart normal."], ["Heart normal."], idf=True)
    assert np.isnan(R[0]) and F[0] == empty_f


def test_tokenize_matches_bert_score_rules(scorer):
    tok = scorer.tokenizer
    assert scorer.tokenize([""]) == scorer.tokenize(["  \n\t "]) == [[tok.cls_token_id, tok.sep_token_id]]
    assert scorer.tokenize(["  Heart normal. "]) == scorer.tokenize(["Heart normal."])
    ids = scorer.tokenize(["Heart normal."])[0]
    assert tok.convert_ids_to_tokens(ids[1]).startswith("Ġ")  # add_prefix_space=True
    long_ids = scorer.tokenize([" ".join(synthetic_reports(40, seed=2))])[0]
    assert len(long_ids) == 512 and long_ids[0] == tok.cls_token_id and long_ids[-1] == tok.sep_token_id


def test_runs_of_spaces_kept_by_default_collapsed_on_request(kit, scorer):
    spaced, single = "Heart  size   normal.", "Heart size normal."
    assert scorer.tokenize([spaced]) != scorer.tokenize([single])  # radeval: each extra space is a token
    collapsing = BERTScorer.from_pretrained(kit / "distilroberta-base", device="cpu", collapse_spaces=True)
    assert collapsing.tokenize([spaced]) == collapsing.tokenize(
        [single]
    )  # CXR-Report-Metric: re.sub(" +", " ")
    assert collapsing.tokenize(["a\n\nb"]) == scorer.tokenize(
        ["a\n\nb"]
    )  # only the space character collapses


def test_idf_weights_follow_get_idf_dict(scorer):
    refs = ["Heart normal.", "Heart normal.", "Lungs clear.", ""]
    weights = scorer.idf_weights(refs)
    ids = scorer.tokenize(refs)
    m = len(refs)
    heart = ids[0][1]
    assert weights(torch.tensor([heart])).item() == pytest.approx(np.log((m + 1) / 3), abs=1e-7)
    assert weights(torch.tensor([ids[0][0]])).item() == 0.0  # <s> is in every ref
    unseen = next(i for i in range(scorer.vocab_size) if all(i not in r for r in ids))
    assert weights(torch.tensor([unseen])).item() == pytest.approx(np.log(m + 1), abs=1e-7)
    plain = TokenWeights.uniform(10, [0, 2])
    assert plain(torch.arange(4)).tolist() == [0.0, 1.0, 0.0, 1.0]


def test_encode_dedups_and_caches_by_text(scorer):
    embs = scorer.encode(["Heart normal.", "Lungs clear.", "Heart normal.", " Heart normal. "])
    assert embs[0] is embs[2] is embs[3]
    assert embs[0].emb.dtype == torch.float32
    torch.testing.assert_close(embs[0].emb.norm(dim=-1), torch.ones(len(embs[0].ids)))
    hyps, refs = ["Heart normal.", "Lungs clear."], ["Lungs clear.", "Heart normal."]
    direct = scorer.score(hyps, refs)
    cached = scorer.score_from_embeddings([embs[0], embs[1]], [embs[1], embs[0]])
    for a, b in zip(direct, cached, strict=True):
        np.testing.assert_array_equal(a, b)


def test_baseline_file_is_bert_scores():
    """Our baseline constants are the distilroberta-base rows bert-score (and radeval) ship."""
    spec = importlib.util.find_spec("radeval")
    if spec is None:
        pytest.skip("radeval not installed")
    from pathlib import Path

    vendored = (
        Path(spec.origin).parent / "metrics/bertscore/_vendor/rescale_baseline/en/distilroberta-base.tsv"
    )
    assert BASELINE_EN.read_text().split() == vendored.read_text().split()
    assert read_baseline(BASELINE_EN, 5).dtype == np.float32


@pytest.mark.parametrize(
    ("hyps", "refs", "match"),
    [
        (None, ["a"], "hyps must be a list"),
        (["a", None], ["a", "b"], r"hyps\[1\] must be a string"),
        (["a"], [3], r"refs\[0\] must be a string"),
        (["a", "b"], ["a"], "same length"),
        ("abc", "abc", "hyps must be a list"),
    ],
)
def test_bad_input(scorer, hyps, refs, match):
    with pytest.raises(ValueError, match=match):
        scorer.score(hyps, refs)


def test_low_precision_mode_stays_close(kit, scorer):
    texts = synthetic_reports(24, seed=9)
    hyps, refs = texts[:12], texts[12:]
    fp32 = scorer.score(hyps, refs)[2]
    bf16 = BERTScorer.from_pretrained(kit / "distilroberta-base", device="cpu", dtype=torch.bfloat16)
    assert bf16.dtype == torch.bfloat16
    low = bf16.score(hyps, refs)[2]
    assert low.dtype == np.float32
    deviation = float(np.abs(low - fp32).max())
    print(f"\n[bertscore bf16] max |bf16 - fp32| F = {deviation:.3g}")
    assert deviation < 0.1
