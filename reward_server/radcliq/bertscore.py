"""BERTScore as RadCliQ computes it: distilroberta-base, layer 5, greedy cosine matching, baseline rescale.

The arithmetic follows bert-score 0.3.13 as vendored by radeval 2.2.1 (``BERTScorer.score`` /
``greedy_cos_idf``), which is the parity target; the speed comes from doing the work once per distinct text:

* ``encode`` runs the encoder once per distinct token sequence, in length-sorted batches (little padding),
  under ``inference_mode`` and optionally in bf16/fp16, and returns unit-normalised token vectors, so callers
  can cache them per text (references recur across GRPO requests).
* ``score_from_embeddings`` does the cheap pairwise part (cosine matrix, greedy max, weighted means) batched.

Reference behaviour kept on purpose: ``text.strip()``; an empty text encodes as ``<s></s>``; truncation to
510 BPE tokens plus the two specials; weights 1 with 0 on ``<s>``/``</s>`` (idf off) or
``ln((M+1)/(df+1))`` from the references of the call (idf on; unseen tokens ``ln(M+1)``); weights normalised
with no eps; for an empty hypothesis or reference P and R are zeroed AFTER F is computed and a NaN F
becomes 0 (so an empty side scores -5.5502 after rescaling); P, R and F each rescaled in float32.
P and R can be NaN where the reference's are (all weights zero); F never is.

Two reference quirks are decided here rather than inherited silently:

* Padding in the greedy stage. The reference pads each chunk of 64 pairs and multiplies the similarity
  matrix by the padding mask, so a padded position offers similarity 0 to the max. That changes a pair's
  score only when all real cosines of one of its tokens are negative AND the other side of the pair is
  shorter than the longest in its chunk, i.e. it depends on the neighbours. Trained distilroberta is
  strongly anisotropic (cosines far above 0) and the tiny kit is built the same way (its test asserts the
  margin), so by default padded positions are excluded from the max and every pair is scored on its own.
  ``reference_padding=True`` reproduces the artefact exactly (chunks of 64 pairs in input order).
* Runs of spaces. radeval (the parity target) keeps them: each extra space is a BPE token. The original
  CXR-Report-Metric applies ``re.sub(r" +", " ", text)`` first; ``collapse_spaces=True`` does the same.

The baseline constants (bert-score ``rescale_baseline/en/distilroberta-base.tsv``, rows ``LAYER,P,R,F``)
ship in ``reward_server/radcliq/data/bertscore_baseline_en.tsv``; the row used is ``LAYER == num_layers``.
"""

from __future__ import annotations

import csv
import math
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from reward_server.radcliq.batching import distinct_longest_first, padded_batches
from reward_server.radcliq.texts import check_pairs, check_texts

BASELINE_EN = Path(__file__).resolve().parent / "data" / "bertscore_baseline_en.tsv"
# The chunk size of the reference's greedy stage (``BERTScorer.score(batch_size=64)``), for reference_padding.
REFERENCE_PAIR_CHUNK = 64
_SPACES = re.compile(r" +")


