"""RadCliQScorer: per-pair parity with radeval 2.2.1's CompositeMetric, batching/caching invariance, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reward_server import RadCliQScorer
from reward_server.radcliq.model_files import CHECKSUMS, RANDOM_WEIGHTS_NOTICE, ModelFilesError
from reward_server.radcliq.scorer import tf32_matmul_enabled
from reward_server.tinykit.corpus import synthetic_reports
from tests.parity.pairs import iu_reports, make_pairs
from tests.parity.ref_env import run_reference

FEATURES = ("radgraph", "bertscore", "semb", "bleu2")
REF_KEYS = {"radgraph": "radgraph", "bertscore": "bertscore", "semb": "semb_score"}


@pytest.fixture(scope="module")
def scorer(tiny_model_dir):
    return RadCliQScorer.from_pretrained(tiny_model_dir, device="cpu")


@pytest.fixture(scope="module")
def scorer_idf(tiny_model_dir):
    return RadCliQScorer.from_pretrained(tiny_model_dir, device="cpu", idf=True)


def _composite_pairs(reports: list[str], n: int, seed: int) -> list[tuple[str, str, str]]:
    # Whitespace-only texts crash the reference's RadGraph for the whole call (an AllenNLP assertion), so
    # they are compared per component in test_radgraph/test_bertscore/test_chexbert, not here.
    return [p for p in make_pairs(reports, n, seed) if p[2] != "whitespace"]


def _assert_parity(rows, ref, label):
    ours = np.array([r["radcliq"] for r in rows])
    theirs = np.array(ref["radcliq"])
    worst = int(np.argmax(np.abs(ours - theirs)))
    assert np.max(np.abs(ours - theirs)) <= 1e-5, f"{label}: radcliq differs most at pair {worst}"
    for key, ref_key in REF_KEYS.items():
        diff = np.abs(np.array([r[key] for r in rows]) - np.array(ref[ref_key]))
        assert diff.max() <= 1e-5, f"{label}: {key} differs by {diff.max():.2e} at pair {int(diff.argmax())}"


@pytest.mark.parity
@pytest.mark.parametrize("idf", [True, False], ids=["idf-radeval", "idf-off"])
def test_parity_synthetic(tiny_model_dir, tmp_path, scorer, scorer_idf, idf):
    pairs = _composite_pairs(synthetic_reports(120, seed=11), 72, seed=3)
    hyps, refs = [p[0] for p in pairs], [p[1] for p in pairs]
    ref = run_reference(
        "run_ref_radcliq.py", tiny_model_dir, tmp_path, {"hyps": hyps, "refs": refs, "idf": idf}
    )
    _assert_parity((scorer_idf if idf else scorer).score(hyps, refs), ref, f"synthetic idf={idf}")


@pytest.mark.parity
@pytest.mark.slow
def test_parity_iu_xray(tiny_model_dir, tmp_path, scorer_idf, iu_annotation):
    """≥200 real IU X-ray pairs (identical, edited, unrelated, empty, tiny, over-length) against radeval as shipped."""
    pairs = _composite_pairs(iu_reports(iu_annotation), 240, seed=7)
    assert len(pairs) >= 200
    hyps, refs = [p[0] for p in pairs], [p[1] for p in pairs]
    ref = run_reference(
        "run_ref_radcliq.py", tiny_model_dir, tmp_path, {"hyps": hyps, "refs": refs, "idf": True}
    )
    _assert_parity(scorer_idf.score(hyps, refs), ref, "IU X-ray idf=True")


def test_pair_scores_do_not_depend_on_the_batch(scorer):
    refs = synthetic_reports(12, seed=21)
    hyps = synthetic_reports(12, seed=22)
    together = scorer.score(hyps, refs)
    scorer.cache.clear()
    for i in (0, 5, 11):
        alone = scorer.score([hyps[i]], [refs[i]])[0]
        # Set F1 and BLEU are exact; the encoders see other padding, so float32 rounding (~1e-7) remains.
        assert (alone["radgraph"], alone["bleu2"]) == (together[i]["radgraph"], together[i]["bleu2"])
        for key in ("radcliq", "bertscore", "semb"):
            assert alone[key] == pytest.approx(together[i][key], abs=1e-5), key


def test_score_many_equals_score_and_cache_changes_nothing(scorer):
    refs = synthetic_reports(6, seed=31)
    groups = [([h, refs[0], ""], [refs[0]] * 3) for h in synthetic_reports(4, seed=32)] + [
        (refs[1:4], refs[2:5])
    ]
    scorer.cache.clear()
    many = scorer.score_many(groups)
    hits_before = scorer.cache.hits
    again = [scorer.score(h, r) for h, r in groups]
    assert scorer.cache.hits > hits_before  # second pass is served from the feature cache
    assert many == again
    assert [len(g) for g in many] == [3, 3, 3, 3, 3]


def test_identical_and_empty_pairs(scorer):
    ref = synthetic_reports(1, seed=41)[0]
    same, empty = scorer.score([ref, ""], [ref, ref])
    assert same["bertscore"] == pytest.approx(1.0, abs=1e-6) and same["semb"] == pytest.approx(1.0, abs=1e-6)
    assert same["bleu2"] == pytest.approx(1.0)
    assert empty["bertscore"] == pytest.approx(-5.5502, abs=1e-3) and empty["bleu2"] == 0.0
    assert same["radcliq"] < empty["radcliq"]


@pytest.mark.parametrize(
    ("hyps", "refs", "match"),
    [
        (["a", None], ["a", "b"], r"hyps\[1\]"),
        (["a"], ["a", "b"], "same length"),
        ("abc", ["a"], "list of strings"),
        (["a", 3], ["a", "b"], r"hyps\[1\] must be a string, got int"),
        (["a"], [b"x"], r"refs\[0\]"),
    ],
)
def test_bad_input_names_the_problem(scorer, hyps, refs, match):
    with pytest.raises(ValueError, match=match):
        scorer.score(hyps, refs)


def test_empty_request(scorer):
    assert scorer.score([], []) == []
    assert scorer.score_many([]) == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_matches_cpu(tiny_model_dir, scorer):
    """The exact float32 mode is exact on the GPU too: every component within 1e-5 of the CPU, per pair,
    over identical, edited, unrelated, empty and over-length pairs, with batching across several texts."""
    pairs = make_pairs(synthetic_reports(120, seed=61), 96, seed=62)
    hyps, refs = [p[0] for p in pairs], [p[1] for p in pairs]
    gpu = RadCliQScorer.from_pretrained(tiny_model_dir, device="cuda")
    assert gpu.info()["device"].startswith("cuda")
    cpu_rows, gpu_rows = scorer.score(hyps, refs), gpu.score(hyps, refs)
    for key in ("radcliq", *FEATURES):
        diff = np.abs(np.array([r[key] for r in gpu_rows]) - np.array([r[key] for r in cpu_rows]))
        assert diff.max() <= 1e-5, (
            f"{key}: GPU differs from CPU by {diff.max():.2e} at pair {int(diff.argmax())}"
        )


def test_bfloat16_mode_stays_close(tiny_model_dir, scorer):
    """bf16 is an opt-in speed mode; the benchmark reports its deviation on real-shaped weights."""
    fast = RadCliQScorer.from_pretrained(tiny_model_dir, device="cpu", dtype=torch.bfloat16)
    refs = synthetic_reports(16, seed=51)
    hyps = synthetic_reports(16, seed=52)
    exact, approx = scorer.score(hyps, refs), fast.score(hyps, refs)
    assert fast.info()["dtype"] == "bfloat16"

    def dev(key):
        return np.mean([abs(a[key] - b[key]) for a, b in zip(exact, approx, strict=True)])

    assert dev("bleu2") == 0.0
    assert dev("bertscore") < 0.01 and dev("radgraph") < 0.02
    # The tiny CheXbert's [CLS] vectors are spread on purpose (so s_emb varies) and are far more sensitive
    # to bf16 rounding than a trained model's; only the range is checked here.
    assert all(-1.0 <= r["semb"] <= 1.0 for r in approx)


def test_info_names_files_and_checksums(scorer):
    info = scorer.info()
    assert info["radcliq_version"] == "v1" and info["idf"] is False and info["device"] == "cpu"
    assert "StanfordAIMI/RRG_scorers/chexbert.pth" in info["files"]["checksums"]
    assert info["random_weights"] is True and info["random_weights_notice"] == RANDOM_WEIGHTS_NOTICE


def test_official_layout_scorer_is_not_labelled_random(official_layout_dir):
    from tests.reward_server.live import tiny_scorer

    info = tiny_scorer(str(official_layout_dir)).info()
    assert info["random_weights"] is False and "random_weights_notice" not in info


def test_checksum_mismatch_is_named(tiny_model_dir, tmp_path):
    import shutil

    copy = tmp_path / "models"
    shutil.copytree(tiny_model_dir, copy)
    weights = copy / "StanfordAIMI" / "RRG_scorers" / "chexbert.pth"
    weights.write_bytes(weights.read_bytes() + b"tampered")
    with pytest.raises(ModelFilesError, match=r"chexbert\.pth \(sha256 mismatch\)"):
        RadCliQScorer.from_pretrained(copy, device="cpu")
    (copy / CHECKSUMS).unlink()
    (copy / "bert-base-uncased" / "config.json").unlink()
    shutil.rmtree(copy / "distilroberta-base")
    with pytest.raises(ModelFilesError, match="missing: distilroberta-base"):
        RadCliQScorer.from_pretrained(copy, device="cpu")


def test_bad_version_fails_before_loading(tiny_model_dir):
    with pytest.raises(ValueError, match="unknown RadCliQ version"):
        RadCliQScorer.from_pretrained(tiny_model_dir, version="v9")


def test_tf32_is_detected_and_reported(scorer):
    """A trainer's TF32 setting is process-wide: the scorer tells (info, a warning on CUDA) instead of drifting."""
    before = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("highest")
        assert not tf32_matmul_enabled() or torch.backends.cuda.matmul.allow_tf32
        torch.set_float32_matmul_precision("high")
        assert tf32_matmul_enabled()
        assert scorer.info()["tf32_matmul"] is False, (
            "TF32 only concerns CUDA matmuls; this scorer is on the CPU"
        )
    finally:
        torch.set_float32_matmul_precision(before)
