"""The offline end-to-end demo (``make demo`` / ``rrg-trl demo``): SFT -> GRPO on -RadCliQ -> evaluation.

Everything runs on this machine with no download: it writes the tiny random scorer kit and the tiny random
policy into ``output_dir`` (default ``outputs/demo/``), starts the reward server on loopback (a child
``rrg-reward serve`` on a free port, waited for on ``/ready``), runs a few SFT steps and then a few GRPO steps
with the real stages (``rrg_trl.sft`` / ``rrg_trl.grpo`` on ``recipes/tiny/*.yaml`` + overrides), evaluates the
policy on held-out studies before and after RL with the full table, prints the table, the reward before and
after RL and where every output is, and stops the server it started (also on error, Ctrl-C or SIGTERM).

    rrg-trl demo                                        # synthetic reports + images drawn from them
    rrg-trl demo --annotation ../shared/data/iu_xray/r2gen_annotation.json   # real IU X-ray report text
    rrg-trl demo --openi NLMCXR_reports.tgz             # the same from the Open-i archive

Data: with ``--annotation`` (R2Gen annotation.json) or ``--openi`` (Open-i archive) the report text is real IU
X-ray text and the images are synthesized from it; otherwise both are synthetic. Every output says which.
The models are tiny and random: the numbers show that the pipeline works end to end and that RL moves the
reward, not clinical quality. The tiny policy is fully fine-tuned (``use_peft false``): LoRA adapters on a
32-wide decoder learn too little in a few dozen CPU steps to show anything.

The policy must read its image (issue 16): the default synthetic reports are structured, every sentence shown
by the image (:mod:`rrg_trl.data.synthetic_findings`); the prompt is two tokens, so the 4 image tokens are not
drowned; SFT trains the vision tower too, with a decaying learning rate. Both evaluations decode as R2Gen-family
papers do (3 beams, no repeated word trigram), report degeneracy figures, and run the image-ablation control (the
reward gap between reports from each study's own image and from another study's image).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reward_server.radcliq.model_files import RANDOM_WEIGHTS_LABEL, random_weights_fields
from rrg_trl.data.data_config import arg

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in the demo may touch the network
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_RECIPES = Path(__file__).resolve().parents[1] / "recipes" / "tiny"
SUMMARY_FILE = "demo_summary.json"
# Trainer logs (console lines, curve points) every few steps: each logged value is a mean over those steps.
LOGGING_STEPS = 5


# (SFT steps, SFT learning rate, training studies) after which the tiny policy reads its image (issue 16).
# LM-RRG's region cross-attention is knocked about by 1e-2; with 1024 studies (or 500 steps) its gap was 0,
# with 256 small but positive; at 3e-3 seed 1 wrote one report for every image, at 2e-3 every seed reads it.
FAMILY_DEFAULTS = {"default": (300, 1e-2, 1024), "lmrrg": (300, 2e-3, 256)}
# Real IU X-ray text (--annotation / --openi): 600 SFT steps on up to 2048 studies (its whole train split), the
# decoding guard every 20 GRPO steps. At 300 steps on 1024 the policy wrote 1 to 3 reports whatever the image.
# A guard check decodes 64 probe reports of up to 96 tokens: checked every 10 steps the demo took 144 s, every
# 20 steps 132 s, keeping the same GRPO states on seeds 0 and 1.
REAL_TEXT_DEFAULTS = (600, 2048, 20)
GUARD_EVERY_N_STEPS = 10
_DEFAULT, _LMRRG = FAMILY_DEFAULTS["default"], FAMILY_DEFAULTS["lmrrg"]  # named in the flags' help


@dataclass
class DemoConfig:
    """Where the demo writes, which data it uses, and how long each stage runs (defaults: ~2-3 min, 2 cores)."""

    output_dir: str = arg("outputs/demo", "Work directory for every output.")
    annotation: str | None = arg(
        None, "R2Gen annotation.json of IU X-ray: real report text, synthesized images."
    )
    openi: str | None = arg(None, "IU X-ray Open-i archive (NLMCXR_reports.tgz): real report text.")
    family: str = arg("qwen2_vl", "Tiny policy family (rrg_trl.modeling.FAMILIES).")
    seed: int = arg(0, "Seed of the models, the data and the trainers.")
    num_train: int | None = arg(
        None,
        f"Training studies (default: {_DEFAULT[2]}, {_LMRRG[2]} for lmrrg, {REAL_TEXT_DEFAULTS[1]} with real "
        "text; with 256 the qwen2_vl policy learnt the training images rather than to read them).",
    )
    num_test: int = arg(32, "Held-out studies evaluated before and after RL.")
    image_size: int = arg(56, "Side of the synthesized images, in pixels.")
    sft_steps: int | None = arg(
        None,
        f"SFT optimizer steps (default: {_DEFAULT[0]}, {REAL_TEXT_DEFAULTS[0]} with real text; fewer, and the "
        "policy writes one report whatever the image).",
    )
    sft_learning_rate: float | None = arg(
        None, f"SFT learning rate (default: {_DEFAULT[1]:g}, {_LMRRG[1]:g} for lmrrg)."
    )
    sft_batch_size: int = arg(8, "SFT batch size.")
    grpo_steps: int = arg(
        200,
        "GRPO optimizer steps (at 60 no state beat the SFT policy on the guard's probe; on seed 0 the probe "
        "reward starts to rise after ~90 steps, as the policy learns to see the lung findings).",
    )
    grpo_learning_rate: float = arg(
        1e-3, "GRPO learning rate (5e-3 made the policy write one report whatever the image)."
    )
    grpo_beta: float = arg(
        0.1,
        "KL coefficient to the SFT policy: keeps the text report-like (without it the tiny random "
        "scorers are soon gamed by strings of dots).",
    )
    grpo_batch_size: int = arg(16, "GRPO completions per step.")
    num_generations: int = arg(
        4,
        "GRPO completions per prompt (the group); 4 of 16 per step = 4 studies a step (8 moved the "
        "evaluated reward less).",
    )
    max_completion_length: int | None = arg(
        None,
        "Longest report in tokens, GRPO and evaluation alike (default: 64 for the synthetic "
        "reports, 96 for IU X-ray text, whose FINDINGS have a median of ~54 tokens).",
    )
    eval_num_beams: int = arg(3, "Beam width of the evaluated (table) reports (R2Gen-family papers: 3).")
    eval_no_repeat_ngram_size: int = arg(
        3, "n-gram blocking of the evaluated reports (R2Gen-family papers: 3; 0 = off)."
    )
    eval_no_repeat_ngram_unit: str = arg(
        "word",
        "What that blocking counts: 'word' (R2Gen's unit) or 'token' (subword tokens; on IU X-ray text these "
        "let 'No ... no pleural effusion' through, and the guard stopped RL on 1 repeated trigram in 64 reports).",
    )
    guard_every_n_steps: int | None = arg(
        None,
        "GRPO's decoding guard: every this many steps, decode the probe studies as the evaluation does "
        "and stop RL (restoring the last passing weights) when repetition or sameness rises (default: "
        f"{GUARD_EVERY_N_STEPS}, {REAL_TEXT_DEFAULTS[2]} with real text; 0 = off).",
    )
    guard_probe: int = arg(
        64,
        "Held-out validation studies the decoding guard decodes (with 16 its reward picked states that "
        "were worse on the test studies).",
    )
    guard_identical_tolerance: float = arg(
        0.125,
        "Rise of the probe's identical-report share the guard lets pass (0.125 = 8 of 64 studies; at 0 one "
        "pair of studies newly given the same report stopped GRPO at its first check).",
    )
    sampled_per_study: int = arg(4, "Sampled reports per held-out study for the expected-reward estimate.")
    meteor: bool = arg(True, "Compute METEOR in the evaluations (needs Java).")
    threads: int = arg(1, "torch threads: tiny models run fastest on one (thread hand-offs dominate).")
    port: int | None = arg(None, "Reward server port (default: a free one).")
    server_timeout_s: float = arg(180.0, "How long to wait for the server's /ready.")
    recipes_dir: str | None = arg(
        None, "Folder with the tiny sft.yaml / grpo.yaml (default: the repo's recipes/tiny)."
    )
    progress: bool = arg(True, "Show progress bars.")

    def __post_init__(self):
        if self.max_completion_length is not None and self.max_completion_length < 1:
            raise ValueError(f"max_completion_length must be >= 1, got {self.max_completion_length}")
        steps, rate, studies = FAMILY_DEFAULTS.get(self.family, FAMILY_DEFAULTS["default"])
        guard = GUARD_EVERY_N_STEPS
        if self.annotation or self.openi:
            steps, studies, guard = REAL_TEXT_DEFAULTS
        if self.guard_every_n_steps is None:
            self.guard_every_n_steps = guard
        if self.guard_every_n_steps < 0:
            raise ValueError(f"guard_every_n_steps must be >= 0 (0 = off), got {self.guard_every_n_steps}")
        self.sft_steps = steps if self.sft_steps is None else self.sft_steps
        self.sft_learning_rate = rate if self.sft_learning_rate is None else self.sft_learning_rate
        self.num_train = studies if self.num_train is None else self.num_train
        for name in (
            "num_train",
            "num_test",
            "sft_steps",
            "grpo_steps",
            "threads",
            "num_generations",
            "guard_probe",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.grpo_batch_size % self.num_generations:
            raise ValueError(
                f"grpo_batch_size ({self.grpo_batch_size}) must be a multiple of num_generations "
                f"({self.num_generations}): GRPO scores each prompt's group together"
            )
        for name in ("annotation", "openi"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"--{name} {path}: no such file")


def make_parser():
    from trl import TrlParser

    return TrlParser((DemoConfig,), prog="rrg-trl demo", allow_abbrev=False)


def _say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


@contextlib.contextmanager
def _sigterm_as_exit():
    """Turn SIGTERM into SystemExit so ``finally`` blocks (stopping the server) run, as they do on Ctrl-C."""

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _recipe(config: DemoConfig, stage: str) -> Path:
    folder = Path(config.recipes_dir) if config.recipes_dir else REPO_RECIPES
    path = folder / f"{stage}.yaml"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: run the demo from a source checkout, or pass --recipes_dir "
            f"pointing at a folder with the tiny sft.yaml and grpo.yaml"
        )
    return path


DEMO_INSTRUCTION = "Findings:"
OPENI_SPLIT_FILE = "openi_split.json"
OPENI_TEST_EVERY = 10


def openi_split_annotation(openi_path: str | Path, out_path: Path) -> Path:
    """An R2Gen-format split file for an Open-i archive, which has no splits of its own.

    Every report with a FINDINGS section becomes an entry (no image paths: the demo synthesizes images);
    a stable hash of the study id puts one in ``OPENI_TEST_EVERY`` into ``test`` and another into ``val`` (the
    decoding guard's probe), so the held-out studies the demo evaluates on are never trained on, and are the
    same on every run.
    """
    import zlib

    from rrg_trl.data import read_openi_archive

    splits: dict[str, list[dict]] = {"train": [], "val": [], "test": []}
    for report in read_openi_archive(openi_path):
        if not report.findings.strip():
            continue
        study_id = report.study_ids[0] if report.study_ids else report.uid
        split = (
            ("test", "val")[bucket]
            if (bucket := zlib.crc32(study_id.encode()) % OPENI_TEST_EVERY) < 2
            else "train"
        )
        splits[split].append({"id": study_id, "report": report.findings, "image_path": [], "split": split})
    if not splits["train"] or not splits["test"]:
        raise ValueError(
            f"{openi_path}: too few reports with a FINDINGS section to split into train and test"
        )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(splits), encoding="utf-8")
    return out_path


def data_settings(config: DemoConfig, work: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """DataConfig mappings for training (train split) and for the evaluations (held-out test split)."""
    common: dict[str, Any] = {
        "dataset": "synthetic",
        "image_size": config.image_size,
        "synthetic_seed": config.seed,
        # A two-token prompt: behind the 55-token system prompt and 34-token instruction, the tiny decoder's
        # attention to the 4 image tokens was so diluted that SFT never learned to look at them.
        "system_prompt": "",
        "instruction": DEMO_INSTRUCTION,
        # The image also carries a code of the report's sentences (rrg_trl.data.sentence_code): most IU reports
        # affirm no finding, so their phantoms look alike, and LM-RRG read the findings' signs on 2 seeds of 3.
        "synthetic_sentence_code": True,
    }
    if not (config.annotation or config.openi):
        common.update(
            synthetic_text="findings",  # every sentence shown by the image (rrg_trl.data.synthetic_findings)
            synthetic_num_train=config.num_train,
            synthetic_num_val=0,
            synthetic_num_test=config.num_test,
        )
        return dict(common), dict(common)
    common["synthetic_text"] = "iu_xray"
    if config.annotation:
        common["annotation_path"] = str(config.annotation)
        if config.openi:
            common["openi_path"] = str(config.openi)
    else:
        common["annotation_path"] = str(
            openi_split_annotation(config.openi, work / "data" / OPENI_SPLIT_FILE)
        )
    train = {**common, "splits": ["train"], "max_samples": config.num_train}
    test = {**common, "splits": ["test"], "max_samples": config.num_test}
    return train, test


def probe_settings(config: DemoConfig, work: Path) -> dict[str, Any]:
    """DataConfig mapping of the decoding guard's probe: held-out validation studies, never the evaluated ones."""
    _, test = data_settings(config, work)
    if test.get("synthetic_text") == "findings":
        return {**test, "synthetic_num_val": config.guard_probe, "splits": ["val"]}
    return {**test, "splits": ["val"], "max_samples": config.guard_probe}


def as_flags(mapping: dict[str, Any]) -> list[str]:
    flags = []
    for key, value in mapping.items():
        flags += [f"--{key}", *(map(str, value) if isinstance(value, list) else [str(value)])]
    return flags


IMAGES_LABEL = "SYNTHETIC images drawn from each report (its findings' signs and a code of its sentences)"


def describe_data(config: DemoConfig) -> str:
    if config.annotation:
        return f"real IU X-ray report text from {config.annotation}, with {IMAGES_LABEL}"
    if config.openi:
        return (
            f"real IU X-ray report text (FINDINGS) from {config.openi}, held-out split: 1 study in "
            f"{OPENI_TEST_EVERY} by id hash; {IMAGES_LABEL}"
        )
    return f"SYNTHETIC structured reports (heart, pleura, pneumothorax, lungs, devices) with {IMAGES_LABEL}"


def completion_length(config: DemoConfig) -> int:
    """Too short a budget makes GRPO's truncation guard teach the policy to stop early instead of reporting."""
    if config.max_completion_length is not None:
        return config.max_completion_length
    return 96 if (config.annotation or config.openi) else 64


def _trainer_args(config: DemoConfig, stage: str, model: Path, out: Path) -> list[str]:
    """The flags of the demo's SFT or GRPO run (the recipe's settings, overridden for the tiny policy)."""
    flags: dict[str, Any] = {
        "config": _recipe(config, stage),
        "model_name_or_path": model,
        "output_dir": out,
        "use_peft": "false",
        "save_strategy": "no",
        "report_to": "none",
        "seed": config.seed,
        "logging_steps": LOGGING_STEPS,
        "log_level": "warning",
        "disable_tqdm": str(not config.progress).lower(),
    }
    if stage == "sft":
        flags |= {
            # The tiny vision tower is random: SFT must train it (and its projector) to read the findings.
            "freeze_vision_tower": "false",
            "max_steps": config.sft_steps,
            "learning_rate": config.sft_learning_rate,
            "per_device_train_batch_size": config.sft_batch_size,
            # Decaying to 0 settles the image-dependent choices a constant 1e-2 keeps knocking about.
            "lr_scheduler_type": "cosine",
        }
    else:
        flags |= {
            "max_steps": config.grpo_steps,
            "learning_rate": config.grpo_learning_rate,
            "per_device_train_batch_size": config.grpo_batch_size,
            "num_generations": config.num_generations,
            "beta": config.grpo_beta,
            "max_completion_length": completion_length(config),
        }
    return as_flags(flags)


def run_sft(config: DemoConfig, policy: Path, out: Path, work: Path) -> None:
    """The demo's SFT stage: ``policy`` trained on the demo's training split into ``out``."""
    from rrg_trl import sft

    train_data, _ = data_settings(config, work)
    sft.run(_trainer_args(config, "sft", policy, out) + as_flags(train_data))


def run_grpo(
    config: DemoConfig, model: Path, out: Path, train_data: dict[str, Any], reward_url: str, callbacks=()
) -> None:
    """The demo's GRPO stage: ``model`` (the SFT policy) trained on -RadCliQ from ``reward_url`` into ``out``."""
    from rrg_trl import grpo

    argv = _trainer_args(config, "grpo", model, out) + as_flags({**train_data, "reward_urls": reward_url})
    grpo.main(*grpo.make_parser().parse_args_and_config(args=argv), callbacks=list(callbacks))


def decoding_guard(config: DemoConfig, work: Path, model: Path, report_path: Path, reward_url: str):
    """GRPO's guard on what the evaluation decodes: the evaluation's own decoding object, on the probe studies,
    scored by the reward server RL trains on."""
    from reward_server import RewardClient
    from rrg_trl import evaluate
    from rrg_trl.data import load_dataset_from_config
    from rrg_trl.decoding_guard import DecodingGuardCallback

    if not config.guard_every_n_steps:
        return None
    probe = load_dataset_from_config(probe_settings(config, work), split="val")
    settings = evaluate.EvaluateConfig(model_name_or_path=str(model), **eval_settings(config))
    return DecodingGuardCallback(
        probe,
        settings.decoding_config(),
        every_n_steps=config.guard_every_n_steps,
        batch_size=settings.batch_size,
        tolerances={"identical_report_share": config.guard_identical_tolerance},
        reward=RewardClient(reward_url).rewards,
        report_path=report_path,
    )


def eval_settings(config: DemoConfig) -> dict[str, Any]:
    """EvaluateConfig fields shared by the before- and after-RL evaluations: decoding, ablation, budget."""
    return dict(
        max_new_tokens=completion_length(config),
        batch_size=16,
        meteor=config.meteor,
        progress=config.progress,
        device="cpu",
        seed=config.seed,
        sampled_reward_samples=config.sampled_per_study,
        num_beams=config.eval_num_beams,
        no_repeat_ngram_size=config.eval_no_repeat_ngram_size,
        no_repeat_ngram_unit=config.eval_no_repeat_ngram_unit,
        image_ablation="shuffle",
    )


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _reward_trend(grpo_dir: Path, window: int = 10) -> dict[str, Any]:
    """GRPO's logged mean reward (-RadCliQ of the sampled completions) over its first and last ``window`` steps."""
    from rrg_trl.evaluation.plots import read_log_history

    logged = [
        (h["step"], h["reward"])
        for h in read_log_history(grpo_dir)
        if isinstance(h.get("reward"), (int, float)) and isinstance(h.get("step"), int)
    ]
    if not logged:
        return {"steps": 0}
    last_step = logged[-1][0]
    window = min(window, max(1, last_step // 2))
    first = [r for step, r in logged if step <= window] or [logged[0][1]]
    last = [r for step, r in logged if step > last_step - window] or [logged[-1][1]]
    return {
        "steps": last_step,
        "window": window,
        "first_steps_mean": sum(first) / len(first),
        "last_steps_mean": sum(last) / len(last),
        "logged": [r for _, r in logged],
    }


def paired_change(before_dir: Path, after_dir: Path) -> dict[str, Any]:
    """Per-study change of the evaluated reports' reward (after - before RL), with its paired standard error."""
    from rrg_trl.evaluate import SAMPLES_FILE
    from rrg_trl.evaluation.ablation import paired_gap
    from rrg_trl.evaluation.hypotheses import read_jsonl

    def rewards(folder: Path) -> dict[str, float | None]:
        return {row["id"]: row.get("reward") for _, row in read_jsonl(folder / SAMPLES_FILE)}

    before, after = rewards(before_dir), rewards(after_dir)
    if before.keys() != after.keys():
        raise ValueError(f"{before_dir} and {after_dir} evaluated different studies")
    ids = sorted(before)
    result = paired_gap([after[i] for i in ids], [before[i] for i in ids])
    return {
        "change": result["gap"],
        "sem": result["sem"],
        "n": result["n"],
        "before": result["reward_ablated"],
        "after": result["reward_own"],
    }


def main(config: DemoConfig) -> dict[str, Any]:
    """Run the demo; returns (and writes to ``demo_summary.json``) what it printed."""
    import torch
    from transformers.utils import logging as hf_logging

    from reward_server.tinykit import make_tiny

    hf_logging.disable_progress_bar()  # per-file weight loading/saving bars; training and scoring keep theirs
    started = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    paths = _paths(config)
    paths["reward_server_log"].parent.mkdir(parents=True, exist_ok=True)
    for recipe in ("sft", "grpo"):
        _recipe(config, recipe)  # fail before any work when the recipes are not there
    timing: dict[str, float] = {}
    server = None
    try:
        with _sigterm_as_exit():
            _say(f"data: {describe_data(config)}")
            with _timed(timing, "scorer_kit_s"):
                _say(
                    f"writing the tiny RadCliQ scorer kit (random weights, official formats) to "
                    f"{paths['scorer_models']}"
                )
                make_tiny(paths["scorer_models"], seed=config.seed)
            server = _start_server(config, paths)
            before, after = _train_and_evaluate(config, paths, server, timing)
    finally:
        torch.set_num_threads(threads)
        if server is not None:
            code = server.stop()
            _say(
                "reward server stopped (" + (f"by signal {-code}" if code < 0 else f"exit code {code}") + ")"
            )
    timing["total_s"] = round(time.perf_counter() - started, 2)
    summary = _summary(config, paths, before, after, server, timing)
    paths["summary"].write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    _report(summary, Path(after["outputs"]["table"]))
    return summary


def _paths(config: DemoConfig) -> dict[str, Path]:
    """Where each output goes, under ``output_dir``."""
    work = Path(config.output_dir).resolve()
    return {
        "scorer_models": work / "models" / "scorer",
        "policy": work / "models" / f"policy-{config.family}-seed{config.seed}",
        "sft": work / "sft",
        "grpo": work / "grpo",
        "decoding_guard": work / "grpo" / "decoding_guard.json",
        "eval_before_rl": work / "eval" / "before_rl",
        "eval_after_rl": work / "eval" / "after_rl",
        "reward_server_log": work / "logs" / "reward_server.log",
        "summary": work / SUMMARY_FILE,
    }


@contextlib.contextmanager
def _timed(timing: dict[str, float], name: str):
    """The block's wall time in seconds, under ``name`` in ``timing`` (when the block completes)."""
    start = time.perf_counter()
    yield
    timing[name] = round(time.perf_counter() - start, 2)


def _start_server(config: DemoConfig, paths: dict[str, Path]):
    """A child ``rrg-reward serve`` on loopback; it loads the scorer while SFT runs (waited for after it)."""
    from reward_server.service.local import LocalRewardServer

    # One thread: the demo's trainer shares the same few cores, and the tiny encoders need no more.
    server = LocalRewardServer(
        paths["scorer_models"],
        port=config.port,
        log_path=paths["reward_server_log"],
        env={"OMP_NUM_THREADS": "1"},
    )
    _say(f"starting the reward server on {server.url} (log: {paths['reward_server_log']})")
    return server


def _train_and_evaluate(
    config: DemoConfig, paths: dict[str, Path], server, timing: dict[str, float]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Tiny policy -> SFT -> evaluation before RL -> GRPO on the server's reward -> evaluation after RL."""
    from reward_server.env import RewardSettings
    from reward_server.integrations.scoring import open_backend
    from rrg_trl.data import DataConfig
    from rrg_trl.modeling import make_tiny_policy

    work = Path(config.output_dir).resolve()
    with _timed(timing, "policy_kit_s"):
        _say(f"writing the tiny {config.family} policy (random weights) to {paths['policy']}")
        make_tiny_policy(paths["policy"], family=config.family, seed=config.seed)
    train_data, test_data = data_settings(config, work)
    with _timed(timing, "sft_s"):
        _say(f"SFT: {config.sft_steps} steps (warm start: the policy learns to write report-like text)")
        run_sft(config, paths["policy"], paths["sft"], work)
    with _timed(timing, "server_ready_wait_s"):
        waited = server.wait_ready(config.server_timeout_s)
    _say(f"reward server ready at {server.url} (waited {waited:.1f}s more after SFT)")
    reward = {"reward_model_dir": str(paths["scorer_models"]), "reward_device": "cpu"}
    scorer = open_backend(RewardSettings(**reward))  # loaded once, for both evaluations
    evaluate = functools.partial(_evaluate, config, DataConfig.from_dict(test_data), scorer, **reward)
    with _timed(timing, "eval_before_rl_s"):
        _say(f"evaluating the SFT policy on {config.num_test} held-out studies (before RL)")
        before = evaluate(paths["sft"], paths["eval_before_rl"], "before RL (SFT)", [paths["sft"]])
    with _timed(timing, "grpo_s"):
        _say(
            f"GRPO: {config.grpo_steps} steps, reward -RadCliQ from {server.url}, "
            f"{config.num_generations} completions per prompt"
        )
        guard = decoding_guard(config, work, paths["sft"], paths["decoding_guard"], server.url)
        run_grpo(config, paths["sft"], paths["grpo"], train_data, server.url, [guard] if guard else [])
    with _timed(timing, "eval_after_rl_s"):
        _say("evaluating the GRPO policy on the same held-out studies (after RL)")
        after = evaluate(
            paths["grpo"],
            paths["eval_after_rl"],
            "after RL (GRPO)",
            [paths["sft"], paths["grpo"]],
            baseline=str(paths["eval_before_rl"]),
        )
    return before, after


def _evaluate(
    config: DemoConfig, data_config, scorer, model: Path, out: Path, run_name: str, runs: list[Path], **more
) -> dict[str, Any]:
    """One of the two evaluations: the held-out studies, the demo's decoding, the scorer loaded once."""
    from rrg_trl import evaluate

    settings = evaluate.EvaluateConfig(
        model_name_or_path=str(model),
        output_dir=str(out),
        run_name=run_name,
        training_runs=[str(run) for run in runs],
        **more,
        **eval_settings(config),
    )
    return evaluate.main(settings, data_config, scorer=scorer)


def _summary(
    config: DemoConfig, paths: dict[str, Path], before: dict, after: dict, server, timing: dict[str, float]
) -> dict[str, Any]:
    """What ``demo_summary.json`` holds: both evaluations side by side, the training trend, server, timings."""
    return {
        "synthetic": True,
        "data": describe_data(config),
        **random_weights_fields(after["random_weights"]),  # the evaluation read the kit's marker
        "reward_definition": f"-RadCliQ-v1 per report (higher is better); {RANDOM_WEIGHTS_LABEL}",
        "reward_before_rl": before["metrics"]["reward"],
        "reward_after_rl": after["metrics"]["reward"],
        "decoding": after["decoding"]["text"],
        "reward_change": paired_change(paths["eval_before_rl"], paths["eval_after_rl"]),
        "image_ablation_before_rl": before["image_ablation"],
        "image_ablation_after_rl": after["image_ablation"],
        "degeneracy_before_rl": before["degeneracy"],
        "degeneracy_after_rl": after["degeneracy"],
        "sampled_reward_before_rl": before["details"].get("reward_sampled"),
        "sampled_reward_after_rl": after["details"].get("reward_sampled"),
        "grpo_training_reward": _reward_trend(paths["grpo"]),
        "decoding_guard": _read_json(paths["decoding_guard"]),
        "metrics_before_rl": before["metrics"],
        "metrics_after_rl": after["metrics"],
        "server": {
            "url": server.url,
            "pid": server.pid,
            "stopped": server.returncode is not None,
            "exit_code": server.returncode,
        },
        "timing_s": timing,
        "config": dataclasses.asdict(config),
        "outputs": {
            **{k: str(v) for k, v in paths.items()},
            "table": after["outputs"]["table"],
            "metrics_plot": after["outputs"]["metrics_plot"],
            "training_plot": after["outputs"]["training_plot"],
        },
    }


# How the printed list names each output.
OUTPUT_LABELS = {
    "scorer_models": "tiny scorer kit",
    "policy": "tiny policy",
    "sft": "SFT model",
    "grpo": "GRPO model",
    "eval_before_rl": "eval before RL",
    "eval_after_rl": "eval after RL",
    "table": "table (markdown)",
    "metrics_plot": "metric bars",
    "training_plot": "training curves",
    "decoding_guard": "decoding guard",
    "reward_server_log": "server log",
    "summary": "demo summary",
}


def _report(summary: dict[str, Any], table: Path) -> None:
    print()
    print(table.read_text(encoding="utf-8"))
    trend = summary["grpo_training_reward"]
    before, after = summary["reward_before_rl"], summary["reward_after_rl"]
    print(f"Reward (-RadCliQ-v1, higher is better; {RANDOM_WEIGHTS_LABEL}; data: {summary['data']}):")
    s0, s1 = summary["sampled_reward_before_rl"], summary["sampled_reward_after_rl"]
    if s0 and s1 and s0["mean"] is not None and s1["mean"] is not None:
        print(
            f"  held-out, sampled reports ({s0['per_prompt']} per study, T={s0['temperature']:g}; what GRPO "
            f"maximises):\n      before RL {s0['mean']:.4f} ± {s0['sem'] or 0:.4f}  ->  after RL "
            f"{s1['mean']:.4f} ± {s1['sem'] or 0:.4f}  ({s1['mean'] - s0['mean']:+.4f}; ± = standard error)"
        )
    change = summary["reward_change"]
    print(
        f"  held-out, evaluated reports (the table; {summary['decoding']}):\n      before RL {before:.4f}  ->  "
        f"after RL {after:.4f}  ({change['change']:+.4f} ± {change['sem'] or 0:.4f}, paired over "
        f"{change['n']} studies)"
    )
    for when in ("before_rl", "after_rl"):
        gap = summary[f"image_ablation_{when}"]
        if gap and gap.get("gap") is not None:
            print(
                f"  image ablation {when.replace('_rl', ' RL')}: own image {gap['reward_own']:.4f}, another study's "
                f"image {gap['reward_ablated']:.4f}: gap {gap['gap']:+.4f} ± {gap['sem'] or 0:.4f}"
            )
    d0, d1 = summary["degeneracy_before_rl"], summary["degeneracy_after_rl"]
    print("  degeneracy of the evaluated reports (before RL -> after RL):")
    for key, label in (
        ("distinct_reports", "distinct reports"),
        ("identical_report_share", "studies given an identical report"),
        ("repeated_trigram_fraction", "repeated trigrams per report"),
        ("distinct_2", "distinct-2"),
    ):
        print(f"      {label:34s} {_num(d0.get(key))}  ->  {_num(d1.get(key))}")
    guard = summary.get("decoding_guard")
    if guard:
        stop = guard["stopped_at_step"]
        print(
            f"  decoding guard ({guard['decoding']}; {guard['probe_size']} validation studies, every "
            f"{guard['every_n_steps']} steps): "
            + (
                f"stopped GRPO at step {stop} (repetition or sameness rose)"
                if stop is not None
                else f"{len(guard['checks'])} checks, no rise in repetition or sameness"
            )
            + (
                f"; kept the weights of step {guard['restored_step']} (best probe reward)"
                if guard["restored_step"] is not None
                else "; kept the last step's weights"
            )
        )
    if trend.get("steps"):
        print(
            f"  GRPO training batches (sampled, incl. guard penalties):\n      first {trend['window']} steps "
            f"{trend['first_steps_mean']:.4f}  ->  last {trend['window']} steps {trend['last_steps_mean']:.4f}"
        )
    print()
    print("Outputs:")
    for key, label in OUTPUT_LABELS.items():
        print(f"  {label:17s} {summary['outputs'][key]}")
    print(f"\nDone in {summary['timing_s']['total_s']:.0f}s; the reward server was stopped.")


def _num(value: Any) -> str:
    if value is None:
        return "n/a"
    return str(value) if isinstance(value, int) else f"{value:.3f}"


def run(argv: list[str] | None = None) -> dict[str, Any]:
    """Parse ``argv`` (flags, or ``--config demo.yaml``) and run the demo."""
    (config,) = make_parser().parse_args_and_config(args=argv)
    return main(config)


if __name__ == "__main__":
    run()
