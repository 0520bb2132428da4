"""Reference CheXbert: radeval 2.2.1's ``F1CheXbert``, run by ``ref_env.run_reference``.

Usage: ``python run_ref_chexbert.py IN.json OUT.json`` in an environment whose caches point
``bert-base-uncased`` and ``StanfordAIMI/RRG_scorers/chexbert.pth`` at a model directory of ours.
IN: ``{"hyps": [...], "refs": [...]}``. OUT:
- ``ref_emb``/``hyp_emb``: ``get_embeddings`` of each list (embedded separately, chunks of 64, as RadCliQ does);
- ``semb``: RadCliQ's float32 cosine of those (``CompositeMetric._compute_sub_metrics``);
- ``ref_classes``/``hyp_classes``: per-head argmax of the model's own ``cls_logits`` over the tokenizer batches
  ``get_labels`` builds, and ``ref_margin``/``hyp_margin`` (top-1 minus top-2 logit, smallest over heads);
- ``ref_ids``/``hyp_ids``: the tokenizer's ids (truncation=True, max_length=512);
- ``report``: what ``F1CheXbert.forward(hyps, refs)`` reports (5-label accuracy, sklearn classification reports
  for 14 and 5 labels), from ``get_labels`` and the same sklearn calls. ``forward`` itself cannot run here: its
  per-sample ``pe_accuracy`` line breaks on scikit-learn 1.9 (``_check_targets`` now returns a dense matrix).
- seconds per stage.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main(inp: str, out: str) -> None:
    payload = json.loads(Path(inp).read_text())
    import numpy as np
    import radeval
    import torch

    sys.modules.setdefault("RadEval", radeval)
    from radeval.metrics.f1chexbert import F1CheXbert

    torch.set_num_threads(int(payload.get("threads", torch.get_num_threads())))
    hyps, refs = payload["hyps"], payload["refs"]
    t0 = time.perf_counter()
    scorer = F1CheXbert(device="cpu", batch_size=64)
    t1 = time.perf_counter()
    ref_emb = np.vstack(scorer.get_embeddings(refs))
    hyp_emb = np.vstack(scorer.get_embeddings(hyps))
    t2 = time.perf_counter()
    dot = np.einsum("nd,nd->n", ref_emb, hyp_emb)
    norms = np.linalg.norm(ref_emb, axis=1) * np.linalg.norm(hyp_emb, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        semb = np.where(norms > 0, dot / norms, 0.0)

    def classes(texts):
        labels, margins, ids = [], [], []
        for i in range(0, len(texts), scorer.batch_size):
            enc = scorer.tokenizer(
                texts[i : i + scorer.batch_size],
                padding=True,
                truncation=True,
                max_length=512,
                return_tensors="pt",
            )
            logits = scorer.model.cls_logits(enc.input_ids, attention_mask=enc.attention_mask)
            labels += torch.stack([z.argmax(dim=1) for z in logits], dim=1).tolist()
            top2 = [z.topk(2, dim=1).values for z in logits]
            margins += torch.stack([t[:, 0] - t[:, 1] for t in top2], dim=1).min(dim=1).values.tolist()
            ids += [row[m.bool()].tolist() for row, m in zip(enc.input_ids, enc.attention_mask, strict=True)]
        return labels, margins, ids

    ref_classes, ref_margin, ref_ids = classes(refs)
    hyp_classes, hyp_margin, hyp_ids = classes(hyps)
    t3 = time.perf_counter()
    from sklearn.metrics import accuracy_score, classification_report

    refs_chexbert = scorer.get_labels(refs)
    hyps_chexbert = scorer.get_labels(hyps)
    refs5 = [np.array(r)[scorer.top5_idx] for r in refs_chexbert]
    hyps5 = [np.array(h)[scorer.top5_idx] for h in hyps_chexbert]
    accuracy = accuracy_score(refs5, hyps5)
    cr = classification_report(
        refs_chexbert, hyps_chexbert, target_names=scorer.TARGET_NAMES, output_dict=True
    )
    cr5 = classification_report(refs5, hyps5, target_names=scorer.TOP5, output_dict=True)
    t4 = time.perf_counter()
    Path(out).write_text(
        json.dumps(
            {
                "ref_emb": ref_emb.tolist(),
                "hyp_emb": hyp_emb.tolist(),
                "semb": semb.tolist(),
                "ref_classes": ref_classes,
                "hyp_classes": hyp_classes,
                "ref_margin": ref_margin,
                "hyp_margin": hyp_margin,
                "ref_ids": ref_ids,
                "hyp_ids": hyp_ids,
                "report": {"accuracy": float(accuracy), "cr": cr, "cr5": cr5},
                "seconds": {"init": t1 - t0, "embed": t2 - t1, "labels": t3 - t2, "f1": t4 - t3},
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
