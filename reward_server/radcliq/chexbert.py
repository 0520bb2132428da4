"""CheXbert from the official ``chexbert.pth``: [CLS] embeddings for s_emb and the 14 CheXpert labels.

Loads ``{"model_state_dict": {"module.bert.*", "module.linear_heads.{0..13}.*"}}`` (the original was saved from
``nn.DataParallel``) into ``BertModel(AutoConfig(bert-base-uncased))`` plus 13 four-way heads (blank, positive,
negative, uncertain) and one two-way head (No Finding), as radeval 2.2.1's ``F1CheXbert`` does, with every key
checked (missing or unexpected keys are named in the error).

Reference behaviour kept: ``BertTokenizer(bert-base-uncased)`` with ``truncation=True, max_length=512`` (the
first 510 word pieces, then ``[SEP]``; an empty or whitespace text is ``[CLS][SEP]``); the embedding is the
last layer's [CLS] vector (no pooler, no heads); s_emb is the float32 numpy cosine with no eps and 0 when a
norm is 0. Faster than the reference: one forward per distinct token sequence, length-sorted batches,
``inference_mode`` and optional bf16/fp16 (the [CLS] vector is returned in float32 either way).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from reward_server.radcliq.batching import distinct_longest_first, padded_batches
from reward_server.radcliq.texts import check_texts

N_FOUR_WAY_HEADS = 13
N_HEADS = N_FOUR_WAY_HEADS + 1
MAX_LENGTH = 512


def _strip_module(state: dict) -> dict:
    return {k[len("module.") :] if k.startswith("module.") else k: v for k, v in state.items()}


def _describe(keys: Sequence[str], limit: int = 12) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


class CheXbert(torch.nn.Module):
    """BERT backbone + 14 linear heads on the [CLS] vector."""

    def __init__(self, bert, tokenizer, batch_size: int = 64):
        super().__init__()
        hidden = bert.config.hidden_size
        self.bert = bert
        self.linear_heads = torch.nn.ModuleList(
            [torch.nn.Linear(hidden, 4) for _ in range(N_FOUR_WAY_HEADS)] + [torch.nn.Linear(hidden, 2)]
        )
        self.tokenizer = tokenizer
        self.batch_size = batch_size

    @classmethod
    def from_pretrained(
        cls,
        weights_path: str | Path,
        backbone_dir: str | Path,
        device: str | torch.device | None = None,
        dtype: torch.dtype = torch.float32,
        batch_size: int = 64,
    ) -> CheXbert:
        """Config and tokenizer from ``backbone_dir`` (bert-base-uncased); every weight from ``weights_path``."""
        from transformers import AutoConfig, BertModel, BertTokenizer

        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        config = AutoConfig.from_pretrained(str(backbone_dir))
        tokenizer = BertTokenizer.from_pretrained(str(backbone_dir))
        model = cls(BertModel(config), tokenizer, batch_size=batch_size)
        model.load_checkpoint(weights_path)
        model.bert.pooler = None  # its weights are in the checkpoint (checked above) but never used
        model.eval().requires_grad_(False).to(device)
        model.bert.to(dtype=dtype)  # the heads stay float32: labels come from the float32 [CLS] vector
        return model

    def load_checkpoint(self, weights_path: str | Path) -> None:
        """Load ``chexbert.pth``; raise ValueError naming missing, unexpected or mis-shaped keys."""
        raw = torch.load(str(weights_path), map_location="cpu", weights_only=True)
        if not isinstance(raw, dict) or "model_state_dict" not in raw:
            found = sorted(raw)[:5] if isinstance(raw, dict) else type(raw).__name__
            raise ValueError(
                f"{weights_path} is not a CheXbert checkpoint: expected a dict with "
                f"'model_state_dict', found {found}"
            )
        state = _strip_module(raw["model_state_dict"])
        expected = self.state_dict()
        missing = [k for k in expected if k not in state]
        unexpected = [k for k in state if k not in expected]
        problems = []
        if missing:
            problems.append(f"missing keys: {_describe(missing)}")
        if unexpected:
            problems.append(f"unexpected keys: {_describe(unexpected)}")
        shapes = [
            f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
            for k, v in expected.items()
            if k in state and tuple(state[k].shape) != tuple(v.shape)
        ]
        if shapes:
            problems.append(f"shape mismatches (checkpoint != config): {_describe(shapes)}")
        if problems:
            raise ValueError(
                f"{weights_path} does not match the CheXbert architecture (bert backbone from its "
                f"config + {N_FOUR_WAY_HEADS} four-way heads + 1 two-way head): " + "; ".join(problems)
            )
        self.load_state_dict(state, strict=True)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.bert.parameters()).dtype

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """``[CLS]`` + first 510 word pieces + ``[SEP]``, as ``tokenizer(truncation=True, max_length=512)``."""
        texts = check_texts(texts)
        if not texts:
            return []
        return [
            list(ids) for ids in self.tokenizer(texts, truncation=True, max_length=MAX_LENGTH)["input_ids"]
        ]

    @torch.inference_mode()
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Last-layer [CLS] vectors, float32 ``[n, hidden]``; one forward per distinct token sequence."""
        all_ids = self.tokenize(texts)
        distinct = distinct_longest_first(all_ids)
        rows: dict[tuple[int, ...], int] = {}
        out = torch.empty(len(distinct), self.bert.config.hidden_size, dtype=torch.float32)
        start = 0
        for batch, input_ids, mask, _ in padded_batches(
            distinct, self.batch_size, self.tokenizer.pad_token_id or 0, self.device
        ):
            hidden = self.bert(input_ids=input_ids, attention_mask=mask)[0]
            out[start : start + len(batch)] = hidden[:, 0].float().cpu()
            rows.update({ids: start + j for j, ids in enumerate(batch)})
            start += len(batch)
        index = torch.tensor([rows[tuple(ids)] for ids in all_ids], dtype=torch.long)
        return out[index].numpy()

    @torch.inference_mode()
    def logits_from_embeddings(self, cls: np.ndarray | torch.Tensor) -> list[torch.Tensor]:
        """The 14 heads' logits (float32, CPU) for ``[n, hidden]`` [CLS] vectors."""
        x = torch.as_tensor(np.asarray(cls, dtype=np.float32)).to(self.device)
        return [head(x).cpu() for head in self.linear_heads]

    def labels_from_embeddings(self, cls: np.ndarray | torch.Tensor) -> np.ndarray:
        """Per-head argmax class, int64 ``[n, 14]``: 0 blank, 1 positive, 2 negative, 3 uncertain (head 13: 0/1)."""
        logits = self.logits_from_embeddings(cls)
        if not logits or logits[0].shape[0] == 0:
            return np.zeros((0, N_HEADS), dtype=np.int64)
        return torch.stack([z.argmax(dim=1) for z in logits], dim=1).numpy()

    def labels(self, texts: Sequence[str]) -> np.ndarray:
        return self.labels_from_embeddings(self.embed(texts))

    @staticmethod
    def semb(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Row-wise cosine in float32 exactly as RadCliQ's reference: no eps, 0 where a norm is 0."""
        a = np.asarray(a, dtype=np.float32)
        b = np.asarray(b, dtype=np.float32)
        if a.shape != b.shape or a.ndim != 2:
            raise ValueError(
                f"semb needs two [n, hidden] arrays of the same shape, got {a.shape} and {b.shape}"
            )
        dot = np.einsum("nd,nd->n", a, b)
        norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(norms > 0, dot / norms, np.float32(0.0)).astype(np.float32)
