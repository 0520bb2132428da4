"""F1 between two RadGraph annotations: RadCliQ's "combined" score and F1RadGraph's reward levels.

Both work on the dicts :meth:`RadGraph.annotate` returns and follow their references' set rules exactly
(radeval 2.2.1's ``RadCliQv1/radcliq.py`` ``compute_f1`` for the combined score, its vendored ``F1RadGraph`` for
the levels): matching is exact and case-sensitive on the space-joined entity tokens, duplicates collapse, and
an empty set gives precision/recall 0 — so two reports without relations score relation F1 0, not 1.
"""

from __future__ import annotations

LEVELS = ("simple", "partial", "complete", "all")


def set_f1(reference: set, hypothesis: set) -> float:
    """F1 of two sets, in the reference's operation order (P = tp/|hyp|, R = tp/|ref|, 0 for empty sets)."""
    tp = len(reference & hypothesis)
    precision = tp / len(hypothesis) if hypothesis else 0.0
    recall = tp / len(reference) if reference else 0.0
    return 2 * precision * recall / (precision + recall) if (precision + recall) else 0.0


def entity_set(annotation: dict) -> set[tuple[str, str]]:
    """``{(tokens, label)}``. The reference keys on ``tuple(tokens)``, a tuple of characters: same equality."""
    return {(e["tokens"], e["label"]) for e in annotation.get("entities", {}).values()}


def relation_set(annotation: dict) -> set[tuple[tuple[str, str], tuple[str, str], str]]:
    """``{((src tokens, src label), (tgt tokens, tgt label), relation)}``; dangling targets are skipped."""
    entities = annotation.get("entities", {})
    out = set()
    for e in entities.values():
        for relation, key in e.get("relations", []):
            target = entities.get(key)
            if target:
                out.add(((e["tokens"], e["label"]), (target["tokens"], target["label"]), relation))
    return out


def radgraph_combined(ref_ann: dict, hyp_ann: dict) -> float:
    """RadCliQ's RadGraph feature: (entity F1 + relation F1) / 2. A failed annotation may be passed as {}."""
    entity = set_f1(entity_set(ref_ann), entity_set(hyp_ann))
    relation = set_f1(relation_set(ref_ann), relation_set(hyp_ann))
    return (entity + relation) / 2


def _level_set(annotation: dict, level: str) -> set:
    entities = annotation["entities"]
    out = set()
    for e in entities.values():
        if not e["relations"] or level == "simple":
            out.add((e["tokens"], e["label"]))
        elif level == "partial":
            out.add((e["tokens"], e["label"], True))
        else:  # complete: one lower-cased item per relation
            out.update(
                (e["tokens"].lower(), e["label"], rel, entities[key]["tokens"].lower())
                for rel, key in e["relations"]
            )
    return out


def radgraph_reward(
    ref_ann: dict,
    hyp_ann: dict,
    level: str = "partial",
    *,
    ref_text: str | None = None,
    hyp_text: str | None = None,
) -> float | tuple[float, float, float]:
    """F1RadGraph's per-pair reward at ``level`` simple / partial (RG_ER) / complete, or "all" (a tuple).

    Pair rules of the reference: when a raw text is given and has length 0 the pair scores 0 (F1RadGraph
    never annotates it; note that :meth:`RadGraph.annotate` reads "" as "None"), and a pair where either
    side has no entities scores 0.
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    zero = (0.0, 0.0, 0.0) if level == "all" else 0.0
    if (ref_text is not None and len(ref_text) == 0) or (hyp_text is not None and len(hyp_text) == 0):
        return zero
    if not ref_ann.get("entities") or not hyp_ann.get("entities"):
        return zero
    if level == "all":
        return tuple(set_f1(_level_set(ref_ann, lv), _level_set(hyp_ann, lv)) for lv in LEVELS[:3])
    return set_f1(_level_set(ref_ann, level), _level_set(hyp_ann, level))
