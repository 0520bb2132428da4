"""Conversational prompts in the shape TRL's VLM trainers expect.

GRPOTrainer / SFTTrainer want ``prompt`` as a list of ``{"role", "content"}`` messages with *string*
content and no chat template applied: the trainer itself inserts the ``{"type": "image"}`` blocks
before the first user message (``trl.data_utils.prepare_multimodal_messages``) and applies the model's
own template; a pre-templated string makes GRPO raise "Multimodal training requires conversational
prompts". Some chat templates (e.g. LLaVA-1.5) reject a system turn: pass ``system_prompt=None``.
"""

from __future__ import annotations

SECTIONS = ("findings", "impression", "both")

DEFAULT_SYSTEM_PROMPT = (
    "You are an expert radiologist. Describe chest X-rays accurately and concisely, "
    "in the style of a radiology report."
)

DEFAULT_INSTRUCTIONS = {
    "findings": "Write the FINDINGS section of the radiology report for this chest X-ray.",
    "impression": "Write the IMPRESSION section of the radiology report for this chest X-ray.",
    "both": "Write the FINDINGS and IMPRESSION sections of the radiology report for this chest X-ray.",
}


def default_instruction(section: str) -> str:
    if section not in DEFAULT_INSTRUCTIONS:
        raise ValueError(f"section must be one of {SECTIONS}, got {section!r}")
    return DEFAULT_INSTRUCTIONS[section]


def build_prompt(
    instruction: str,
    system_prompt: str | None = DEFAULT_SYSTEM_PROMPT,
    indication: str | None = None,
) -> list[dict[str, str]]:
    """System (optional) + one user message; the indication, when given, follows the instruction."""
    if not instruction or not instruction.strip():
        raise ValueError("instruction must be a non-empty string")
    user = instruction.strip()
    if indication and indication.strip():
        user += f"\nIndication: {' '.join(indication.split())}"
    messages = [{"role": "system", "content": system_prompt.strip()}] if system_prompt else []
    messages.append({"role": "user", "content": user})
    return messages


def completion_messages(report: str) -> list[dict[str, str]]:
    """The assistant turn SFTTrainer's prompt-completion collator needs (``completion`` column)."""
    return [{"role": "assistant", "content": report}]
