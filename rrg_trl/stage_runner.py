"""The steps every stage shares: logging, data splits, train (resuming), save, and what ``run`` returns;
:func:`run_stage`, the whole body of every stage (they differ in TRL's trainer class and, for the RL stages, the
rewards), and :func:`stage_entry_points`, each stage module's ``main`` / ``make_parser`` / ``run``.

The stage modules ``rrg_trl.sft`` / ``grpo`` / ``rloo`` hold only their documentation and which TRL classes
they use; each step here is a named function, in the order of TRL's own scripts: parse, load, build the
trainer, :func:`train_and_save`.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rrg_trl.data.errors import ProblemLog
from rrg_trl.memory_logging import add_memory_logging

logger = logging.getLogger(__name__)

RUN_INFO = "run_info.json"


@dataclass
class StageResult:
    """What a stage's ``run()`` returns."""

    stage: str
    output_dir: str
    global_step: int
    metrics: dict
    resumed_from: str | None
    trainer: Any


def setup_logging(training_args: Any) -> None:
    """Per-process log level from the training arguments (main process: info, others: warning)."""
    import datasets
    import transformers

    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    level = training_args.get_process_log_level()
    logging.getLogger("rrg_trl").setLevel(level)
    datasets.utils.logging.set_verbosity(level)
    transformers.utils.logging.set_verbosity(level)


def load_splits(
    data_args: Any,
    script_args: Any,
    training_args: Any,
    *,
    with_completion: bool,
    problems: ProblemLog | None = None,
):
    """``(train_dataset, eval_dataset or None)``; only the splits the run uses are loaded. ``problems``
    collects the skipped studies (``on_error: skip``) for ``run_info.json``."""
    import dataclasses

    from rrg_trl.data import load_dataset_from_config
    from rrg_trl.data.config import available_splits

    wanted = [script_args.dataset_train_split]
    do_eval = training_args.eval_strategy != "no"
    if do_eval:
        wanted.append(script_args.dataset_test_split)
    config = dataclasses.replace(
        data_args, with_completion=with_completion, splits=data_args.splits or wanted
    )
    with training_args.main_process_first(desc="loading the dataset"):
        splits = load_dataset_from_config(config, problems=problems)
    missing = [s for s in wanted if s not in splits]
    if missing:
        raise ValueError(
            f"split(s) {missing} not in the {config.dataset} dataset ({available_splits(config, splits)}); set "
            "dataset_train_split / dataset_test_split or the data config's splits"
        )
    train = splits[script_args.dataset_train_split]
    logger.info("train split %r: %d rows (%s)", script_args.dataset_train_split, len(train), config.dataset)
    return train, splits[script_args.dataset_test_split] if do_eval else None


def train_and_save(
    trainer: Any,
    training_args: Any,
    *,
    stage: str,
    data_args: Any,
    model_args: Any,
    checkpoint: str | None,
    problems: ProblemLog | None = None,
) -> StageResult:
    """Train from ``checkpoint`` (the one :func:`rrg_trl.preflight.preflight` chose, or None), save the model,
    metrics, state and ``run_info.json``."""
    add_memory_logging(trainer)
    result = trainer.train(resume_from_checkpoint=checkpoint)
    metrics = dict(result.metrics)
    metrics["train_samples"] = len(trainer.train_dataset)
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    trainer.save_state()
    trainer.save_model(training_args.output_dir)
    if trainer.accelerator.is_main_process:
        synthetic = _synthetic_share(trainer.train_dataset)
        info = {
            "stage": stage,
            "model_name_or_path": model_args.model_name_or_path,
            "use_peft": model_args.use_peft,
            "dataset": data_args.dataset,
            "synthetic_data": synthetic > 0,
            "synthetic_share": synthetic,
            "global_step": trainer.state.global_step,
            "resumed_from": checkpoint,
            "data_skipped": dict(problems.counts) if problems is not None else None,
        }
        Path(training_args.output_dir, RUN_INFO).write_text(json.dumps(info, indent=2) + "\n")
        logger.info(
            "%s finished at step %d; model saved to %s%s",
            stage,
            trainer.state.global_step,
            training_args.output_dir,
            " (trained on SYNTHETIC data)" if synthetic else "",
        )
    trainer.end()  # finish the trackers and tear down the process group, as TRL's scripts do
    return StageResult(
        stage, str(training_args.output_dir), trainer.state.global_step, metrics, checkpoint, trainer
    )


