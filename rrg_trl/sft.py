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

from rrg_trl.configs import SFTScriptArguments
from rrg_trl.stage_runner import stage_entry_points

main, make_parser, run = stage_entry_points(
    "sft", SFTScriptArguments, trainer="SFTTrainer", config="SFTConfig"
)

if __name__ == "__main__":
    run()
