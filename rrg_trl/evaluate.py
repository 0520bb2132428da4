"""Evaluate a policy (or existing outputs) on a split with the full report-generation table.

    rrg-trl evaluate --model_name_or_path outputs/grpo --reward_model_dir models/scorer \\
        --dataset iu_xray --annotation_path ../shared/data/iu_xray/r2gen_annotation.json --image_root ... \\
        --baseline outputs/eval-sft --training_runs outputs/sft outputs/grpo
    rrg-trl evaluate --hypotheses_file outputs/eval/samples.jsonl --reward_model_dir models/scorer

Batched generation (progress bar) with the policy loaded from a path (a full model, or a LoRA adapter on its
base), or hypotheses from a JSONL file; then BLEU-1..4, METEOR, ROUGE-L, CIDEr, RadGraph F1 (partial /
RG_ER and combined), CheXbert F1 (14 and 5 classes, micro and macro), BERTScore, s_emb and RadCliQ v0/v1,
all through the code the reward uses (:mod:`rrg_trl.evaluation.scoring`). Outputs in ``output_dir``:
``samples.jsonl`` (one row per report), ``summary.json``, ``table.md``, ``metrics.png`` (bars; beside a
baseline run's when ``--baseline`` is given) and ``training_curves.png`` (loss and reward from the trainer
state of each ``--training_runs`` entry); with ``--sampled_reward_samples K`` also ``sampled.jsonl`` (K
sampled reports per study and their reward, whose mean is the quantity RL maximises). Synthetic data is
labelled as such in every one of them, and so are scores from the random tiny scorer kit (``rrg-reward
make-tiny``; :data:`reward_server.radcliq.model_files.RANDOM_WEIGHTS_NOTICE`). Decoding: greedy, beam search with n-gram
blocking (``--num_beams 3 --no_repeat_ngram_size 3``, as R2Gen-family papers) or sampling, stated under the
table, which also gives degeneracy figures; ``--image_ablation shuffle`` also writes each study's report from
another study's image and reports the reward gap (``image_ablation.jsonl``): the direct test that the policy
reads the X-ray.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reward_server.env import RewardSettings
from reward_server.radcliq.composite import to_reward
from reward_server.radcliq.model_files import RANDOM_WEIGHTS_NOTICE, random_weights_fields
from rrg_trl.data import DataConfig, load_dataset_from_config
from rrg_trl.data.data_config import arg, field_help
from rrg_trl.evaluation.hypotheses import EvalSample, samples_from_jsonl
from rrg_trl.evaluation.table import SYNTHETIC_NOTE, TABLE_KEYS, fmt_value, render_markdown
from rrg_trl.metrics.degeneracy import DEGENERACY_KEYS

logger = logging.getLogger(__name__)

SAMPLES_FILE = "samples.jsonl"
SUMMARY_FILE = "summary.json"
TABLE_FILE = "table.md"
METRICS_PLOT = "metrics.png"
TRAINING_PLOT = "training_curves.png"
SAMPLED_FILE = "sampled.jsonl"
ABLATION_FILE = "image_ablation.jsonl"
DEGENERACY_FIGURES = (*DEGENERACY_KEYS, "distinct_reports")

SOURCE_DESCRIPTIONS = {
    "synthetic": "synthetic reports with images drawn from them",
    "iu_xray_text+synthetic_image": "real IU X-ray report text with synthesized images",
}


def _aliased(name: str, old: str) -> Any:
    """The :class:`RewardSettings` field ``name``, also spelled ``--old`` (HfArgumentParser's ``aliases``)."""
    inherited = RewardSettings.__dataclass_fields__[name]
    return field(default=None, metadata={**inherited.metadata, "aliases": [f"--{old}"]})


@dataclass
class EvaluateConfig(RewardSettings):
    """What to evaluate, how to generate, how to score (the reward settings: in-process scorer directory or
    server URLs), and where to write (field names avoid DataConfig's)."""

    model_name_or_path: str | None = arg(
        None, "Policy to generate with: a model directory or a LoRA adapter directory."
    )
    adapter_path: str | None = arg(None, "LoRA adapter to put on model_name_or_path.")
    hypotheses_file: str | None = arg(None, "Score existing outputs instead of generating: a JSONL file.")
    hypothesis_key: str = arg("hypothesis", "Hypothesis field of hypotheses_file.")
    reference_key: str = arg("reference", "Reference field of hypotheses_file (else looked up by 'id').")
    eval_split: str = arg("test", "Split to evaluate (train, val, test).")
    # The reward settings (inherited) under their old evaluate names too, as flags and YAML keys.
    reward_urls: list[str] | None = _aliased("reward_urls", "reward_url")
    reward_model_dir: str | None = _aliased("reward_model_dir", "scorer_model_dir")
    reward_device: str | None = _aliased("reward_device", "scorer_device")
    output_dir: str = field(default="outputs/eval", metadata=field_help("Where the outputs are written."))
    run_name: str | None = field(
        default=None, metadata=field_help("Name in titles (default: the policy's directory).")
    )
    batch_size: int = field(default=8, metadata=field_help("Reports generated per batch."))
    max_new_tokens: int = field(default=128, metadata=field_help("Longest generated report, in tokens."))
    do_sample: bool = field(default=False, metadata=field_help("Sample instead of greedy decoding."))
    temperature: float = field(default=1.0, metadata=field_help("Sampling temperature (do_sample only)."))
    top_p: float = field(default=1.0, metadata=field_help("Nucleus sampling (do_sample only)."))
    num_beams: int = field(default=1, metadata=field_help("Beam search width (R2Gen-family papers: 3)."))
    no_repeat_ngram_size: int = field(
        default=0,
        metadata=field_help("Block repeated n-grams of this size (R2Gen-family papers: 3). 0 = off."),
    )
    no_repeat_ngram_unit: str = field(
        default="word",
        metadata=field_help(
            "What no_repeat_ngram_size counts: 'word' (R2Gen's tokens are words; the repeated-trigram figure "
            "counts words) or 'token' (subword tokens: transformers' own blocking)."
        ),
    )
    image_ablation: str | None = field(
        default=None,
        metadata=field_help(
            "'shuffle': also generate each study's report from another study's image (same decoding) and "
            "report the reward gap own - shuffled with its standard error: does the policy read the image?"
        ),
    )
    repetition_penalty: float = field(default=1.0, metadata=field_help("transformers' repetition penalty."))
    seed: int = field(default=0, metadata=field_help("Seed for sampling."))
    dtype: str = field(default="auto", metadata=field_help("Policy dtype: auto, float32, bfloat16, float16."))
    device: str | None = field(default=None, metadata=field_help("Policy device (default: cuda if any)."))
    meteor: bool = field(default=True, metadata=field_help("Run METEOR (Meteor 1.5 jar; needs Java)."))
    sampled_reward_samples: int = field(
        default=0,
        metadata=field_help(
            "Also sample this many reports per study and report their mean reward (-RadCliQ): "
            "the quantity RL maximises, less noisy than one greedy report. 0 = off."
        ),
    )
    sample_temperature: float = field(
        default=1.0, metadata=field_help("Temperature of those sampled reports.")
    )
    training_runs: list[str] | None = arg(
        None, "trainer_state.json files or run/checkpoint dirs: loss and reward curves."
    )
    baseline: str | None = arg(None, "A baseline evaluation: its summary.json or output directory.")
    baseline_name: str | None = arg(None, "Baseline label (default: its run_name).")
    progress: bool = arg(True, "Show progress bars.")

    def __post_init__(self):
        super().__post_init__()
        if (self.model_name_or_path is None) == (self.hypotheses_file is None):
            raise ValueError(
                "give exactly one of model_name_or_path (generate) or hypotheses_file (score outputs)"
            )
        if self.adapter_path is not None and self.model_name_or_path is None:
            raise ValueError("adapter_path needs model_name_or_path (its base model)")
        if self.sampled_reward_samples < 0:
            raise ValueError(f"sampled_reward_samples must be >= 0, got {self.sampled_reward_samples}")
        if self.sampled_reward_samples and self.model_name_or_path is None:
            raise ValueError("sampled_reward_samples needs a policy (model_name_or_path) to sample from")
        for name in ("batch_size", "max_new_tokens", "num_beams"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if isinstance(self.training_runs, str):
            self.training_runs = [self.training_runs]
        if self.no_repeat_ngram_size < 0:
            raise ValueError(f"no_repeat_ngram_size must be >= 0, got {self.no_repeat_ngram_size}")
        from rrg_trl.evaluation.ngram_blocking import check_ngram_unit

        check_ngram_unit(self.no_repeat_ngram_unit)
        if self.image_ablation is not None:
            from rrg_trl.evaluation.ablation import ABLATIONS

            if self.image_ablation not in ABLATIONS:
                raise ValueError(f"image_ablation must be one of {ABLATIONS}, got {self.image_ablation!r}")
            if self.model_name_or_path is None:
                raise ValueError("image_ablation needs a policy (model_name_or_path) to generate with")

    def decoding(self) -> dict[str, Any]:
        """The settings of the evaluated (table) reports; the image ablation decodes the same way."""
        return dict(
            do_sample=self.do_sample,
            num_beams=self.num_beams,
            no_repeat_ngram_size=self.no_repeat_ngram_size,
            no_repeat_ngram_unit=self.no_repeat_ngram_unit,
            temperature=self.temperature,
            top_p=self.top_p,
        )

    def decoding_config(self):
        """:meth:`decoding` with the length and repetition settings, as the object RL's decoding guard takes."""
        from rrg_trl.evaluation.decoding import Decoding

        return Decoding(
            max_new_tokens=self.max_new_tokens, repetition_penalty=self.repetition_penalty, **self.decoding()
        )


def make_parser():
    from trl import TrlParser

    class Parser(TrlParser):
        """Takes a field's aliases (its old names) as YAML keys too, as argparse takes them as flags."""

        def set_defaults_with_config(self, **config):
            names = {o[2:]: a.dest for a in self._actions for o in a.option_strings if o.startswith("--")}
            return super().set_defaults_with_config(**{names.get(k, k): v for k, v in config.items()})

    return Parser((EvaluateConfig, DataConfig), prog="rrg-trl evaluate", allow_abbrev=False)


def load_baseline(path: str | Path) -> tuple[dict, Path]:
    """A previous evaluation's summary (``summary.json`` or the directory holding it)."""
    p = Path(path)
    if p.is_dir():
        p = p / SUMMARY_FILE
    if not p.is_file():
        raise FileNotFoundError(f"baseline {path}: no {SUMMARY_FILE} found")
    summary = json.loads(p.read_text())
    if not isinstance(summary, dict) or not isinstance(summary.get("metrics"), dict):
        raise ValueError(f"baseline {p} is not an evaluation summary (no 'metrics' object)")
    return summary, p


def describe_data(samples: list[EvalSample]) -> dict[str, Any]:
    """Provenance of the evaluated pairs: counts per source and a plain-words label for synthetic data."""
    sources = Counter(s.source for s in samples)
    n_synthetic = sum(s.synthetic for s in samples)
    info: dict[str, Any] = {
        "synthetic": n_synthetic > 0,
        "n_synthetic": n_synthetic,
        "sources": dict(sources),
    }
    if n_synthetic:
        kinds = "; ".join(SOURCE_DESCRIPTIONS.get(src, src) for src in sources)
        info["label"] = f"{SYNTHETIC_NOTE} ({n_synthetic}/{len(samples)} samples: {kinds})"
    else:
        info["label"] = "real data"
    return info


def _load_split(data_config: DataConfig, split: str):
    if data_config.splits is None:  # build only the evaluated split (synthetic data renders every image)
        data_config = dataclasses.replace(data_config, splits=[split])
    return load_dataset_from_config(data_config, split=split)


@dataclass
class SampledReports:
    """``per_prompt`` sampled reports for each study, flattened study-major (study 0's samples first)."""

    ids: list[str]
    references: list[str]
    hypotheses: list[str]
    per_prompt: int
    temperature: float


@dataclass
class Reports:
    """What is scored: the table's reports and, when asked, the image-ablation and the sampled reports."""

    samples: list[EvalSample]
    ablated: list[str] | None = None
    sampled: SampledReports | None = None


def _reports(config: EvaluateConfig, load_split) -> tuple[Reports, dict[str, float], str]:
    """The reports to score (the policy's, or ``hypotheses_file``'s), the time generation took, the run's name."""
    if config.model_name_or_path is not None:
        reports, timing = _generate(config, load_split())
        return reports, timing, config.run_name or Path(config.model_name_or_path).name
    samples = samples_from_jsonl(
        config.hypotheses_file,
        hypothesis_key=config.hypothesis_key,
        reference_key=config.reference_key,
        dataset=load_split,
    )
    return Reports(samples), {}, config.run_name or Path(config.hypotheses_file).stem


def _generate(config: EvaluateConfig, dataset) -> tuple[Reports, dict[str, float]]:
    """The table's reports, the image-ablation and the sampled reports (if asked), and the time each took."""
    from rrg_trl.evaluation.generation import generate_reports, load_eval_policy

    if len(dataset) == 0:
        raise ValueError(f"split {config.eval_split!r} is empty: nothing to evaluate")
    start = time.perf_counter()
    model, processor = load_eval_policy(
        config.model_name_or_path, config.adapter_path, dtype=config.dtype, device=config.device
    )
    generate = functools.partial(
        generate_reports,
        model,
        processor,
        batch_size=config.batch_size,
        max_new_tokens=config.max_new_tokens,
        repetition_penalty=config.repetition_penalty,
        seed=config.seed,
        progress=config.progress,
    )
    hyps = generate(dataset, **config.decoding())  # the table's decoding; the ablation decodes the same way
    timing = {"generation_s": round(time.perf_counter() - start, 3)}
    columns = {c: dataset[c] for c in ("id", "report", "synthetic", "source", "split")}
    reports = Reports(
        [
            EvalSample(
                id=columns["id"][i],
                hypothesis=h,
                reference=columns["report"][i],
                synthetic=bool(columns["synthetic"][i]),
                source=columns["source"][i],
                split=columns["split"][i],
            )
            for i, h in enumerate(hyps)
        ]
    )
    if config.image_ablation is not None:
        from rrg_trl.evaluation.ablation import shuffle_permutation

        start = time.perf_counter()
        shuffled = dataset.select(shuffle_permutation(len(dataset), config.seed))
        reports.ablated = generate(dataset, **config.decoding(), image_source=shuffled)
        timing["image_ablation_generation_s"] = round(time.perf_counter() - start, 3)
    if k := config.sampled_reward_samples:
        start = time.perf_counter()
        order = [i for i in range(len(dataset)) for _ in range(k)]
        temperature = config.sample_temperature
        texts = generate(dataset.select(order), do_sample=True, temperature=temperature, top_p=1.0)
        ids, refs = [columns["id"][i] for i in order], [columns["report"][i] for i in order]
        reports.sampled = SampledReports(ids, refs, texts, k, temperature)
        timing["sampled_generation_s"] = round(time.perf_counter() - start, 3)
    return reports, timing  # the policy is freed here, before scoring


def _score(
    config: EvaluateConfig, reports: Reports, scorer: Any, timing: dict[str, float]
) -> tuple[Any, dict[str, list]]:
    """The table's scores (with degeneracy figures), and the reward of each sampled / image-ablation report."""
    from rrg_trl.evaluation.scoring import score_reports

    client = None
    if scorer is None:
        scorer, client = _make_scorer(config)
    samples = reports.samples
    rewards: dict[str, list] = {}
    start = time.perf_counter()
    try:
        scores = score_reports(
            [s.hypothesis for s in samples],
            [s.reference for s in samples],
            scorer=scorer,
            client=client,
            meteor=config.meteor,
            progress=config.progress,
        )
        if reports.sampled is not None:
            scores.details["reward_sampled"], rewards["sampled"] = _sampled_reward(
                reports.sampled, scorer, client
            )
            scores.metrics["reward_sampled"] = scores.details["reward_sampled"]["mean"]
        if reports.ablated is not None:
            scores.details["image_ablation"], rewards["image_ablation"] = _ablation_gap(
                config, samples, reports.ablated, scores, scorer, client
            )
    finally:
        if client is not None:
            client.close()
    timing["scoring_s"] = round(time.perf_counter() - start, 3)
    _add_degeneracy(scores, [s.hypothesis for s in samples])
    return scores, rewards


def _sampled_reward(
    sampled: SampledReports, scorer: Any, client: Any
) -> tuple[dict[str, Any], list[float | None]]:
    """Mean -RadCliQ of the sampled reports, with its standard error, through the reward's own scorer."""
    rows = (scorer or client).score(sampled.hypotheses, sampled.references)
    rewards = [to_reward(r.get("radcliq")) for r in rows]
    good = [r for r in rewards if r is not None and math.isfinite(r)]
    n = len(good)
    mean = sum(good) / n if n else None
    sem = (math.sqrt(sum((r - mean) ** 2 for r in good) / (n - 1)) / math.sqrt(n)) if n > 1 else None
    return {
        "mean": mean,
        "sem": sem,
        "n": n,
        "per_prompt": sampled.per_prompt,
        "temperature": sampled.temperature,
        "missing": len(rewards) - n,
    }, rewards


def _make_scorer(config: EvaluateConfig):
    """``(scorer, None)`` in-process, or ``(None, client)`` for a server / the Ray Serve handle."""
    from reward_server.integrations.scoring import open_backend

    if config.reward_model_dir:
        return open_backend(config), None
    if config.reward_urls or config.reward_ray:
        return None, open_backend(config)
    raise ValueError(
        "no scorer: give reward_model_dir (--scorer_model_dir: in-process RadCliQ models) or reward_urls "
        "(--reward_url: a running server)"
    )


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _training_summary(runs: dict[str, Path]) -> dict[str, Any]:
    from rrg_trl.evaluation.plots import find_trainer_state, read_log_history

    out = {}
    for name, path in runs.items():
        history = read_log_history(path)
        rewards = [h["reward"] for h in history if isinstance(h.get("reward"), (int, float))]
        losses = [h["loss"] for h in history if isinstance(h.get("loss"), (int, float))]
        steps = [h["step"] for h in history if "step" in h]
        out[name] = {
            "trainer_state": str(find_trainer_state(path)),
            "steps": max(steps) if steps else 0,
            "first_loss": losses[0] if losses else None,
            "last_loss": losses[-1] if losses else None,
            "first_reward": rewards[0] if rewards else None,
            "last_reward": rewards[-1] if rewards else None,
        }
    return out


def main(
    config: EvaluateConfig, data_config: DataConfig | None = None, *, scorer: Any = None
) -> dict[str, Any]:
    """Run the evaluation and write its outputs; returns the summary (also in ``summary.json``).

    ``scorer``: an already loaded :class:`reward_server.RadCliQScorer` to reuse (the demo evaluates twice).
    """
    from rrg_trl.evaluation.plots import run_names

    started = time.perf_counter()
    data_config = data_config or DataConfig()
    baseline = _baseline(config)
    runs = run_names(config.training_runs or [])
    training = _training_summary(runs)  # fail on a bad trainer state before the long work
    loaded: list[Any] = []  # the split, once loaded (generation, or references looked up by id)

    def load_split():
        loaded.append(_load_split(data_config, config.eval_split))
        return loaded[-1]

    reports, timing, run_name = _reports(config, load_split)
    scores, rewards = _score(config, reports, scorer, timing)
    data = _data_summary(config, reports.samples, loaded[-1] if loaded else None, data_config)
    outputs = _output_paths(config, runs, reports)
    # Created only now, once the scores exist: a failed run leaves no empty folder.
    Path(config.output_dir).mkdir(parents=True, exist_ok=True)
    _write_reports(outputs, reports, scores, rewards, data["synthetic"], config.seed)
    _write_table_and_plots(outputs, config, scores, data, run_name, baseline, runs)
    timing["total_s"] = round(time.perf_counter() - started, 3)
    summary = {
        "run_name": run_name,
        "synthetic": data["synthetic"],
        **random_weights_fields(scores.details["reward"]["random_weights"]),
        "data": data,
        "metrics": {k: _finite_or_none(v) for k, v in scores.metrics.items()},
        "table_metrics": list(TABLE_KEYS),
        "unavailable": scores.unavailable,
        "decoding": _decoding_summary(config),
        "degeneracy": {k: scores.metrics.get(k) for k in DEGENERACY_FIGURES},
        "image_ablation": scores.details.get("image_ablation"),
        "details": scores.details,
        "training": training,
        "baseline": baseline,
        "timing": timing,
        "outputs": {k: str(v) for k, v in outputs.items()},
        "config": dataclasses.asdict(config),
        "data_config": dataclasses.asdict(data_config) if loaded else None,
    }
    outputs["summary"].write_text(
        json.dumps(summary, indent=2, ensure_ascii=False, default=str), encoding="utf-8"
    )
    logger.info("evaluation written to %s", config.output_dir)
    return summary


def _baseline(config: EvaluateConfig) -> dict[str, Any] | None:
    """The ``--baseline`` evaluation as the summary records it: its name, summary file and metrics."""
    if not config.baseline:
        return None
    summary, path = load_baseline(config.baseline)
    name = config.baseline_name or summary.get("run_name") or path.parent.name
    return {"name": name, "summary": str(path), "metrics": summary["metrics"]}


def _data_summary(
    config: EvaluateConfig, samples: list[EvalSample], dataset: Any, data_config: DataConfig
) -> dict[str, Any]:
    """:func:`describe_data`, the split's coverage (when it was loaded), the dataset's name, split and size."""
    data = {**describe_data(samples), **_uncovered(samples, dataset, config.eval_split)}
    if dataset is not None:
        name = data_config.dataset
    else:
        name = f"hypotheses file {Path(config.hypotheses_file).name}"
    return {**data, "dataset": name, "split": config.eval_split, "n_samples": len(samples)}


def _output_paths(config: EvaluateConfig, runs: dict[str, Path], reports: Reports) -> dict[str, Path]:
    out_dir = Path(config.output_dir)
    outputs = {
        "samples": out_dir / SAMPLES_FILE,
        "summary": out_dir / SUMMARY_FILE,
        "table": out_dir / TABLE_FILE,
        "metrics_plot": out_dir / METRICS_PLOT,
    }
    if runs:
        outputs["training_plot"] = out_dir / TRAINING_PLOT
    if reports.ablated is not None:
        outputs["image_ablation"] = out_dir / ABLATION_FILE
    if reports.sampled is not None:
        outputs["sampled"] = out_dir / SAMPLED_FILE
    return outputs


def _write_jsonl(path: Path, rows) -> None:
    """One JSON object a line, text as written (no ASCII escapes), non-finite numbers as null."""
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps({k: _finite_or_none(v) for k, v in row.items()}, ensure_ascii=False) + "\n")


def _write_reports(
    outputs: dict[str, Path], reports: Reports, scores, rewards: dict[str, list], synthetic: bool, seed: int
) -> None:
    """One row per report: ``samples.jsonl`` (with its scores), ``image_ablation.jsonl`` and ``sampled.jsonl``
    (a sampled row says which of its study's samples it is)."""
    label = random_weights_fields(scores.details["reward"]["random_weights"])
    samples = reports.samples
    if reports.ablated is not None:
        _write_ablation(
            outputs["image_ablation"], samples, reports.ablated, rewards["image_ablation"], synthetic, seed
        )
    if (sampled := reports.sampled) is not None:
        rows = zip(sampled.ids, sampled.hypotheses, sampled.references, rewards["sampled"], strict=True)
        _write_jsonl(
            outputs["sampled"],
            (
                {
                    "id": sid,
                    "sample": i % sampled.per_prompt,
                    "synthetic": synthetic,
                    "hypothesis": hyp,
                    "reference": ref,
                    "reward": reward,
                    **label,
                }
                for i, (sid, hyp, ref, reward) in enumerate(rows)
            ),
        )
    _write_jsonl(
        outputs["samples"],
        (
            {
                "index": i,
                "id": s.id,
                "split": s.split,
                "source": s.source,
                "synthetic": s.synthetic,
                "hypothesis": s.hypothesis,
                "reference": s.reference,
                **row,
                **label,
            }
            for i, (s, row) in enumerate(zip(samples, scores.per_sample, strict=True))
        ),
    )


def _write_table_and_plots(
    outputs: dict[str, Path],
    config: EvaluateConfig,
    scores,
    data: dict[str, Any],
    run_name: str,
    baseline: dict[str, Any] | None,
    runs: dict[str, Path],
) -> None:
    """``table.md`` with its notes, the metric bars (beside the baseline's) and the training curves."""
    from rrg_trl.evaluation.plots import plot_metric_bars, plot_training_curves

    title = f"{run_name}: {data['dataset']} {data['split']}, {data['n_samples']} reports"
    if data.get("studies_without_hypothesis"):
        title += (
            f" ({data['studies_without_hypothesis']} of {data['split_studies']} studies have no hypothesis)"
        )
    synthetic, random_weights = data["synthetic"], scores.details["reward"]["random_weights"]
    base_metrics = baseline["metrics"] if baseline else None
    base_name = (baseline or {}).get("name") or "baseline"
    table = render_markdown(
        scores.metrics,
        title=title,
        unavailable=scores.unavailable,
        synthetic=synthetic,
        run_name=run_name,
        baseline=base_metrics,
        baseline_name=base_name,
        notes=_notes(data, scores) + _extra_notes(config, scores, base_metrics, base_name),
        random_weights=random_weights,
    )
    outputs["table"].write_text(table, encoding="utf-8")
    plot_metric_bars(
        scores.metrics,
        outputs["metrics_plot"],
        run_name=run_name,
        baseline=base_metrics,
        baseline_name=base_name,
        title=title,
        synthetic=synthetic,
        random_weights=random_weights,
    )
    if runs:
        title = f"Training curves: {', '.join(runs)}"
        plot_training_curves(runs, outputs["training_plot"], title=title, synthetic=synthetic)


def _uncovered(samples: list[EvalSample], dataset: Any, split: str) -> dict[str, int]:
    """How many studies of the evaluated split have no hypothesis (only known when the split was loaded)."""
    if dataset is None:
        return {}
    total = len(dataset)
    missing = total - len({s.id for s in samples})
    if missing:
        logger.warning(
            "%d of %d %s studies have no hypothesis: the metrics cover the others only", missing, total, split
        )
    return {"split_studies": total, "studies_without_hypothesis": missing}


def _notes(data: dict, scores) -> list[str]:
    version = _reward_version(scores)
    notes = [
        f"Data: {data['label']}."
        + (f" Scored with {RANDOM_WEIGHTS_NOTICE}." if scores.details["reward"]["random_weights"] else ""),
        f"Reward (mean -RadCliQ-{version}) of these reports: {fmt_value(scores.metrics.get('reward'))}.",
    ]
    sampled = scores.details.get("reward_sampled")
    if sampled:
        sem = f" ± {sampled['sem']:.4f} (s.e.)" if sampled["sem"] is not None else ""
        notes.append(
            f"Reward of sampled reports ({sampled['per_prompt']} per study, temperature "
            f"{sampled['temperature']:g}, {sampled['n']} in all): {fmt_value(sampled['mean'])}{sem}."
        )
    return notes


def _decoding_summary(config: EvaluateConfig) -> dict[str, Any] | None:
    if config.model_name_or_path is None:
        return None  # reports from a file: their decoding is unknown here
    from rrg_trl.evaluation.decoding import describe_decoding

    settings = config.decoding()
    return {
        **settings,
        "max_new_tokens": config.max_new_tokens,
        "text": describe_decoding(settings, config.max_new_tokens),
    }


def _add_degeneracy(scores, hypotheses: list[str]) -> None:
    """Corpus degeneracy figures into the metrics; per report its repeated-trigram share and identical flag."""
    from rrg_trl.metrics.degeneracy import degeneracy, identical_flags, repeated_trigram_fraction

    scores.metrics.update(degeneracy(hypotheses))
    for row, hyp, same in zip(scores.per_sample, hypotheses, identical_flags(hypotheses), strict=True):
        row["repeated_trigram_fraction"] = repeated_trigram_fraction(hyp)
        row["identical_report"] = same


def _ablation_gap(config, samples, ablated, scores, scorer, client) -> tuple[dict[str, Any], list]:
    """Score the shuffled-image reports against each study's own reference; the paired gap to the table's."""
    from rrg_trl.evaluation.ablation import paired_gap
    from rrg_trl.metrics.degeneracy import degeneracy

    rows = (scorer or client).score(ablated, [s.reference for s in samples])
    rewards = [to_reward(r.get("radcliq")) for r in rows]
    result = {
        "mode": config.image_ablation,
        **paired_gap([row.get("reward") for row in scores.per_sample], rewards),
    }
    result["decoding"] = (_decoding_summary(config) or {}).get("text")
    result["ablated_degeneracy"] = degeneracy(ablated)
    return result, rewards


def _write_ablation(path: Path, samples, ablated, rewards, synthetic: bool, seed: int) -> None:
    """One row per study: whose image it was shown, the report written from it, and that report's reward."""
    from rrg_trl.evaluation.ablation import shuffle_permutation

    perm = shuffle_permutation(len(samples), seed)  # the permutation _generate used
    rows = enumerate(zip(samples, ablated, rewards, strict=True))
    _write_jsonl(
        path,
        (
            {
                "id": sample.id,
                "synthetic": synthetic,
                "image_of": samples[perm[i]].id,
                "hypothesis": hyp,
                "reference": sample.reference,
                "reward": reward,
            }
            for i, (sample, hyp, reward) in rows
        ),
    )


def _extra_notes(
    config: EvaluateConfig, scores, baseline: dict | None, baseline_name: str | None
) -> list[str]:
    """Decoding, degeneracy figures, and the image ablation under the table."""
    from rrg_trl.evaluation.ablation import describe_gap
    from rrg_trl.evaluation.decoding import degeneracy_lines

    notes = []
    decoding = _decoding_summary(config)
    if decoding is not None:
        notes.append(f"Decoding of these reports: {decoding['text']}.")
    notes += ["", *degeneracy_lines(scores.metrics, baseline, baseline_name or "baseline"), ""]
    notes.append(
        f"Distinct reports: {scores.metrics['distinct_reports']} of {len(scores.per_sample)} studies."
    )
    if "image_ablation" in scores.details:
        notes.append(describe_gap(scores.details["image_ablation"]))
    return notes


def _reward_version(scores) -> str:
    reward = scores.details.get("reward", {})
    return reward.get("radcliq_version") or (reward.get("server_info", {}).get("scorer") or {}).get(
        "radcliq_version", "v1"
    )


def run(argv: list[str] | None = None) -> dict[str, Any]:
    """Parse ``argv`` (``--config`` YAML + overrides), evaluate, print the table."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config, data_config = make_parser().parse_args_and_config(args=argv)
    summary = main(config, data_config)
    print(Path(summary["outputs"]["table"]).read_text(encoding="utf-8"))
    print("outputs:")
    for name, path in summary["outputs"].items():
        print(f"  {name:14s} {path}")
    return summary


if __name__ == "__main__":
    run()
