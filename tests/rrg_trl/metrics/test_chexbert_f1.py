"""CheXbert F1 against sklearn's classification_report / accuracy_score, exactly as radeval's F1CheXbert calls them."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from rrg_trl.metrics.chexbert_f1 import (
    CONDITIONS,
    TOP5,
    TOP5_INDEX,
    binarize,
    chexbert_f1,
    classification_scores,
)

sklearn_metrics = pytest.importorskip("sklearn.metrics")


def _sklearn(hyp_classes, ref_classes) -> dict[str, float]:
    """What F1CheXbert.forward reports, computed with sklearn on the rrg-binarised labels."""
    refs = [[1 if c in {1, 3} else 0 for c in row] for row in np.asarray(ref_classes).tolist()]
    hyps = [[1 if c in {1, 3} else 0 for c in row] for row in np.asarray(hyp_classes).tolist()]
    refs5 = [np.array(r)[list(TOP5_INDEX)] for r in refs]
    hyps5 = [np.array(h)[list(TOP5_INDEX)] for h in hyps]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zero_division="warn" -> 0, as in the reference
        cr = sklearn_metrics.classification_report(
            refs, hyps, target_names=list(CONDITIONS), output_dict=True
        )
        cr5 = sklearn_metrics.classification_report(refs5, hyps5, target_names=list(TOP5), output_dict=True)
        out = {"accuracy_5": sklearn_metrics.accuracy_score(refs5, hyps5)}
    for name, rep in (("14", cr), ("5", cr5)):
        for avg in ("micro", "macro", "weighted"):
            for metric, key in (("f1", "f1-score"), ("precision", "precision"), ("recall", "recall")):
                out[f"{metric}_{name}_{avg}"] = rep[f"{avg} avg"][key]
    out.update({f"f1_{c}": cr[c]["f1-score"] for c in CONDITIONS})
    return out


def _random_classes(rng, n, p_blank):
    four = rng.choice(4, size=(n, 13), p=[p_blank, *(np.full(3, (1 - p_blank) / 3))])
    two = rng.choice(2, size=(n, 1), p=[p_blank, 1 - p_blank])
    return np.concatenate([four, two], axis=1)


@pytest.mark.parametrize("seed", range(12))
def test_matches_sklearn_on_random_labels(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 80))
    hyp = _random_classes(rng, n, p_blank=[0.2, 0.6, 0.95][seed % 3])
    ref = _random_classes(rng, n, p_blank=[0.5, 0.9, 0.99][seed % 3])
    ours, expected = chexbert_f1(hyp, ref), _sklearn(hyp, ref)
    assert ours.keys() == expected.keys()
    for key, value in expected.items():
        assert ours[key] == pytest.approx(value, abs=1e-12), key


@pytest.mark.parametrize(
    ("hyp", "ref"),
    [
        (np.zeros((5, 14), int), np.zeros((5, 14), int)),  # nothing anywhere: every score 0
        (np.ones((5, 14), int), np.zeros((5, 14), int)),  # predictions without support
        (np.zeros((5, 14), int), np.full((5, 14), 3)),  # uncertain counts as positive
        (np.full((3, 14), 2), np.full((3, 14), 1)),  # negative is 0 in mode rrg
        (np.array([[1] * 14]), np.array([[1] * 14])),  # a single perfect pair
    ],
)
def test_matches_sklearn_on_degenerate_labels(hyp, ref):
    hyp[:, 13] = np.minimum(hyp[:, 13], 1)
    ref[:, 13] = np.minimum(ref[:, 13], 1)
    ours, expected = chexbert_f1(hyp, ref), _sklearn(hyp, ref)
    for key, value in expected.items():
        assert ours[key] == pytest.approx(value, abs=1e-12), key


def test_binarize_modes():
    classes = np.array([[0, 1, 2, 3]])
    assert binarize(classes).tolist() == [[0, 1, 0, 1]]
    assert binarize(classes, "classification").tolist() == [[0, 1, 0, -1]]
    with pytest.raises(ValueError, match="mode"):
        binarize(classes, "other")


def test_bad_input():
    with pytest.raises(ValueError, match=r"\[n, 14\]"):
        chexbert_f1(np.zeros((2, 13)), np.zeros((2, 13)))
    with pytest.raises(ValueError, match="at least one"):
        chexbert_f1(np.zeros((0, 14)), np.zeros((0, 14)))
    with pytest.raises(ValueError, match="binary"):
        classification_scores(np.full((2, 3), 2), np.zeros((2, 3)))