def read_baseline(path: str | Path = BASELINE_EN, num_layers: int = 5) -> np.ndarray:
    """The ``(P, R, F)`` baseline row for ``num_layers`` from a bert-score rescale file, as float32."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        if int(row["LAYER"]) == num_layers:
            return np.array([row["P"], row["R"], row["F"]], dtype=np.float32)
    raise ValueError(f"{path} has no baseline row for LAYER={num_layers}")


class TokenEmbeddings(NamedTuple):
    """One text as BERTScore sees it: token ids (CPU) and unit-normalised layer vectors (float32, on device)."""

    ids: torch.Tensor  # [L] int64
    emb: torch.Tensor  # [L, H] float32, each row divided by its L2 norm


class TokenWeights:
    """A per-token-id weight table (float32): idf off, or idf from a set of reference texts."""

    def __init__(self, table: torch.Tensor):
        self.table = table

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        return self.table[ids.to(self.table.device)]

    @classmethod
    def uniform(cls, size: int, zero_ids: Sequence[int], device=None) -> TokenWeights:
        """Weight 1 for every token and 0 for ``zero_ids`` (``<s>``, ``</s>``): bert-score with idf off."""
        table = torch.ones(size, dtype=torch.float32, device=device)
        table[list(zero_ids)] = 0.0
        return cls(table)

    @classmethod
    def idf(cls, ref_ids: Sequence[Sequence[int]], size: int, device=None) -> TokenWeights:
        """``ln((M+1)/(df+1))`` with ``df`` counted over each reference's SET of ids; unseen ids ``ln(M+1)``.

        M counts references with duplicates, as bert-score's ``get_idf_dict`` does; the logs are taken in
        double precision like the reference's Python floats, then stored as float32.
        """
        m = len(ref_ids)
        df = Counter(i for ids in ref_ids for i in {int(t) for t in ids})
        size = max([size, *(i + 1 for i in df)])
        table = torch.full((size,), math.log(m + 1), dtype=torch.float64)
        if df:
            keys = torch.tensor(list(df), dtype=torch.long)
            table[keys] = torch.tensor(
                [math.log((m + 1) / (c + 1)) for c in df.values()], dtype=torch.float64
            )
        return cls(table.to(torch.float32).to(device))


class BERTScorer:
    """Batched BERTScore over one encoder (see the module docstring for the exact semantics)."""

    def __init__(
        self,
        model,
        tokenizer,
        baseline: np.ndarray | None,
        num_layers: int = 5,
        batch_size: int = 64,
        collapse_spaces: bool = False,
        pair_batch_size: int = 256,
        max_sim_elements: int = 1 << 22,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.baseline = None if baseline is None else np.asarray(baseline, dtype=np.float32)
        self.num_layers = num_layers
        self.batch_size = batch_size
        self.pair_batch_size = pair_batch_size
        self.max_sim_elements = max_sim_elements
        self.collapse_spaces = collapse_spaces
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        self.vocab_size = max(len(tokenizer), model.config.vocab_size)
        self.special_ids = (tokenizer.cls_token_id, tokenizer.sep_token_id)
        self.plain_weights = TokenWeights.uniform(self.vocab_size, self.special_ids, device=self.device)

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        device: str | torch.device | None = None,
        dtype: torch.dtype = torch.float32,
        num_layers: int = 5,
        batch_size: int = 64,
        baseline: str | Path | Sequence[float] | None = BASELINE_EN,
        collapse_spaces: bool = False,
    ) -> BERTScorer:
        """Load ``path`` (a distilroberta-base folder) keeping the first ``num_layers`` encoder layers.

        ``baseline``: a bert-score rescale file (row ``LAYER == num_layers``), three numbers ``(P, R, F)``, or
        None for raw scores.
        """
        from transformers import AutoModel, AutoTokenizer

        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        # add_prefix_space=True at load time: the first word gets its "Ġ" like every other (bert-score).
        tokenizer = AutoTokenizer.from_pretrained(str(path), use_fast=True, add_prefix_space=True)
        model = AutoModel.from_pretrained(str(path), dtype=dtype)
        if hasattr(model, "decoder") and hasattr(model, "encoder"):
            model = model.encoder
        layers = model.encoder.layer
        if not 0 <= num_layers <= len(layers):
            raise ValueError(f"num_layers={num_layers} but {path} has {len(layers)} encoder layers")
        model.encoder.layer = torch.nn.ModuleList(list(layers[:num_layers]))
        if getattr(model, "pooler", None) is not None:
            model.pooler = None  # unused: BERTScore reads the token vectors, not the pooled one
        model.eval().requires_grad_(False).to(device)
        if baseline is not None and not isinstance(baseline, (str, Path)):
            baseline = np.asarray(baseline, dtype=np.float32)
            if baseline.shape != (3,):
                raise ValueError(
                    f"baseline must be a file or three numbers (P, R, F), got shape {baseline.shape}"
                )
        elif baseline is not None:
            baseline = read_baseline(baseline, num_layers)
        return cls(
            model,
            tokenizer,
            baseline,
            num_layers=num_layers,
            batch_size=batch_size,
            collapse_spaces=collapse_spaces,
        )

    # -- text -> ids -> vectors ---------------------------------------------------------------------------

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """bert-score's ``sent_encode``: strip; empty -> ``<s></s>``; else ``<s>`` + first 510 BPE + ``</s>``."""
        texts = check_texts(texts)
        if self.collapse_spaces:
            texts = [_SPACES.sub(" ", t) for t in texts]
        stripped = [t.strip() for t in texts]
        out: list[list[int] | None] = [None] * len(texts)
        todo = [i for i, t in enumerate(stripped) if t]
        if todo:
            enc = self.tokenizer(
                [stripped[i] for i in todo],
                add_special_tokens=True,
                max_length=self.tokenizer.model_max_length,
                truncation=True,
            )["input_ids"]
            for i, ids in zip(todo, enc, strict=True):
                out[i] = list(ids)
        empty = None
        for i, ids in enumerate(out):
            if ids is None:
                if empty is None:
                    empty = list(self.tokenizer.encode("", add_special_tokens=True))
                out[i] = empty
        return out

    @torch.inference_mode()
    def encode(self, texts: Sequence[str]) -> list[TokenEmbeddings]:
        """Token vectors per text; one forward per distinct token sequence, length-sorted batches."""
        all_ids = self.tokenize(texts)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        done: dict[tuple[int, ...], TokenEmbeddings] = {}
        for batch, input_ids, mask, lens in padded_batches(
            distinct_longest_first(all_ids), self.batch_size, pad, self.device
        ):
            hidden = self.model(input_ids=input_ids, attention_mask=mask)[0]
            hidden = hidden.float()
            # bert-score normalises in float32 with no eps (greedy_cos_idf).
            hidden = hidden / torch.norm(hidden, dim=-1).unsqueeze(-1)
            for ids, n, vecs in zip(batch, lens, hidden, strict=True):
                done[ids] = TokenEmbeddings(torch.tensor(ids), vecs[:n].clone())
        return [done[tuple(ids)] for ids in all_ids]

    def idf_weights(self, refs: Sequence[str] | Sequence[TokenEmbeddings]) -> TokenWeights:
        """idf from the references of one call (texts or their ``encode`` results)."""
        if refs and all(isinstance(r, TokenEmbeddings) for r in refs):
            ref_ids = [r.ids.tolist() for r in refs]
        else:
            ref_ids = self.tokenize(check_texts(refs, "refs"))
        return TokenWeights.idf(ref_ids, self.vocab_size, device=self.device)

    # -- pairwise part ------------------------------------------------------------------------------------

    @torch.inference_mode()
    def score_from_embeddings(
        self,
        hyp_embs: Sequence[TokenEmbeddings],
        ref_embs: Sequence[TokenEmbeddings],
        idf: TokenWeights | bool | None = None,
        reference_padding: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rescaled ``(P, R, F)`` per pair, float32 numpy.

        ``idf``: None/False (weights 1, 0 on specials), True (idf from ``ref_embs``), or a ``TokenWeights``.
        ``reference_padding``: let padded positions of the reference's 64-pair chunks offer similarity 0.
        """
        if len(hyp_embs) != len(ref_embs):
            raise ValueError(
                f"hyp_embs and ref_embs must have the same length, got {len(hyp_embs)} and {len(ref_embs)}"
            )
        if idf is True:
            weights = self.idf_weights(list(ref_embs))
        elif idf is None or idf is False:
            weights = self.plain_weights
        else:
            weights = idf
        n = len(hyp_embs)
        prf = torch.empty(n, 3, dtype=torch.float32)
        if n == 0:
            return tuple(np.empty(0, dtype=np.float32) for _ in range(3))
        hyp_len = torch.tensor([len(e.ids) for e in hyp_embs])
        ref_len = torch.tensor([len(e.ids) for e in ref_embs])
        for idx in self._pair_batches(hyp_len, ref_len):
            prf[idx] = self._greedy([hyp_embs[i] for i in idx], [ref_embs[i] for i in idx], weights).cpu()
        if reference_padding:
            prf = self._reference_padding(prf, hyp_embs, ref_embs, weights, hyp_len, ref_len)
        P, R, F = prf.unbind(-1)
        F = F.masked_fill(torch.isnan(F), 0.0)
        empty = hyp_len.eq(2) | ref_len.eq(2)
        P = P.masked_fill(empty, 0.0)
        R = R.masked_fill(empty, 0.0)
        out = torch.stack([P, R, F], dim=-1)
        if self.baseline is not None:
            b = torch.from_numpy(self.baseline)
            out = (out - b) / (1 - b)
        return tuple(out[:, k].numpy().copy() for k in range(3))

    def _pair_batches(self, hyp_len: torch.Tensor, ref_len: torch.Tensor) -> list[list[int]]:
        """Pairs sorted by similarity-matrix size, cut so each padded batch stays under ``max_sim_elements``."""
        order = torch.argsort(hyp_len * ref_len, descending=True).tolist()
        batches, current, max_h, max_r = [], [], 0, 0
        for i in order:
            h, r = max(max_h, int(hyp_len[i])), max(max_r, int(ref_len[i]))
            if current and (
                len(current) >= self.pair_batch_size or (len(current) + 1) * h * r > self.max_sim_elements
            ):
                batches.append(current)
                current, h, r = [], int(hyp_len[i]), int(ref_len[i])
            current.append(i)
            max_h, max_r = h, r
        if current:
            batches.append(current)
        return batches

    def _greedy(
        self,
        hyps: list[TokenEmbeddings],
        refs: list[TokenEmbeddings],
        weights: TokenWeights,
        floor: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Raw ``(P, R, F)`` before empty-text handling; ``floor`` [B, 2] bounds (wp, wr) from below."""
        h = pad_sequence([e.emb.to(self.device) for e in hyps], batch_first=True)
        r = pad_sequence([e.emb.to(self.device) for e in refs], batch_first=True)
        hmask, wh = self._padded_weights(hyps, weights)
        rmask, wr = self._padded_weights(refs, weights)
        sim = torch.bmm(h, r.transpose(1, 2))
        word_p = sim.masked_fill(~rmask[:, None, :], float("-inf")).amax(dim=2)
        word_r = sim.masked_fill(~hmask[:, :, None], float("-inf")).amax(dim=1)
        if floor is not None:
            word_p = torch.maximum(word_p, floor[:, 0:1].to(word_p.device))
            word_r = torch.maximum(word_r, floor[:, 1:2].to(word_r.device))
        word_p = word_p.masked_fill(~hmask, 0.0)
        word_r = word_r.masked_fill(~rmask, 0.0)
        wh = wh / wh.sum(dim=1, keepdim=True)
        wr = wr / wr.sum(dim=1, keepdim=True)
        P = (word_p * wh).sum(dim=1)
        R = (word_r * wr).sum(dim=1)
        F = 2 * P * R / (P + R)
        return torch.stack([P, R, F], dim=-1)

    def _padded_weights(self, texts: list[TokenEmbeddings], weights: TokenWeights):
        """Padding mask and per-token weights (0 on padding) for a batch, gathered in one transfer."""
        lens = torch.tensor([len(e.ids) for e in texts])
        ids = pad_sequence([e.ids for e in texts], batch_first=True).to(self.device)
        mask = torch.arange(ids.shape[1], device=self.device)[None] < lens.to(self.device)[:, None]
        return mask, weights(ids) * mask

    def _reference_padding(self, prf, hyp_embs, ref_embs, weights, hyp_len, ref_len) -> torch.Tensor:
        """Recompute the pairs whose side is shorter than its chunk's longest: there a padded 0 joins the max."""
        prf = prf.clone()
        chunk = REFERENCE_PAIR_CHUNK
        for start in range(0, len(hyp_embs), chunk):
            sl = slice(start, start + chunk)
            hyp_short = hyp_len[sl] < hyp_len[sl].max()  # a padded hyp row offers 0 to each ref token's max
            ref_short = ref_len[sl] < ref_len[sl].max()
            which = (hyp_short | ref_short).nonzero().flatten().tolist()
            if not which:
                continue
            idx = [start + i for i in which]
            neg_inf = float("-inf")
            floor = torch.tensor(
                [[0.0 if ref_short[i] else neg_inf, 0.0 if hyp_short[i] else neg_inf] for i in which]
            )
            prf[idx] = self._greedy(
                [hyp_embs[i] for i in idx], [ref_embs[i] for i in idx], weights, floor=floor
            ).cpu()
        return prf

    def score(
        self, hyps: Sequence[str], refs: Sequence[str], idf: bool = False, reference_padding: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rescaled ``(P, R, F)`` (float32 numpy) per pair; ``idf=True`` takes idf from ``refs`` (with duplicates)."""
        hyps, refs = check_pairs(hyps, refs)
        embs = self.encode(hyps + refs)
        weights = self.idf_weights(embs[len(hyps) :]) if idf else None
        return self.score_from_embeddings(
            embs[: len(hyps)], embs[len(hyps) :], idf=weights, reference_padding=reference_padding
        )
