"""CheXbert F1 for evaluation: the 14 CheXpert labels of hypothesis vs reference, as radeval's F1CheXbert.

Labels are binarised in mode "rrg" (positive iff the class is 1 positive or 3 uncertain; blank and negative
are 0), then scored like sklearn's ``classification_report`` on the indicator matrices with the reference as
``y_true`` and zero_division -> 0: per-condition precision/recall/F1, micro (pooled counts), macro (plain mean)
and weighted (support-weighted mean; plain mean when no condition has support) averages, for all 14
conditions and for the usual 5 (Cardiomegaly, Edema, Consolidation, Atelectasis, Pleural Effusion), plus
exact-match accuracy over those 5. Pure numpy: evaluation does not need sklearn.
"""

from __future__ import annotations

import numpy as np

CONDITIONS = (
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
    "No Finding",
)
TOP5 = ("Cardiomegaly", "Edema", "Consolidation", "Atelectasis", "Pleural Effusion")
TOP5_INDEX = tuple(CONDITIONS.index(name) for name in TOP5)  # (1, 4, 5, 7, 9)
MODES = ("rrg", "classification")


def binarize(classes: np.ndarray, mode: str = "rrg") -> np.ndarray:
    """Map head classes (0 blank, 1 positive, 2 negative, 3 uncertain) to labels.

    "rrg": 1 for positive or uncertain, else 0. "classification": 1 positive, -1 uncertain, else 0.
    """
    c = np.asarray(classes)
    if mode == "rrg":
        return np.isin(c, (1, 3)).astype(np.int64)
    if mode == "classification":
        return np.where(c == 1, 1, np.where(c == 3, -1, 0)).astype(np.int64)
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def _divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den != 0)


def _scores(tp, pred, true) -> dict[str, np.ndarray]:
    # F1 from counts, 2tp / (true + pred), as sklearn computes it (not from the rounded P and R).
    return {"precision": _divide(tp, pred), "recall": _divide(tp, true), "f1": _divide(2.0 * tp, true + pred)}


def classification_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """Per-label and averaged precision/recall/F1 of two binary indicator matrices ``[n, labels]``."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 2:
        raise ValueError(
            f"label matrices must have the same [n, labels] shape, got {y_true.shape} and {y_pred.shape}"
        )
    if not (np.isin(y_true, (0, 1)).all() and np.isin(y_pred, (0, 1)).all()):
        raise ValueError("label matrices must be binary (0/1): binarize() them in mode 'rrg' first")
    t = y_true.astype(bool)
    p = y_pred.astype(bool)
    tp = (t & p).sum(0)
    pred = p.sum(0)
    true = t.sum(0)
    per_label = _scores(tp, pred, true)
    out = {"per_label": {**per_label, "support": true}}
    micro = _scores(np.array([tp.sum()]), np.array([pred.sum()]), np.array([true.sum()]))
    out["micro"] = {k: float(v[0]) for k, v in micro.items()}
    out["macro"] = {k: float(np.mean(v)) for k, v in per_label.items()}
    weights = true.astype(np.float64)
    if weights.sum() > 0:
        out["weighted"] = {
            k: float(np.multiply(v, weights).sum() / weights.sum()) for k, v in per_label.items()
        }
    else:  # sklearn falls back to the unweighted mean when every support is 0
        out["weighted"] = dict(out["macro"])
    return out


def chexbert_f1(hyp_classes: np.ndarray, ref_classes: np.ndarray) -> dict[str, float]:
    """CheXbert F1 of hypotheses against references from their ``[n, 14]`` head classes (``CheXbert.labels``).

    Keys: ``f1_{14,5}_{micro,macro,weighted}``, ``precision_*``/``recall_*`` likewise, ``accuracy_5``
    (all 5 conditions right), and ``f1_<condition>`` per condition.
    """
    hyp = np.asarray(hyp_classes)
    ref = np.asarray(ref_classes)
    if hyp.shape != ref.shape or hyp.ndim != 2 or hyp.shape[1] != len(CONDITIONS):
        raise ValueError(
            f"expected two [n, {len(CONDITIONS)}] class matrices, got {hyp.shape} and {ref.shape}"
        )
    if len(hyp) == 0:
        raise ValueError("CheXbert F1 needs at least one report pair")
    y_pred = binarize(hyp)
    y_true = binarize(ref)
    out: dict[str, float] = {}
    for name, cols in (("14", list(range(len(CONDITIONS)))), ("5", list(TOP5_INDEX))):
        rep = classification_scores(y_true[:, cols], y_pred[:, cols])
        for avg in ("micro", "macro", "weighted"):
            for metric in ("f1", "precision", "recall"):
                out[f"{metric}_{name}_{avg}"] = rep[avg][metric]
        if name == "14":
            out.update({f"f1_{c}": float(f) for c, f in zip(CONDITIONS, rep["per_label"]["f1"], strict=True)})
    top5 = list(TOP5_INDEX)
    out["accuracy_5"] = float(np.mean((y_true[:, top5] == y_pred[:, top5]).all(axis=1)))
    return out
