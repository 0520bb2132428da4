"""Batched report generation for evaluation: policy from a path (full model or LoRA adapter), greedy by default.

Prompts are built exactly as TRL's GRPOTrainer builds them for generation (the dataset's conversational
``prompt`` + its image through ``trl.data_utils.prepare_multimodal_messages``, then the processor's chat
template with the generation prompt), so an evaluated report is what the policy would write during RL.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import LogitsProcessorList

from rrg_trl.evaluation.ngram_blocking import WordNgramBlocker, check_ngram_unit
from rrg_trl.modeling import Policy, load_policy
from rrg_trl.modeling.adapters import ADAPTER_CONFIG, is_adapter_dir, merge_adapters, split_adapters


def load_eval_policy(
    model_name_or_path: str | Path,
    adapter_path: str | Path | None = None,
    *,
    dtype: str = "auto",
    device: str | None = None,
) -> Policy:
    """Model + processor in eval mode on ``device``, every LoRA adapter merged in.

    ``model_name_or_path`` is a full model (``config.json``) or a PEFT adapter directory, whose
    ``base_model_name_or_path`` is loaded underneath (itself possibly an adapter directory: SFT adapter, then
    GRPO adapter). ``adapter_path`` adds one more adapter on top. The processor is the one saved nearest the
    top of that chain, else the base model's (:mod:`rrg_trl.modeling.adapters`).
    """
    if adapter_path is not None and not is_adapter_dir(adapter_path):
        raise ValueError(f"adapter_path {adapter_path} has no {ADAPTER_CONFIG}: not a PEFT adapter directory")
    base, chain = split_adapters(model_name_or_path)
    if adapter_path is not None:
        chain.append(Path(adapter_path).resolve())
    model, processor = merge_adapters(*load_policy(base, dtype=dtype, freeze_vision=False), chain)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return Policy(model.to(device).eval(), processor)


def _row_images(dataset, start: int, stop: int) -> list[list]:
    if "image" in dataset.column_names:
        return [[im] for im in dataset[start:stop]["image"]]
    if "images" in dataset.column_names:
        return [list(ims) for ims in dataset[start:stop]["images"]]
    return [[] for _ in range(start, stop)]


@torch.inference_mode()
def generate_reports(
    model,
    processor,
    dataset,
    *,
    batch_size: int = 8,
    max_new_tokens: int = 128,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    num_beams: int = 1,
    no_repeat_ngram_size: int = 0,
    no_repeat_ngram_unit: str = "word",
    repetition_penalty: float = 1.0,
    seed: int = 0,
    progress: bool = True,
    image_source=None,
) -> list[str]:
    """One report per dataset row (``prompt`` + ``image``/``images`` columns), in row order.

    ``no_repeat_ngram_unit``: ``"word"`` blocks repeated word n-grams, as R2Gen-family papers (whose tokens are
    words) and the degeneracy figures count them (:mod:`rrg_trl.evaluation.ngram_blocking`); ``"token"`` blocks
    repeated subword-token n-grams (transformers' ``no_repeat_ngram_size``).
    ``image_source``: a dataset of the same length whose row ``i`` gives row ``i``'s image(s) instead of the
    row's own (the image-ablation control keeps each study's prompt and swaps only its image).
    """
    from trl.data_utils import prepare_multimodal_messages

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if "prompt" not in dataset.column_names:
        raise ValueError(f"the dataset has no 'prompt' column (columns: {dataset.column_names})")
    if image_source is not None and len(image_source) != len(dataset):
        raise ValueError(f"image_source has {len(image_source)} rows for a dataset of {len(dataset)}")
    check_ngram_unit(no_repeat_ngram_unit)
    tokenizer = getattr(processor, "tokenizer", processor)
    by_words = bool(no_repeat_ngram_size) and no_repeat_ngram_unit == "word"
    gen_kwargs = dict(
        max_new_tokens=max_new_tokens,
        do_sample=do_sample,
        num_beams=num_beams,
        no_repeat_ngram_size=0 if by_words else no_repeat_ngram_size,
        repetition_penalty=repetition_penalty,
        pad_token_id=tokenizer.pad_token_id,
    )
    if do_sample:
        gen_kwargs.update(temperature=temperature, top_p=top_p)
        torch.manual_seed(seed)
    device = next(model.parameters()).device
    reports: list[str] = []
    n = len(dataset)
    with tqdm(total=n, desc="generating reports", unit="report", disable=not progress) as bar:
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            prompts = dataset[start:stop]["prompt"]
            conversations = [
                prepare_multimodal_messages(p, images=ims) if ims else p
                for p, ims in zip(
                    prompts,
                    _row_images(dataset if image_source is None else image_source, start, stop),
                    strict=True,
                )
            ]
            inputs = processor.apply_chat_template(
                conversation=conversations,
                add_generation_prompt=True,
                tokenize=True,
                return_dict=True,
                return_tensors="pt",
                processor_kwargs={"padding": True, "padding_side": "left"},
            ).to(device)
            prompt_length = inputs["input_ids"].shape[1]
            if by_words:
                blocker = WordNgramBlocker(tokenizer, no_repeat_ngram_size, prompt_length, max_new_tokens)
                gen_kwargs["logits_processor"] = LogitsProcessorList([blocker])
            out = model.generate(**inputs, **gen_kwargs)
            new_tokens = out[:, prompt_length:]
            reports += [t.strip() for t in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
            bar.update(stop - start)
    return reports
