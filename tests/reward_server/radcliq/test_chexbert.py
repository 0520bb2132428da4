"""CheXbert: parity with radeval 2.2.1's F1CheXbert on the same random chexbert.pth, loading and input checks.

Parity runs the reference in a clean subprocess (tests/parity/run_ref_chexbert.py): token ids, [CLS] embeddings
(refs and hyps embedded separately in chunks of 64, as RadCliQ does), s_emb, head classes and the CheXbert F1
report, over real IU X-ray pairs (skipped without ../shared) and synthetic pairs (always).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json

import numpy as np
import pytest
import torch

from reward_server.radcliq.chexbert import CheXbert
from reward_server.radcliq.model_files import CHEXBERT_BACKBONE, CHEXBERT_FILE, SCORERS_REPO
from reward_server.tinykit.corpus import synthetic_reports
from rrg_trl.metrics.chexbert_f1 import TOP5_INDEX, chexbert_f1
from tests.parity.pairs import iu_reports, make_pairs
from tests.parity.ref_env import run_reference

TOL = 1e-5
NEAR_TIE = 1e-5  # a head whose top two logits are this close may flip under float32 rounding
needs_radeval = pytest.mark.skipif(
    importlib.util.find_spec("radeval") is None, reason="radeval not installed"
)


@pytest.fixture(scope="module")
def kit(tiny_model_dir):
    return tiny_model_dir


@pytest.fixture(scope="module")
def model(kit):
    return CheXbert.from_pretrained(kit / SCORERS_REPO / CHEXBERT_FILE, kit / CHEXBERT_BACKBONE, device="cpu")


@pytest.fixture(scope="module")
def reference(kit, request, tmp_path_factory):
    """One reference subprocess per parity set (the script embeds one pair list)."""
    sets = {"synthetic": make_pairs(synthetic_reports(200, seed=7), 120, seed=1)}
    with contextlib.suppress(pytest.skip.Exception):  # no ../shared: synthetic pairs only
        sets["iu"] = make_pairs(iu_reports(request.getfixturevalue("iu_annotation")), 240, seed=0)
    hyps = [h for pairs in sets.values() for h, _, _ in pairs]
    refs = [r for pairs in sets.values() for _, r, _ in pairs]
    out = run_reference(
        "run_ref_chexbert.py", kit, tmp_path_factory.mktemp("ref-cache"), {"hyps": hyps, "refs": refs}
    )
    return sets, hyps, refs, out


def _check_parity(model, pairs, out, rows, label):
    hyps = [h for h, _, _ in pairs]
    refs = [r for _, r, _ in pairs]
    assert model.tokenize(refs) == [out["ref_ids"][i] for i in rows]
    assert model.tokenize(hyps) == [out["hyp_ids"][i] for i in rows]
    ref_emb, hyp_emb = model.embed(refs), model.embed(hyps)
    assert ref_emb.dtype == np.float32 and ref_emb.shape == (len(refs), model.bert.config.hidden_size)
    emb_diff = max(
        np.abs(ref_emb - np.asarray(out["ref_emb"], dtype=np.float32)[rows]).max(),
        np.abs(hyp_emb - np.asarray(out["hyp_emb"], dtype=np.float32)[rows]).max(),
    )
    semb = model.semb(ref_emb, hyp_emb)
    semb_diff = np.abs(semb - np.asarray(out["semb"], dtype=np.float32)[rows])
    assert semb.dtype == np.float32 and (semb_diff <= TOL).all(), np.flatnonzero(semb_diff > TOL)[:10]
    assert emb_diff <= TOL

    ours = np.concatenate([model.labels_from_embeddings(ref_emb), model.labels_from_embeddings(hyp_emb)])
    theirs = np.concatenate([np.asarray(out["ref_classes"])[rows], np.asarray(out["hyp_classes"])[rows]])
    margin = np.concatenate([np.asarray(out["ref_margin"])[rows], np.asarray(out["hyp_margin"])[rows]])
    differ = (ours != theirs).any(axis=1)
    assert not differ[margin >= NEAR_TIE].any(), np.flatnonzero(differ & (margin >= NEAR_TIE))[:10]
    print(
        f"\n[chexbert parity {label}] {len(pairs)} pairs: max |emb diff| {emb_diff:.3g}, "
        f"max |s_emb diff| {semb_diff.max():.3g}, label rows differing {int(differ.sum())} "
        f"(near ties < {NEAR_TIE}: {int((margin < NEAR_TIE).sum())})"
    )
    return ours[: len(refs)], ours[len(refs) :]


@needs_radeval
@pytest.mark.parity
def test_parity_iu(model, reference, iu_annotation):
    sets, _, _, out = reference
    offset = len(sets["synthetic"])
    pairs = sets["iu"]
    assert len(pairs) >= 200 and {k for _, _, k in pairs} >= {
        "identical",
        "edited",
        "unrelated",
        "empty",
        "long",
    }
    _check_parity(model, pairs, out, list(range(offset, offset + len(pairs))), "iu")
    assert max(len(ids) for ids in out["hyp_ids"]) == 512  # over-length hypotheses were truncated, [SEP] kept


@needs_radeval
@pytest.mark.parity
def test_parity_synthetic_and_f1_report(model, reference):
    sets, hyps, refs, out = reference
    pairs = sets["synthetic"]
    _check_parity(model, pairs, out, list(range(len(pairs))), "synthetic")
    # CheXbert F1 over the whole payload from our labels vs the reference's sklearn report on its labels.
    ours = chexbert_f1(model.labels(hyps), model.labels(refs))
    report = out["report"]
    expected = {"accuracy_5": report["accuracy"]}
    for name, cr in (("14", report["cr"]), ("5", report["cr5"])):
        for avg in ("micro", "macro", "weighted"):
            expected[f"f1_{name}_{avg}"] = cr[f"{avg} avg"]["f1-score"]
            expected[f"precision_{name}_{avg}"] = cr[f"{avg} avg"]["precision"]
            expected[f"recall_{name}_{avg}"] = cr[f"{avg} avg"]["recall"]
    for key, value in expected.items():
        assert ours[key] == pytest.approx(value, abs=1e-12), key
    print(f"\n[chexbert f1 parity] {json.dumps({k: round(v, 4) for k, v in expected.items() if 'f1' in k})}")


def test_labels_are_varied(model):
    """The kit's heads must not say "blank" for everything, or CheXbert F1 tests are vacuous."""
    labels = model.labels(synthetic_reports(300, seed=12))
    assert labels.shape == (300, 14) and labels.dtype == np.int64
    for head in range(13):
        assert len(np.unique(labels[:, head])) >= 3, head
    assert set(np.unique(labels[:, 13])) == {0, 1}
    positive = np.isin(labels[:, list(TOP5_INDEX)], (1, 3))
    assert 0.1 < positive.mean() < 0.7


