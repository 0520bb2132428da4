"""Reference side of the RadGraph parity tests: radeval 2.2.1's vendored RadGraph, F1 and reward code.

Run by ``tests.parity.ref_env.run_reference`` in a clean subprocess whose caches point at our model dir.
Input JSON: ``{"texts": [...], "pairs": [[ref_index, hyp_index], ...]}``. Output JSON:

- ``annotations[i]``: ``RadGraph(model_type="radgraph")([texts[i]])["0"]``, or None when the reference fails
  on that report (``errors[i]`` then holds the exception; e.g. a whitespace-only report crashes AllenNLP);
- ``combined[p]``: RadCliQ's ``(entity F1 + relation F1) / 2`` from ``RadCliQv1/radcliq.py`` for pair p, a
  failed annotation counting as ``{}`` as CompositeMetric's ``.get(str(i), {})`` does;
- ``rewards[p]``: ``F1RadGraph(reward_level="all")``'s (simple, partial, complete) for pair p, computed by
  F1RadGraph.forward itself over the annotations above, or None when a side failed.
"""

from __future__ import annotations

import json
import sys
import traceback


def main(inp: str, out: str) -> None:
    import radeval

    sys.modules.setdefault("RadEval", radeval)
    import torch
    from radeval.metrics.RadCliQv1.radcliq import compute_f1, extract_entities, extract_relations
    from radeval.metrics.radgraph import F1RadGraph, RadGraph

    with open(inp) as f:
        payload = json.load(f)
    texts, pairs = payload["texts"], payload.get("pairs", [])
    radgraph = RadGraph(model_type="radgraph", cuda=-1)
    annotations, errors = [], []
    for text in texts:
        try:
            annotations.append(radgraph([text])["0"])
            errors.append(None)
        except Exception as exc:  # noqa: BLE001 - recorded and compared by the test
            annotations.append(None)
            errors.append(f"{type(exc).__name__}: {exc}".strip() or traceback.format_exc(limit=1))

    combined = []
    for r, h in pairs:
        ref, hyp = annotations[r] or {}, annotations[h] or {}
        entity = compute_f1(extract_entities(ref), extract_entities(hyp))
        relation = compute_f1(extract_relations(ref), extract_relations(hyp))
        combined.append((entity + relation) / 2)

    # F1RadGraph.forward over the cached annotations (it annotates by calling self.radgraph(list)).
    scorer = F1RadGraph.__new__(F1RadGraph)
    torch.nn.Module.__init__(scorer)
    scorer.reward_level = "all"
    cache = {t: a for t, a in zip(texts, annotations, strict=True) if a is not None}
    scorer.radgraph = lambda reports: {str(i): cache[t] for i, t in enumerate(reports)}
    usable = [p for p, (r, h) in enumerate(pairs) if texts[r] in cache and texts[h] in cache]
    rewards = [None] * len(pairs)
    if usable:
        refs = [texts[pairs[p][0]] for p in usable]
        hyps = [texts[pairs[p][1]] for p in usable]
        _, (simple, partial, complete), _, _ = scorer(refs=refs, hyps=hyps)
        for k, p in enumerate(usable):
            rewards[p] = [float(simple[k]), float(partial[k]), float(complete[k])]

    with open(out, "w") as f:
        json.dump({"annotations": annotations, "errors": errors, "combined": combined, "rewards": rewards}, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
