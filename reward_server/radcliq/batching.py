"""Encoder batches for the metric models: each distinct token sequence once, longest first, padded per batch.

Sorting by length keeps padding (wasted compute) small; deduplication means a reference repeated across a
GRPO group, or a text shared by several pairs, costs one forward.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.nn.utils.rnn import pad_sequence


def distinct_longest_first(all_ids: Sequence[Sequence[int]]) -> list[tuple[int, ...]]:
    """The distinct sequences of ``all_ids``, longest first (ties in first-seen order, so runs are repeatable)."""
    return sorted(dict.fromkeys(tuple(ids) for ids in all_ids), key=len, reverse=True)


def padded_batches(
    seqs: Sequence[tuple[int, ...]], batch_size: int, pad_id: int, device: torch.device | str
) -> Iterator[tuple[list[tuple[int, ...]], torch.Tensor, torch.Tensor, list[int]]]:
    """``(batch, input_ids, attention_mask, lengths)`` per chunk of ``batch_size`` sequences, on ``device``."""
    for start in range(0, len(seqs), batch_size):
        batch = list(seqs[start : start + batch_size])
        lens = torch.tensor([len(ids) for ids in batch])
        input_ids = pad_sequence([torch.tensor(ids) for ids in batch], batch_first=True, padding_value=pad_id)
        mask = (torch.arange(input_ids.shape[1])[None, :] < lens[:, None]).long()
        yield batch, input_ids.to(device), mask.to(device), lens.tolist()