def run_stage(
    trainer_cls: Any,
    stage: str,
    script_args: Any,
    training_args: Any,
    model_args: Any,
    data_args: Any,
    callbacks: Any = None,
) -> StageResult:
    """Every stage's body, TRL's trainer class aside: checks, data, the policy, LoRA, train and save. The RL
    stages (``script_args`` with ``reward_funcs``) check the reward server before anything loads, train on
    prompts only, generate with left padding, and pass the guarded reward functions to the trainer."""
    from transformers import set_seed

    from rrg_trl.model_utils import get_peft_config, get_policy
    from rrg_trl.preflight import model_context, preflight, warn_long_reports
    from rrg_trl.reward_setup import prepare_rewards

    rl = hasattr(script_args, "reward_funcs")
    setup_logging(training_args)
    set_seed(training_args.seed)
    checkpoint = preflight(script_args, training_args, model_args)
    rewards = prepare_rewards(script_args) if rl else None  # fails fast when the reward server is not there
    problems = ProblemLog(data_args.on_error)
    train_dataset, eval_dataset = load_splits(
        data_args, script_args, training_args, with_completion=not rl, problems=problems
    )
    model, processor = get_policy(script_args, model_args, training_args, padding_side="left" if rl else None)
    if rl:
        more = _rewards_for_trainer(script_args, training_args, model, processor, rewards, train_dataset)
    else:
        tokenizer, more = getattr(processor, "tokenizer", processor), {}
        warn_long_reports(train_dataset, tokenizer=tokenizer, context=model_context(model))
    trainer = trainer_cls(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=processor,
        peft_config=get_peft_config(model, model_args),
        callbacks=list(callbacks or []),
        **more,
    )
    return train_and_save(
        trainer,
        training_args,
        stage=stage,
        data_args=data_args,
        model_args=model_args,
        checkpoint=checkpoint,
        problems=problems,
    )


def _rewards_for_trainer(script_args, training_args, model, processor, rewards, dataset) -> dict[str, Any]:
    """The RL trainer's ``reward_funcs`` (the first guarded; their weights go into ``training_args``), after a
    warning about references longer than the reward server takes."""
    from rrg_trl.preflight import warn_long_reports
    from rrg_trl.reward_setup import build_reward_funcs, stop_token_ids

    limits = ((getattr(rewards, "server_info", None) or {}).get("server") or {}).get("limits") or {}
    warn_long_reports(dataset, max_text_chars=limits.get("max_text_chars"))
    stop_ids = stop_token_ids(model, processor)
    funcs, training_args.reward_weights = build_reward_funcs(
        script_args, training_args.reward_weights, stop_ids, rewards=rewards
    )
    return {"reward_funcs": funcs}


def stage_entry_points(stage: str, arguments_cls: type, trainer: str, config: str):
    """``(main, make_parser, run)`` of a stage module: TRL's ``trainer`` / ``config`` classes (by name, so
    TRL is imported only when the stage runs) with our ``arguments_cls``, ModelConfig and DataConfig."""

    def main(script_args, training_args, model_args, data_args, callbacks=None) -> StageResult:
        import trl

        trainer_cls = getattr(trl, trainer)
        return run_stage(trainer_cls, stage, script_args, training_args, model_args, data_args, callbacks)

    def make_parser():
        import trl

        from rrg_trl.data import DataConfig

        dataclasses = (arguments_cls, getattr(trl, config), trl.ModelConfig, DataConfig)
        return trl.TrlParser(dataclasses, prog=f"rrg-trl {stage}", allow_abbrev=False)

    def run(argv: list[str] | None = None) -> StageResult:
        """Parse ``argv`` (``--config recipe.yaml`` + overrides) and train."""
        return main(*make_parser().parse_args_and_config(args=argv))

    return main, make_parser, run


def _synthetic_share(dataset: Any) -> float:
    if "synthetic" not in dataset.column_names or len(dataset) == 0:
        return 0.0
    column = (
        dataset.with_format(None)["synthetic"] if hasattr(dataset, "with_format") else dataset["synthetic"]
    )
    return sum(bool(x) for x in column) / len(column)
