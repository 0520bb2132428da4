"""PNG plots for an evaluation run: training curves from a Trainer's state, and metric bars vs a baseline.

Rendered with matplotlib's Agg backend (no display needed). Synthetic-data runs say so in every title, and
metric bars scored with the random tiny kit say so in theirs and in a note under the bars.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from reward_server.radcliq.model_files import RANDOM_WEIGHTS_LABEL, RANDOM_WEIGHTS_NOTICE
from rrg_trl.evaluation.table import TABLE_METRICS

TRAINER_STATE = "trainer_state.json"
_CHECKPOINT = re.compile(r"checkpoint-(\d+)$")
LOSS_KEYS = ("loss", "eval_loss")
REWARD_KEY = "reward"
REWARD_STD_KEY = "reward_std"
_COMPONENT_REWARD = re.compile(r"^rewards/(.+)/mean$")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def find_trainer_state(path: str | Path) -> Path:
    """``trainer_state.json`` itself, the one in a run/checkpoint directory, or the latest checkpoint's."""
    p = Path(path)
    if p.is_file():
        return p
    if (p / TRAINER_STATE).is_file():
        return p / TRAINER_STATE
    checkpoints = [
        (int(m.group(1)), c)
        for c in p.glob(f"checkpoint-*/{TRAINER_STATE}")
        if (m := _CHECKPOINT.search(c.parent.name))
    ]
    if checkpoints:
        return max(checkpoints)[1]
    raise FileNotFoundError(f"no {TRAINER_STATE} at {p} (nor in a checkpoint-*/ directory under it)")