def test_semb_varies_and_is_exact_float32(model):
    reports = synthetic_reports(40, seed=13)
    emb = model.embed(reports + ["", "   "])
    assert np.array_equal(emb[-1], emb[-2])  # empty and whitespace are both [CLS][SEP]
    semb = model.semb(emb[:20], emb[20:40])
    assert semb.dtype == np.float32 and 0.0 < np.median(semb) < 0.95
    assert np.all(model.semb(emb[:5], emb[:5]) > 0.9999)
    zero = np.zeros((1, emb.shape[1]), dtype=np.float32)
    assert model.semb(zero, emb[:1])[0] == 0.0  # no eps: 0 when a norm is 0
    a, b = emb[:20], emb[20:40]
    manual = np.einsum("nd,nd->n", a, b) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    np.testing.assert_array_equal(semb, manual)


def test_embed_dedups_and_batches(model):
    reports = synthetic_reports(10, seed=14)
    texts = reports + reports[::-1] + [" ".join(synthetic_reports(60, seed=15))]
    emb = model.embed(texts)
    np.testing.assert_array_equal(emb[:10], emb[10:20][::-1])
    single = np.stack([model.embed([t])[0] for t in texts[:3]])
    np.testing.assert_allclose(emb[:3], single, rtol=0, atol=TOL)
    assert len(model.tokenize([texts[-1]])[0]) == 512
    assert model.embed([]).shape == (0, model.bert.config.hidden_size)
    assert model.labels([]).shape == (0, 14)


def test_checkpoint_errors_name_the_keys(kit, tmp_path):
    weights = kit / SCORERS_REPO / CHEXBERT_FILE
    state = torch.load(weights, weights_only=True)["model_state_dict"]
    broken = dict(state)
    del broken["module.linear_heads.13.bias"]
    broken["module.extra.weight"] = torch.zeros(1)
    path = tmp_path / "broken.pth"
    torch.save({"model_state_dict": broken}, path)
    with pytest.raises(
        ValueError, match=r"missing keys: linear_heads\.13\.bias.*unexpected keys: extra\.weight"
    ):
        CheXbert.from_pretrained(path, kit / CHEXBERT_BACKBONE, device="cpu")
    torch.save(state, path)  # without the {"model_state_dict": ...} wrapper
    with pytest.raises(ValueError, match="model_state_dict"):
        CheXbert.from_pretrained(path, kit / CHEXBERT_BACKBONE, device="cpu")
    resized = dict(state)
    resized["module.linear_heads.0.weight"] = torch.zeros(3, state["module.linear_heads.0.weight"].shape[1])
    torch.save({"model_state_dict": resized}, path)
    with pytest.raises(ValueError, match=r"shape mismatches.*linear_heads\.0\.weight"):
        CheXbert.from_pretrained(path, kit / CHEXBERT_BACKBONE, device="cpu")


def test_official_key_layout(kit):
    state = torch.load(kit / SCORERS_REPO / CHEXBERT_FILE, weights_only=True)["model_state_dict"]
    assert all(k.startswith("module.") for k in state)
    assert "module.bert.pooler.dense.weight" in state and not any("position_ids" in k for k in state)
    assert [state[f"module.linear_heads.{i}.weight"].shape[0] for i in range(14)] == [4] * 13 + [2]


@pytest.mark.parametrize("texts", [None, "a report", ["ok", None], ["ok", 3]])
def test_bad_input(model, texts):
    with pytest.raises(ValueError, match=r"texts"):
        model.embed(texts)


def test_low_precision_mode_stays_close(kit, model):
    reports = synthetic_reports(16, seed=16)
    bf16 = CheXbert.from_pretrained(
        kit / SCORERS_REPO / CHEXBERT_FILE, kit / CHEXBERT_BACKBONE, device="cpu", dtype=torch.bfloat16
    )
    assert bf16.dtype == torch.bfloat16
    low, full = bf16.embed(reports), model.embed(reports)
    assert low.dtype == np.float32
    semb_dev = np.abs(bf16.semb(low[:8], low[8:]) - model.semb(full[:8], full[8:])).max()
    print(f"\n[chexbert bf16] max |bf16 - fp32| s_emb = {semb_dev:.3g}")
    assert semb_dev < 0.05
