"""The evaluation table: which metrics, in which order, under which names, and its markdown rendering.

One list (:data:`TABLE_METRICS`) drives the summary JSON, the markdown table and the bar plots, so a metric
cannot appear in one output and be missing from another. Keys are the ones the summary JSON and the
per-sample JSONL use; NLG keys follow pycocoevalcap / R2Gen (``BLEU_1`` ... ``CIDEr``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from reward_server.radcliq.model_files import RANDOM_WEIGHTS_LABEL, RANDOM_WEIGHTS_NOTICE


@dataclass(frozen=True)
class MetricSpec:
    key: str
    label: str
    group: str
    higher_is_better: bool = True


TABLE_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("BLEU_1", "BLEU-1", "NLG"),
    MetricSpec("BLEU_2", "BLEU-2", "NLG"),
    MetricSpec("BLEU_3", "BLEU-3", "NLG"),
    MetricSpec("BLEU_4", "BLEU-4", "NLG"),
    MetricSpec("METEOR", "METEOR", "NLG"),
    MetricSpec("ROUGE_L", "ROUGE-L", "NLG"),
    MetricSpec("CIDEr", "CIDEr", "NLG"),
    MetricSpec("radgraph_partial", "RadGraph F1 (partial, RG_ER)", "Clinical"),
    MetricSpec("radgraph_combined", "RadGraph F1 (combined, RadCliQ)", "Clinical"),
    MetricSpec("chexbert_f1_14_micro", "CheXbert F1 14 micro", "Clinical"),
    MetricSpec("chexbert_f1_14_macro", "CheXbert F1 14 macro", "Clinical"),
    MetricSpec("chexbert_f1_5_micro", "CheXbert F1 5 micro", "Clinical"),
    MetricSpec("chexbert_f1_5_macro", "CheXbert F1 5 macro", "Clinical"),
    MetricSpec("bertscore", "BERTScore (rescaled F)", "Semantic"),
    MetricSpec("semb", "s_emb (CheXbert cosine)", "Semantic"),
    MetricSpec("radcliq_v0", "RadCliQ-v0 (lower is better)", "Composite", higher_is_better=False),
    MetricSpec("radcliq_v1", "RadCliQ-v1 (lower is better)", "Composite", higher_is_better=False),
)
TABLE_KEYS = tuple(m.key for m in TABLE_METRICS)
SYNTHETIC_NOTE = "SYNTHETIC data: numbers show that the pipeline runs, not clinical quality"


def fmt_value(value: float | None, digits: int = 4) -> str:
    """A metric for a table or a summary line: ``digits`` decimals, or n/a."""
    if value is None:
        return "n/a"
    if not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}f}"


def fmt_change(value: float | None, base: float | None, higher_is_better: bool, digits: int = 4) -> str:
    """``value - base`` signed, marked (better) or (worse); n/a when either is missing."""
    if value is None or base is None:
        return "n/a"
    delta = value - base
    better = delta > 0 if higher_is_better else delta < 0
    return f"{delta:+.{digits}f}" + (" (better)" if better else " (worse)" if delta else "")


def render_markdown(
    metrics: Mapping[str, float | None],
    *,
    title: str,
    unavailable: Mapping[str, str] | None = None,
    baseline: Mapping[str, float | None] | None = None,
    baseline_name: str = "baseline",
    run_name: str = "this run",
    synthetic: bool = False,
    notes: list[str] | None = None,
    digits: int = 4,
    random_weights: bool = False,
) -> str:
    """A GitHub markdown table of :data:`TABLE_METRICS`; with ``baseline`` also its column and the change.

    Unavailable metrics print ``n/a`` and their reason is listed under the table, never a made-up number.
    ``random_weights``: the scorer models are the random tiny kit, said in the title and a note.
    """
    unavailable = dict(unavailable or {})
    heading = f"# {title}" + (f" ({SYNTHETIC_NOTE.split(':')[0]})" if synthetic else "")
    heading += f" ({RANDOM_WEIGHTS_LABEL})" if random_weights else ""
    lines = [heading, ""]
    if synthetic:
        lines += [f"> {SYNTHETIC_NOTE}.", ""]
    if random_weights:
        lines += [f"> {RANDOM_WEIGHTS_NOTICE}.", ""]
    header = ["Group", "Metric", run_name]
    if baseline is not None:
        header += [baseline_name, "change"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(["---", "---"] + ["---:"] * (len(header) - 2)) + "|")
    for spec in TABLE_METRICS:
        value = metrics.get(spec.key)
        row = [spec.group, spec.label, fmt_value(value, digits)]
        if baseline is not None:
            base = baseline.get(spec.key)
            row += [fmt_value(base, digits), fmt_change(value, base, spec.higher_is_better, digits)]
        lines.append("| " + " | ".join(row) + " |")
    reasons = [f"- {key}: {why}" for key, why in unavailable.items() if key in TABLE_KEYS]
    if reasons:
        lines += ["", "Unavailable:", *reasons]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"
