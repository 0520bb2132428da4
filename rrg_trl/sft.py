"""Supervised fine-tuning (warm start): TRL's SFTTrainer on chest X-ray + reference report.

Rows are conversational prompt-completion pairs (``prompt``: system + user messages, ``completion``: the
assistant's report) with one ``image``; TRL's vision-language collator inserts the image into the prompt and
computes the loss on the completion only. LoRA / QLoRA come from ModelConfig's flags (``use_peft``,
``lora_r``, ``load_in_4bit``, ...); the adapters sit on the decoder only.

    python -m rrg_trl.sft --config recipes/qwen2.5-vl-3b/sft.yaml
    accelerate launch --config_file recipes/accelerate/zero2.yaml -m rrg_trl.sft --config recipes/qwen2.5-vl-3b/sft.yaml
    rrg-trl sft --config recipes/tiny/sft.yaml --max_steps 5

With ``use_peft`` the output directory holds the adapter and the processor; the RL stages take that
directory as ``model_name_or_path`` and merge the adapter into its base before adding their own. A run
relaunched with the same ``output_dir`` resumes from its last ``checkpoint-N`` (see
:mod:`rrg_trl.checkpoints`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rrg_trl.configs import SFTScriptArguments
from rrg_trl.data import DataConfig
from rrg_trl.stage_runner import StageResult


def main(
    script_args: SFTScriptArguments,
    training_args: Any,
    model_args: Any,
    data_args: DataConfig,
    callbacks: Sequence[Any] | None = None,
) -> StageResult:
    from transformers import set_seed
    from trl import SFTTrainer

    from rrg_trl.data.errors import ProblemLog
    from rrg_trl.model_utils import get_peft_config, get_policy
    from rrg_trl.preflight import model_context, preflight, warn_long_reports
    from rrg_trl.stage_runner import load_splits, setup_logging, train_and_save

    setup_logging(training_args)
    set_seed(training_args.seed)
    checkpoint = preflight(script_args, training_args, model_args)
    problems = ProblemLog(data_args.on_error)
    train_dataset, eval_dataset = load_splits(
        data_args, script_args, training_args, with_completion=True, problems=problems
    )
    model, processor = get_policy(script_args, model_args, training_args)
    warn_long_reports(
        train_dataset, tokenizer=getattr(processor, "tokenizer", processor), context=model_context(model)
    )
    trainer = SFTTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=processor,
        peft_config=get_peft_config(model, model_args),
        callbacks=list(callbacks or []),
    )
    return train_and_save(
        trainer,
        training_args,
        stage="sft",
        data_args=data_args,
        model_args=model_args,
        checkpoint=checkpoint,
        problems=problems,
    )


def make_parser():
    from trl import ModelConfig, SFTConfig, TrlParser

    return TrlParser(
        (SFTScriptArguments, SFTConfig, ModelConfig, DataConfig), prog="rrg-trl sft", allow_abbrev=False
    )


def run(argv: list[str] | None = None) -> StageResult:
    """Parse ``argv`` (``--config recipe.yaml`` + overrides) and train."""
    return main(*make_parser().parse_args_and_config(args=argv))


if __name__ == "__main__":
    run()
