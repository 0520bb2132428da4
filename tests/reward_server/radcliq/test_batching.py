"""Encoder batching: every distinct sequence exactly once, longest first, correctly padded and masked."""

import torch

from reward_server.radcliq.batching import distinct_longest_first, padded_batches


def test_distinct_longest_first_dedupes_and_keeps_first_seen_order_among_ties():
    seqs = [[1, 2], [3], [1, 2], [4, 5, 6], [7, 8], [3]]
    assert distinct_longest_first(seqs) == [(4, 5, 6), (1, 2), (7, 8), (3,)]


def test_padded_batches_cover_each_sequence_once_with_matching_masks():
    seqs = distinct_longest_first([[5, 6, 7, 8], [1], [2, 3], [9, 9, 9], [4]])
    seen = []
    for batch, input_ids, mask, lens in padded_batches(seqs, 2, pad_id=0, device="cpu"):
        assert input_ids.shape == mask.shape == (len(batch), max(lens))
        assert lens == [len(s) for s in batch]
        for row, m, s in zip(input_ids, mask, batch, strict=True):
            assert row[: len(s)].tolist() == list(s)
            assert m.tolist() == [1] * len(s) + [0] * (len(row) - len(s))
            assert row[len(s) :].eq(0).all()
        seen.extend(batch)
    assert seen == seqs


def test_padded_batches_of_nothing_yield_nothing():
    assert list(padded_batches([], 4, pad_id=1, device=torch.device("cpu"))) == []
