"""The markdown table: every metric row, n/a with its reason, baseline change, synthetic label."""

from __future__ import annotations

from reward_server.radcliq.model_files import RANDOM_WEIGHTS_LABEL, RANDOM_WEIGHTS_NOTICE
from rrg_trl.evaluation.table import SYNTHETIC_NOTE, TABLE_METRICS, render_markdown


def _rows(text: str) -> dict[str, list[str]]:
    """Metric label -> the cells after it."""
    out = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0] not in ("Group", "---"):
            out[cells[1]] = cells[2:]
    return out


def test_every_metric_has_a_row_and_missing_ones_say_why():
    metrics = {m.key: 0.5 for m in TABLE_METRICS}
    metrics["METEOR"] = None
    text = render_markdown(metrics, title="run", unavailable={"METEOR": "no Java runtime"})
    rows = _rows(text)
    assert [m.label for m in TABLE_METRICS] == list(rows)
    assert rows["METEOR"] == ["n/a"]
    assert rows["BLEU-1"] == ["0.5000"]
    assert "- METEOR: no Java runtime" in text
    assert "SYNTHETIC" not in text


def test_baseline_change_respects_the_direction_of_each_metric():
    metrics = {"BLEU_1": 0.30, "radcliq_v1": 1.20, "CIDEr": 0.1}
    baseline = {"BLEU_1": 0.25, "radcliq_v1": 1.50, "CIDEr": None}
    rows = _rows(
        render_markdown(metrics, title="rl", baseline=baseline, baseline_name="sft", run_name="grpo")
    )
    assert rows["BLEU-1"] == ["0.3000", "0.2500", "+0.0500 (better)"]
    assert rows["RadCliQ-v1 (lower is better)"] == ["1.2000", "1.5000", "-0.3000 (better)"]
    assert rows["CIDEr"] == ["0.1000", "n/a", "n/a"]
    assert rows["BLEU-2"] == ["n/a", "n/a", "n/a"]


def test_synthetic_runs_say_so_in_the_title_and_a_note():
    text = render_markdown({}, title="demo", synthetic=True)
    first = text.splitlines()[0]
    assert first.startswith("# demo") and "SYNTHETIC" in first
    assert SYNTHETIC_NOTE in text


def test_random_scorer_models_are_said_in_the_title_and_a_note():
    text = render_markdown({}, title="eval", random_weights=True)
    assert text.splitlines()[0] == f"# eval ({RANDOM_WEIGHTS_LABEL})"
    assert f"> {RANDOM_WEIGHTS_NOTICE}." in text.splitlines()
    assert "RANDOM" not in render_markdown({}, title="eval")