def read_log_history(path: str | Path) -> list[dict]:
    state_path = find_trainer_state(path)
    try:
        state = json.loads(state_path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{state_path} is not valid JSON: {e}") from None
    history = state.get("log_history") if isinstance(state, dict) else None
    if not isinstance(history, list):
        raise ValueError(f"{state_path} has no 'log_history' list: not a transformers trainer state")
    return history


def _series(history: list[dict], key: str) -> tuple[list[float], list[float]]:
    points = [(h["step"], h[key]) for h in history if isinstance(h.get(key), (int, float)) and "step" in h]
    return [p[0] for p in points], [float(p[1]) for p in points]


def plot_training_curves(
    runs: Mapping[str, str | Path], out_path: str | Path, *, title: str = "Training", synthetic: bool = False
) -> Path:
    """One row per run: its loss, its (GRPO/RLOO) reward with the group std band, and the logged reward
    components (``rewards/<name>/mean``), from each run's trainer state."""
    plt = _pyplot()
    histories = {name: read_log_history(path) for name, path in runs.items()}
    if not histories:
        raise ValueError("no training runs to plot")
    fig, axes = plt.subplots(len(histories), 3, figsize=(15, 3.4 * len(histories)), squeeze=False)
    for row, (name, history) in zip(axes, histories.items(), strict=True):
        loss_ax, reward_ax, parts_ax = row
        for key in LOSS_KEYS:
            steps, values = _series(history, key)
            if steps:
                loss_ax.plot(steps, values, marker="o", ms=3, label=key)
        loss_ax.set(title=f"{name}: loss", xlabel="step", ylabel="loss")
        if loss_ax.lines:
            loss_ax.legend(fontsize=8)
        steps, values = _series(history, REWARD_KEY)
        if steps:
            reward_ax.plot(steps, values, marker="o", ms=3, color="C2", label="reward")
            std_steps, std = _series(history, REWARD_STD_KEY)
            if std_steps == steps:
                lo = [v - s for v, s in zip(values, std, strict=True)]
                hi = [v + s for v, s in zip(values, std, strict=True)]
                reward_ax.fill_between(steps, lo, hi, color="C2", alpha=0.15, label="± reward_std (groups)")
            reward_ax.set(title=f"{name}: mean reward per step", xlabel="step", ylabel="reward")
            reward_ax.legend(fontsize=8)
        else:
            _blank(reward_ax, f"{name}: no reward logged\n(supervised stage)")
        components = sorted({m.group(1) for h in history for k in h if (m := _COMPONENT_REWARD.match(k))})
        for comp in components:
            parts_ax.plot(*_series(history, f"rewards/{comp}/mean"), lw=1.2, label=comp)
        if parts_ax.lines:
            parts_ax.set(title=f"{name}: reward components (mean)", xlabel="step", ylabel="value")
            parts_ax.legend(fontsize=8, ncol=2)
        else:
            _blank(parts_ax, f"{name}: no reward components logged")
        for ax in row:
            ax.grid(alpha=0.3)
    fig.suptitle(title + (" (SYNTHETIC data)" if synthetic else ""), fontweight="bold")
    fig.tight_layout()
    out = Path(out_path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _blank(ax, text: str) -> None:
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")


def plot_metric_bars(
    metrics: Mapping[str, float | None],
    out_path: str | Path,
    *,
    run_name: str = "this run",
    baseline: Mapping[str, float | None] | None = None,
    baseline_name: str = "baseline",
    title: str = "Evaluation",
    synthetic: bool = False,
    random_weights: bool = False,
) -> Path:
    """Horizontal bars of every table metric (this run, and the baseline beside it when given).

    Higher-is-better metrics on the left, RadCliQ (lower is better) on the right; an unavailable value is
    drawn as "n/a", not as a zero bar. ``random_weights``: scored with the random tiny kit (title and note).
    """
    plt = _pyplot()
    groups = [
        [m for m in TABLE_METRICS if m.higher_is_better],
        [m for m in TABLE_METRICS if not m.higher_is_better],
    ]
    series: list[tuple[str, Mapping[str, float | None], str]] = [(run_name, metrics, "C0")]
    if baseline is not None:
        series.insert(0, (baseline_name, baseline, "0.6"))
    fig, axes = plt.subplots(1, 2, figsize=(12, 7.5), gridspec_kw={"width_ratios": [3, 1.3]})
    height = 0.8 / len(series)
    for ax, specs, subtitle in zip(
        axes, groups, ("higher is better", "RadCliQ: lower is better"), strict=True
    ):
        labels = [m.label.replace(" (lower is better)", "") for m in specs]
        for k, (name, values, color) in enumerate(series):
            ys = [i + (k - (len(series) - 1) / 2) * height for i in range(len(specs))]
            vals = [values.get(m.key) for m in specs]
            ax.barh(ys, [0.0 if v is None else v for v in vals], height=height, color=color, label=name)
            for y, v in zip(ys, vals, strict=True):
                text = "n/a" if v is None else f"{v:.3f}"
                ax.text(
                    0 if v is None else v,
                    y,
                    f" {text}",
                    va="center",
                    fontsize=7,
                    ha="left" if v is None or v >= 0 else "right",
                )
        ax.set_yticks(range(len(specs)), labels, fontsize=8)
        ax.invert_yaxis()
        ax.axvline(0, color="0.3", lw=0.8)
        ax.set_title(subtitle, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        lo, hi = ax.get_xlim()
        ax.set_xlim(lo - 0.05 * (hi - lo), hi + 0.15 * (hi - lo))  # room for the value labels
    suffix = (" (SYNTHETIC data)" if synthetic else "") + (
        f" ({RANDOM_WEIGHTS_LABEL})" if random_weights else ""
    )
    fig.suptitle(title + suffix, fontweight="bold", y=0.985)
    if random_weights:
        fig.text(0.5, 0.01, RANDOM_WEIGHTS_NOTICE, ha="center", va="bottom", color="C3", fontsize=9)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(
        handles,
        names,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.955),
        fontsize=9,
        ncol=len(series),
        frameon=False,
    )
    fig.tight_layout(rect=(0, 0.03 if random_weights else 0, 1, 0.92))
    out = Path(out_path)
    # The same words as PNG text chunks, so a copied image still carries them (and tests can read them).
    about = {"Title": title + suffix, **({"Description": RANDOM_WEIGHTS_NOTICE} if random_weights else {})}
    fig.savefig(out, dpi=110, metadata=about)
    plt.close(fig)
    return out


def run_names(paths: Sequence[str | Path]) -> dict[str, Path]:
    """Readable, unique labels for training-run paths (their directory names)."""
    names: dict[str, Path] = {}
    for raw in paths:
        p = Path(raw)
        base = p.parent.name if p.is_file() else p.name
        if _CHECKPOINT.search(base) and p.parent.name:
            base = f"{(p if p.is_dir() else p.parent).parent.name}/{base}"
        name, k = base or str(p), 2
        while name in names:
            name, k = f"{base} ({k})", k + 1
        names[name] = p
    return names
