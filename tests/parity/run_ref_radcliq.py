"""Reference side of the RadCliQ parity tests: radeval 2.2.1's ``CompositeMetric`` as shipped.

Run by ``tests.parity.ref_env.run_reference`` in a clean subprocess whose caches point at our model dir.
Input JSON: ``{"hyps": [...], "refs": [...], "idf": bool}``. radeval's RadCliQ computes BERTScore with
``idf=True`` over the references of the call; with ``"idf": false`` the scorer is built the same way but with
idf off (the CXR-Report-Metric / ReXrank setting), nothing else changed. Output: per-pair ``radcliq`` and the
four features as the reference computed them, and the wall time.
"""

from __future__ import annotations

import json
import sys
import time


def main(inp: str, out: str) -> None:
    import radeval

    sys.modules.setdefault("RadEval", radeval)
    from radeval.metrics.RadCliQv1.radcliq import CompositeMetric

    with open(inp) as f:
        payload = json.load(f)
    metric = CompositeMetric()
    if not payload.get("idf", True):
        from radeval.metrics.bertscore._vendor import BERTScorer

        metric._bert_scorer = BERTScorer(
            model_type="distilroberta-base",
            num_layers=5,
            rescale_with_baseline=True,
            idf=False,
            batch_size=64,
            lang="en",
            device=None,
        )
        metric._get_bert_scorer = lambda refs: metric._bert_scorer
    # Keep the features predict() computes, to report them beside the composite (computed once).
    compute, parts = metric._compute_sub_metrics, {}
    metric._compute_sub_metrics = lambda refs, hyps: parts.setdefault("features", compute(refs, hyps))
    start = time.perf_counter()
    _, scores = metric.predict(payload["refs"], payload["hyps"])
    seconds = time.perf_counter() - start
    features = parts["features"]
    result = {
        k: [float(v) for v in features[k]] for k in ("radgraph", "bertscore", "semb_score", "bleu_score")
    }
    result["radcliq"] = [float(v) for v in scores]
    result["seconds"] = seconds
    with open(out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
