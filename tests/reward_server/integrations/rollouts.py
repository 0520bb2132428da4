"""OpenRLHF rollouts through OpenRLHF's own code, with a replaying engine instead of vLLM.

``SingleTurnAgentExecutor.execute`` (openrlhf.utils.agent) tokenizes the prompt itself (a VLM's processor
expands the image placeholders, ``openrlhf.utils.vlm_utils``), asks the engine for response ids, decodes
prompt ids + response ids with special tokens kept and calls the reward (HTTP or file). The engine here
returns a known report's ids + the EOS id, so the bare completion is known; everything else is OpenRLHF's.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace

from PIL import Image

INSTRUCTION = "Describe the findings of this chest X-ray."
LLAMA_PROMPT = "<s>[INST] " + INSTRUCTION + " [/INST]"


@dataclass
class ReplayEngine:
    """vLLM's ``generate`` interface: answers each call with the next report's token ids + EOS."""

    tokenizer: object
    reports: list[str]
    prompts_seen: list[list[int]] = field(default_factory=list)

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        self.prompts_seen.append(list(prompt_token_ids))
        report = self.reports[len(self.prompts_seen) - 1]
        ids = self.tokenizer(report, add_special_tokens=False)["input_ids"] + [self.tokenizer.eos_token_id]
        out = SimpleNamespace(token_ids=ids, text=report, finish_reason="stop", logprobs=None)
        return SimpleNamespace(outputs=[out])


def chat_prompt(processor, with_image: bool) -> str:
    """The prompt string as OpenRLHF's dataset builds it (``--apply_chat_template``, ``<image>`` tags)."""
    from openrlhf.datasets.prompts_dataset import preprocess_data

    text = ("<image>" if with_image else "") + INSTRUCTION
    prompt, _ = preprocess_data(
        {"input": text}, input_key="input", apply_chat_template=processor.apply_chat_template
    )
    return prompt


def image() -> Image.Image:
    return Image.new("RGB", (48, 40), (90, 90, 90))


def rollout(
    remote_rm_url: str, hf_tokenizer, prompts: list[str], labels: list[str], reports: list[str], images
):
    """One ``SingleTurnAgentExecutor.execute`` per sample; returns (outputs, engine)."""
    from openrlhf.utils.agent import SingleTurnAgentExecutor

    tokenizer = getattr(hf_tokenizer, "tokenizer", hf_tokenizer)
    engine = ReplayEngine(tokenizer, reports)
    executor = SingleTurnAgentExecutor(remote_rm_url=remote_rm_url)

    async def run():
        outs = []
        for prompt, label, imgs in zip(prompts, labels, images, strict=True):
            params = SimpleNamespace(max_tokens=512, logprobs=None)
            outs.append(
                await executor.execute(prompt, label, params, 4096, hf_tokenizer, engine, images=imgs)
            )
        return outs

    return asyncio.run(run()), engine


def llama_style_tokenizer():
    """A text-only sentencepiece-style (Metaspace) BPE with ``<s>`` / ``</s>``: its decode adds a space after
    ``<s>`` and around ``[INST]``, so queries never start with the prompt verbatim (an inexact round trip)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from reward_server.tinykit.corpus import synthetic_reports

    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(
        vocab_size=500, special_tokens=["<unk>", "<s>", "</s>"], initial_alphabet=list("[]/")
    )
    backend.train_from_iterator([*synthetic_reports(200, seed=1), LLAMA_PROMPT], trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="</s>"
    )
