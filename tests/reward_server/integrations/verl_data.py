"""verl rollout batches built with verl's own ``DataProto`` (shared by tests/…/test_verl.py and
benchmarks/bench_verl.py): left-padded prompts, right-padded responses ending in EOS, one attention mask."""

from __future__ import annotations

import numpy as np
import torch

PROMPT = "<|im_start|>user\nFindings?<|im_end|>\n<|im_start|>assistant\n"


def make_batch(tokenizer, reports: list[str], refs: list[str], data_source: str = "iu_xray"):
    from verl import DataProto

    prompt = tokenizer(PROMPT)["input_ids"]
    responses = [tokenizer(r)["input_ids"] + [tokenizer.eos_token_id] for r in reports]
    plen, rlen, pad = len(prompt) + 2, max(map(len, responses)) + 3, tokenizer.pad_token_id
    prompts = torch.tensor([[pad] * (plen - len(prompt)) + prompt for _ in reports])
    resp = torch.tensor([r + [pad] * (rlen - len(r)) for r in responses])
    left = [0] * (plen - len(prompt)) + [1] * len(prompt)
    mask = torch.tensor([left + [1] * len(r) + [0] * (rlen - len(r)) for r in responses])
    non_tensors = {
        "data_source": np.array([data_source] * len(reports), dtype=object),
        "reward_model": np.array([{"ground_truth": g, "style": "model"} for g in refs], dtype=object),
        "extra_info": np.array([{"index": i} for i in range(len(reports))], dtype=object),
    }
    tensors = {
        "prompts": prompts,
        "responses": resp,
        "attention_mask": mask,
        "input_ids": torch.cat([prompts, resp], 1),
    }
    return DataProto.from_dict(tensors=tensors, non_tensors=non_tensors)


def custom_reward_config(path: str, name: str, policy_dir: str | None = None, **reward_kwargs):
    """The trainer config's reward section (``reward.custom_reward_function``, ``reward.reward_manager``) as
    ``get_custom_reward_fn`` and the reward loop read it; ``policy_dir`` adds the policy model path the
    reward loop's worker loads its tokenizer from."""
    from omegaconf import OmegaConf

    custom = {"path": path, "name": name, "reward_kwargs": reward_kwargs}
    manager = {
        "source": "register",
        "name": "naive",
        "module": {"path": None, "name": "custom_reward_manager"},
    }
    reward = {"custom_reward_function": custom, "reward_manager": manager, "reward_model": {"enable": False}}
    model = {"path": policy_dir, "tokenizer_path": None}
    return OmegaConf.create({"reward": reward, "actor_rollout_ref": {"model": model}})
