"""Batched DyGIE++ inference for RadGraph (model_type "radgraph"), loading the official archive.

The reference (radgraph 0.1.18 as vendored by radeval 2.2.1) runs AllenNLP one report at a time. This module
computes the same function for many reports at once, in the reference's steps:

1. words: :func:`~reward_server.radcliq.radgraph.preprocess.split_report`; each word is tokenised on its own and the
   pieces are concatenated (AllenNLP's "mismatched" indexer);
2. pieces are cut into segments of ``max_length - 2`` and every segment runs through the backbone as its
   own ``[CLS] ... [SEP]`` row (the reference's long-input folding; segments of all reports in a batch are
   padded and masked together);
3. a word is the mean of its pieces' last-layer vectors (zero when it has no pieces);
4. every span of at most ``max_span_width`` words is ``[x_start; x_end; width_embedding]``;
5. NER: ``argmax([0, ner(g)])``, a span is an entity iff its label is not the null label 0;
6. pruning: the ``ceil(n_words * spans_per_word)`` spans with the highest mention score, per report,
   back in enumeration order;
7. relations over every ordered pair of kept spans, the diagonal included:
   ``argmax([0, rel([g_i; g_j; g_i * g_j]) + m_i + m_j]) - 1``; a relation is kept only if both of its spans
   are entities.

Padding never reaches a decision: padded word pieces are masked in attention and in pooling, spans are
enumerated per report, padded spans score -inf before top-k, and relation pairs are enumerated per report.
Results therefore equal the reference's up to float32 rounding of the batched kernels.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from reward_server.radcliq.model_files import resolve_hub_id
from reward_server.radcliq.radgraph.archive import RadGraphArchive, RadGraphArchiveError
from reward_server.radcliq.radgraph.preprocess import normalize_word, split_report

# DyGIE's label namespaces are "<dataset>__ner_labels"; radeval passes model_type as the dataset.
DATASET = "radgraph"
WIDTH_EMBEDDING = "_endpoint_span_extractor._span_width_embedding.weight"
_MAX_CACHED_WORDS = 1 << 20


def _linear(archive: RadGraphArchive, prefix: str) -> nn.Linear:
    weight, bias = archive.tensor(f"{prefix}.weight"), archive.tensor(f"{prefix}.bias")
    layer = nn.Linear(weight.shape[1], weight.shape[0])
    layer.weight.data.copy_(weight)
    layer.bias.data.copy_(bias)
    return layer


def _feedforward(archive: RadGraphArchive, prefix: str) -> nn.Sequential:
    """AllenNLP ``FeedForward`` with ReLU after every layer (DyGIE's ``make_feedforward``); dropout is off."""
    layers: list[nn.Module] = []
    while f"{prefix}._linear_layers.{len(layers) // 2}.weight" in archive.weights:
        layers += [_linear(archive, f"{prefix}._linear_layers.{len(layers) // 2}"), nn.ReLU()]
    if not layers:
        raise RadGraphArchiveError(
            f"{archive.source}: weights.th has no feed-forward {prefix}._linear_layers.*"
        )
    return nn.Sequential(*layers)


def _special_tokens(tokenizer) -> tuple[list[int], list[int]]:
    """The ids the tokenizer puts before and after a single sequence (AllenNLP reverse-engineers them too)."""
    for dummy in ("a", "1"):
        full = tokenizer(dummy, add_special_tokens=True)["input_ids"]
        plain = tokenizer(dummy, add_special_tokens=False)["input_ids"]
        for i in range(len(full) - len(plain) + 1):
            if plain and full[i : i + len(plain)] == plain:
                return full[:i], full[i + len(plain) :]
    raise ValueError("cannot locate the special tokens of the RadGraph backbone tokenizer")


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise ValueError(f"texts must be a list of strings, got {type(texts).__name__}")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"texts[{i}] must be a string, got {type(text).__name__}")
    return list(texts)


@dataclass
class _Batch:
    """CPU-side index tensors for one batch of non-empty reports (built once, moved to the device once)."""

    words: list[list[str]]
    input_ids: torch.Tensor  # (rows, length): one row per backbone segment
    attention_mask: torch.Tensor  # (rows, length)
    piece_index: torch.Tensor  # (words, max pieces per word): flat index into rows*length
    piece_mask: torch.Tensor  # (words, max pieces per word)
    span_start: torch.Tensor  # (spans,): batch-global word index
    span_end: torch.Tensor
    span_width: torch.Tensor
    span_doc: torch.Tensor  # (spans,): report of each span
    span_local: torch.Tensor  # (spans,): index of the span within its report
    span_offset: np.ndarray  # (reports + 1,)
    keep: torch.Tensor  # (reports,): spans kept for relations, k = ceil(n_words * spans_per_word)
    pair_doc: torch.Tensor  # (pairs,): every ordered pair (i, j) of kept positions, per report, row-major
    pair_i: torch.Tensor
    pair_j: torch.Tensor
    pair_offset: np.ndarray  # (reports + 1,)


@dataclass
class _Outputs:
    ner_label: torch.Tensor  # (spans,) 0 = null
    kept: torch.Tensor  # (reports, max k): kept span indices (batch-global), ascending per report
    relation_label: torch.Tensor  # (pairs,) -1 = null
    ner_scores: torch.Tensor | None = None  # (spans, 1 + entity labels), null score 0 first
    mention_scores: torch.Tensor | None = None  # (spans,)
    relation_scores: torch.Tensor | None = None  # (pairs, 1 + relation labels), null score 0 first


@dataclass
class DocScores:
    """Every raw score behind one report's decisions (for decision margins and for calibrating test heads)."""

    words: list[str]
    spans: np.ndarray  # (S, 2) inclusive word offsets, enumeration order
    ner: np.ndarray  # (S, 1 + entity labels): [0, ner scores]; label = argmax
    mention: np.ndarray  # (S,) pruner scores
    kept: np.ndarray  # (k,) indices into spans, ascending
    relation: np.ndarray  # (k, k, 1 + relation labels): [0, relation scores]; label = argmax - 1

    def margins(self) -> dict[str, float]:
        """Distance of each decision kind from flipping (float32 noise near 1e-6 can flip smaller margins).

        ``ner``: smallest gap between the best and runner-up of ``[0, u]`` over all spans; ``prune``: gap
        between the k-th and (k+1)-th mention score; ``relation``: smallest best/runner-up gap over pairs
        whose two spans are both entities (only those can reach the output).
        """

        def gap(z: np.ndarray) -> float:
            if z.size == 0:
                return math.inf
            top = np.sort(z, axis=-1)
            return float((top[..., -1] - top[..., -2]).min())

        k = len(self.kept)
        ranked = np.sort(self.mention)[::-1]
        prune = float(ranked[k - 1] - ranked[k]) if 0 < k < len(ranked) else math.inf
        entity = self.ner.argmax(-1) != 0
        both = entity[self.kept][:, None] & entity[self.kept][None, :]
        return {"ner": gap(self.ner), "prune": prune, "relation": gap(self.relation[both])}


class RadGraph(nn.Module):
    """RadGraph (DyGIE++) entity and relation extraction, batched over reports.

    >>> rg = RadGraph.from_pretrained("models/StanfordAIMI/RRG_scorers/radgraph.tar.gz", model_dir="models")
    >>> rg.annotate(["No pleural effusion."])[0]["entities"]["1"]
    {'tokens': ..., 'label': ..., 'start_ix': ..., 'end_ix': ..., 'relations': [...]}
    """

    def __init__(
        self,
        backbone: nn.Module,
        tokenizer,
        *,
        width_embedding: torch.Tensor,
        ner_ff: nn.Module,
        ner_out: nn.Linear,
        prune_ff: nn.Module,
        prune_out: nn.Linear,
        relation_ff: nn.Module,
        relation_out: nn.Linear,
        ner_labels: Sequence[str],
        relation_labels: Sequence[str],
        max_span_width: int,
        spans_per_word: float,
        max_length: int | None,
        batch_size: int = 32,
        pair_chunk: int | None = None,
    ):
        super().__init__()
        if ner_labels[0] != "":
            raise RadGraphArchiveError(
                f"the entity label at index 0 must be the null label '', got {ner_labels[0]!r}"
            )
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.width_embedding = nn.Parameter(width_embedding.clone(), requires_grad=False)
        self.ner_ff, self.ner_out = ner_ff, ner_out
        self.prune_ff, self.prune_out = prune_ff, prune_out
        self.relation_ff, self.relation_out = relation_ff, relation_out
        self.ner_labels = list(ner_labels)
        self.relation_labels = list(relation_labels)
        self.max_span_width = int(max_span_width)
        self.spans_per_word = float(spans_per_word)
        self.batch_size = int(batch_size)
        self.pair_chunk = pair_chunk
        self._prefix, self._suffix = _special_tokens(tokenizer)
        n_special = len(self._prefix) + len(self._suffix)
        self._segment = None if max_length is None else int(max_length) - n_special
        if self._segment is not None and self._segment < 1:
            raise RadGraphArchiveError(f"max_length {max_length} leaves no room for word pieces")
        self._pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self._pieces: dict[str, tuple[int, ...]] = {}
        self._span_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._check_shapes()

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(
        cls,
        archive_or_dir: str | Path | RadGraphArchive,
        model_dir: str | Path | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype = torch.float32,
        batch_size: int | None = None,
        attn_implementation: str | None = None,
        pair_chunk: int | None = None,
    ) -> RadGraph:
        """Load ``radgraph.tar.gz`` (or its extracted folder) and the backbone it names.

        The backbone id in the archive's config.json is resolved with ``resolve_hub_id(model_dir, id)``:
        a sibling folder of that name in ``model_dir`` if present, else the id itself. Its config and tokenizer
        come from there; every weight comes from ``weights.th``. ``dtype`` other than float32 runs the backbone
        in that precision (opt-in; the span heads stay float32 so their sign tests keep full precision).
        ``batch_size`` (reports per forward, length-bucketed) defaults to 16 on CPU and 128 on CUDA;
        ``pair_chunk`` bounds how many relation pairs are embedded at once (default: by memory budget).
        """
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        device = torch.device(device)
        archive = (
            archive_or_dir
            if isinstance(archive_or_dir, RadGraphArchive)
            else RadGraphArchive.load(archive_or_dir)
        )
        name = resolve_hub_id(model_dir, archive.backbone_name)
        config = AutoConfig.from_pretrained(name)
        kwargs = {} if attn_implementation is None else {"attn_implementation": attn_implementation}
        backbone = AutoModel.from_config(config, **kwargs)
        missing, unexpected = backbone.load_state_dict(archive.backbone_state_dict(), strict=False)
        unexpected = [k for k in unexpected if not k.endswith("position_ids")]  # old buffers, not weights
        if missing or unexpected:
            raise RadGraphArchiveError(
                f"{archive.source}: backbone weights do not match {name}'s config: "
                f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
            )
        tokenizer = AutoTokenizer.from_pretrained(name, use_fast=True)
        ner_ns, rel_ns = f"{DATASET}__ner_labels", f"{DATASET}__relation_labels"
        ner = f"_ner._ner_scorers.{ner_ns}"
        pruner = f"_relation._mention_pruners.{rel_ns}._scorer"
        model = cls(
            backbone,
            tokenizer,
            width_embedding=archive.tensor(WIDTH_EMBEDDING),
            ner_ff=_feedforward(archive, f"{ner}.0._module"),
            ner_out=_linear(archive, f"{ner}.1._module"),
            prune_ff=_feedforward(archive, f"{pruner}.0._module"),
            prune_out=_linear(archive, f"{pruner}.1._module"),
            relation_ff=_feedforward(archive, f"_relation._relation_feedforwards.{rel_ns}"),
            relation_out=_linear(archive, f"_relation._relation_scorers.{rel_ns}"),
            ner_labels=archive.labels(ner_ns),
            relation_labels=archive.labels(rel_ns),
            max_span_width=archive.max_span_width,
            spans_per_word=archive.spans_per_word,
            max_length=archive.max_length,
            batch_size=batch_size or (128 if device.type == "cuda" else 16),
            pair_chunk=pair_chunk,
        )
        model.eval()
        model.to(device)
        if dtype != torch.float32:
            model.backbone.to(dtype)
        return model

    def _check_shapes(self) -> None:
        hidden = self.backbone.config.hidden_size
        span_dim = 2 * hidden + self.width_embedding.shape[1]
        checks = {
            "NER feed-forward input": (self.ner_ff[0].in_features, span_dim),
            "pruner feed-forward input": (self.prune_ff[0].in_features, span_dim),
            "relation feed-forward input": (self.relation_ff[0].in_features, 3 * span_dim),
            "NER scorer outputs": (self.ner_out.out_features, len(self.ner_labels) - 1),
            "pruner scorer outputs": (self.prune_out.out_features, 1),
            "relation scorer outputs": (self.relation_out.out_features, len(self.relation_labels)),
        }
        bad = [f"{what} is {got}, expected {want}" for what, (got, want) in checks.items() if got != want]
        if self.width_embedding.shape[0] < self.max_span_width:
            bad.append(
                f"width embedding has {self.width_embedding.shape[0]} rows < max_span_width {self.max_span_width}"
            )
        if bad:
            raise RadGraphArchiveError("inconsistent RadGraph archive: " + "; ".join(bad))

    @property
    def device(self) -> torch.device:
        return self.width_embedding.device

    # ------------------------------------------------------------------ public API
    @torch.inference_mode()
    def annotate(self, texts: Sequence[str]) -> list[dict]:
        """One dict per report, exactly as the reference's ``RadGraph(model_type="radgraph")`` returns it:
        ``{"text", "entities": {"1": {"tokens", "label", "start_ix", "end_ix", "relations": [[rel, key]]}},
        "data_source": None, "data_split": "inference"}``. An empty report is read as "None"; a
        whitespace-only one (the reference crashes on it) has no entities.
        """
        texts = _check_texts(texts)
        unique = list(dict.fromkeys(texts))
        words = [split_report(t) for t in unique]
        done: dict[int, dict] = {i: _annotation(w, {}) for i, w in enumerate(words) if not w}
        for ids, batch in self._batches(words, [i for i, w in enumerate(words) if w]):
            done.update(zip(ids, self._decode(batch, self._forward(batch)), strict=True))
        index = {t: i for i, t in enumerate(unique)}
        out, seen = [], set()
        for t in texts:
            i = index[t]
            out.append(_copy(done[i]) if i in seen else done[i])
            seen.add(i)
        return out

    def forward(self, texts: Sequence[str]) -> list[dict]:
        return self.annotate(texts)

    @torch.inference_mode()
    def scores(self, texts: Sequence[str]) -> list[DocScores | None]:
        """The raw scores behind every decision, per report (None for a report without words)."""
        texts = _check_texts(texts)
        words = [split_report(t) for t in texts]
        out: list[DocScores | None] = [None] * len(texts)
        for ids, batch in self._batches(words, [i for i, w in enumerate(words) if w]):
            res = self._forward(batch, keep_scores=True)
            ner, mention = res.ner_scores.float().cpu().numpy(), res.mention_scores.float().cpu().numpy()
            rel, kept = res.relation_scores.float().cpu().numpy(), res.kept.cpu().numpy()
            keep = batch.keep.numpy()
            for b, i in enumerate(ids):
                s0, s1 = batch.span_offset[b], batch.span_offset[b + 1]
                p0, p1 = batch.pair_offset[b], batch.pair_offset[b + 1]
                k = int(keep[b])
                starts, ends = self._spans(len(batch.words[b]))
                out[i] = DocScores(
                    words=batch.words[b],
                    spans=np.stack([starts, ends], 1),
                    ner=ner[s0:s1],
                    mention=mention[s0:s1],
                    kept=kept[b, :k] - s0,
                    relation=rel[p0:p1].reshape(k, k, rel.shape[-1]),
                )
        return out

    def decision_margins(self, texts: Sequence[str]) -> list[dict[str, float] | None]:
        """Per report, how far its NER, pruning and relation decisions are from flipping (see DocScores)."""
        return [None if s is None else s.margins() for s in self.scores(texts)]

    def count_pieces(self, texts: Sequence[str]) -> list[int]:
        """Word pieces per report before folding (more than ``max_length - 2`` means several segments)."""
        return [sum(map(len, self._word_pieces(split_report(t)))) for t in _check_texts(texts)]

    @torch.inference_mode()
    def encoder_forward(self, texts: Sequence[str]) -> int:
        """Run only the backbone over the same segments and batches as :meth:`annotate` (the compute floor).

        Returns the number of word pieces encoded, so that benchmarks can report throughput.
        """
        texts = _check_texts(texts)
        words = [split_report(t) for t in dict.fromkeys(texts)]
        pieces = 0
        for _, batch in self._batches(words, [i for i, w in enumerate(words) if w]):
            mask = batch.attention_mask.to(self.device, non_blocking=True)
            self.backbone(input_ids=batch.input_ids.to(self.device, non_blocking=True), attention_mask=mask)
            pieces += int(batch.attention_mask.sum())
        return pieces

    # ------------------------------------------------------------------ batching (CPU)
    def _word_pieces(self, words: Sequence[str]) -> list[tuple[int, ...]]:
        """Word-piece ids of each word tokenised on its own (cached: report vocabularies are small)."""
        new = list(dict.fromkeys(w for w in words if w not in self._pieces))
        if len(self._pieces) + len(new) > _MAX_CACHED_WORDS:  # generated text can invent words without end
            self._pieces.clear()
        if new:
            encoded = self.tokenizer([normalize_word(w) for w in new], add_special_tokens=False)["input_ids"]
            self._pieces.update(zip(new, map(tuple, encoded), strict=True))
        return [self._pieces[w] for w in words]

    def _spans(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """All (start, end) with width <= max_span_width, ordered by start then end (AllenNLP's enumerate_spans)."""
        if n not in self._span_cache:
            widths = np.minimum(self.max_span_width, n - np.arange(n))
            starts = np.repeat(np.arange(n), widths)
            ends = starts + np.arange(len(starts)) - np.repeat(np.cumsum(widths) - widths, widths)
            self._span_cache[n] = (starts, ends)
        return self._span_cache[n]

    def _batches(self, words: list[list[str]], ids: list[int]) -> Iterator[tuple[list[int], _Batch]]:
        """Length-bucketed batches: reports sorted by word-piece count, ``batch_size`` reports per batch."""
        pieces = {i: self._word_pieces(words[i]) for i in ids}
        order = sorted(ids, key=lambda i: -sum(map(len, pieces[i])))
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            yield chunk, self._prepare([words[i] for i in chunk], [pieces[i] for i in chunk])

    def _prepare(self, docs: list[list[str]], doc_pieces: list[list[tuple[int, ...]]]) -> _Batch:
        prefix, suffix, seg = self._prefix, self._suffix, self._segment
        rows: list[list[int]] = []
        piece_rows, piece_pos, word_first, word_count = [], [], [], []
        n_pieces_before = 0
        for pieces in doc_pieces:
            lengths = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
            flat = [p for word in pieces for p in word]
            n = len(flat)
            step = seg if seg is not None else max(n, 1)
            chunks = [flat[i : i + step] for i in range(0, n, step)] or [[]]
            positions = np.arange(n)
            piece_rows.append(len(rows) + positions // step)
            piece_pos.append(len(prefix) + positions % step)
            rows += [prefix + c + suffix for c in chunks]
            word_first.append(n_pieces_before + np.cumsum(lengths) - lengths)
            word_count.append(lengths)
            n_pieces_before += n
        length = max(map(len, rows))
        input_ids = torch.full((len(rows), length), self._pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
        for r, row in enumerate(rows):
            input_ids[r, : len(row)] = torch.tensor(row, dtype=torch.long)
            attention_mask[r, : len(row)] = 1
        piece_flat = np.concatenate(piece_rows) * length + np.concatenate(piece_pos)
        first, count = np.concatenate(word_first), np.concatenate(word_count)
        width = max(int(count.max()), 1)
        offsets = np.arange(width)
        piece_mask = offsets[None, :] < count[:, None]
        piece_index = np.where(piece_mask, first[:, None] + offsets[None, :], 0)
        piece_index = piece_flat[piece_index] if len(piece_flat) else np.zeros_like(piece_index)

        n_words = [len(d) for d in docs]
        word_offset = np.cumsum([0] + n_words)
        spans = [self._spans(n) for n in n_words]
        span_counts = [len(s) for s, _ in spans]
        span_offset = np.cumsum([0] + span_counts)
        starts = np.concatenate([s + o for (s, _), o in zip(spans, word_offset, strict=False)])
        ends = np.concatenate([e + o for (_, e), o in zip(spans, word_offset, strict=False)])
        # Exactly the reference's arithmetic: ceil(float32(n_words) * spans_per_word).
        keep = torch.ceil(torch.tensor(n_words, dtype=torch.long).float() * self.spans_per_word).long()
        keep = torch.minimum(keep.clamp_min(0), torch.tensor(span_counts))
        ks = keep.tolist()
        pair_doc = np.repeat(np.arange(len(docs)), [k * k for k in ks])
        pair_pos = np.concatenate([np.arange(k * k) for k in ks]) if ks else np.zeros(0, dtype=np.int64)
        pair_k = np.repeat(np.asarray(ks, dtype=np.int64), [k * k for k in ks])
        return _Batch(
            words=docs,
            input_ids=input_ids,
            attention_mask=attention_mask,
            piece_index=torch.from_numpy(piece_index),
            piece_mask=torch.from_numpy(piece_mask),
            span_start=torch.from_numpy(starts),
            span_end=torch.from_numpy(ends),
            span_width=torch.from_numpy(ends - starts),
            span_doc=torch.from_numpy(np.repeat(np.arange(len(docs)), span_counts)),
            span_local=torch.from_numpy(np.concatenate([np.arange(c) for c in span_counts])),
            span_offset=span_offset,
            keep=keep,
            pair_doc=torch.from_numpy(pair_doc),
            pair_i=torch.from_numpy(pair_pos // np.maximum(pair_k, 1)),
            pair_j=torch.from_numpy(pair_pos % np.maximum(pair_k, 1)),
            pair_offset=np.cumsum([0] + [k * k for k in ks]),
        )

    # ------------------------------------------------------------------ model (device)
    def _forward(self, batch: _Batch, keep_scores: bool = False) -> _Outputs:
        dev = self.device

        def put(t: torch.Tensor) -> torch.Tensor:
            return t.to(dev, non_blocking=True)

        hidden = self.backbone(input_ids=put(batch.input_ids), attention_mask=put(batch.attention_mask))
        hidden = hidden.last_hidden_state
        flat = hidden.reshape(-1, hidden.shape[-1]).float()
        # Word vectors: mean of the word's pieces (AllenNLP's batched_span_select, sum, / max(count, 1)).
        piece_mask = put(batch.piece_mask)
        pieces = flat[put(batch.piece_index)] * piece_mask.unsqueeze(-1)
        count = piece_mask.sum(1, keepdim=True)
        words = pieces.sum(1) / torch.clamp_min(count, 1)
        words = words.masked_fill(count == 0, 0.0)
        # Span representations [x_start; x_end; width embedding].
        width = self.width_embedding[put(batch.span_width)]
        spans = torch.cat([words[put(batch.span_start)], words[put(batch.span_end)], width], -1)
        n_spans = spans.shape[0]
        # NER: null label scored 0, argmax decides.
        ner = self.ner_out(self.ner_ff(spans))
        ner = torch.cat([ner.new_zeros(n_spans, 1), ner], -1)
        ner_label = ner.max(-1).indices
        # Pruning: top-k mention scores per report, -inf on padding, back in enumeration order.
        mention = self.prune_out(self.prune_ff(spans)).squeeze(-1)
        n_docs = len(batch.words)
        span_max = int(np.diff(batch.span_offset).max())
        k_max = int(batch.keep.max()) if n_docs else 0
        padded = mention.new_full((n_docs, span_max), -math.inf)
        padded[put(batch.span_doc), put(batch.span_local)] = mention
        top = padded.topk(k_max, dim=1).indices
        keep = put(batch.keep)
        valid = torch.arange(k_max, device=dev).unsqueeze(0) < keep.unsqueeze(1)
        top = torch.where(valid, top, span_max).sort(1).values
        offset = put(torch.from_numpy(batch.span_offset[:-1]))
        kept = torch.where(valid, top + offset.unsqueeze(1), 0)
        # Relations over all ordered kept pairs (diagonal included), in chunks to bound memory.
        pair_doc = put(batch.pair_doc)
        first, second = kept[pair_doc, put(batch.pair_i)], kept[pair_doc, put(batch.pair_j)]
        n_pairs = first.shape[0]
        # ~16 M floats per chunk on CPU (cache-friendly), ~128 M on a GPU.
        chunk = self.pair_chunk or max(1, (1 << (27 if dev.type == "cuda" else 22)) // (3 * spans.shape[1]))
        labels, scores = [], []
        for c in range(0, n_pairs, chunk):
            i, j = first[c : c + chunk], second[c : c + chunk]
            gi, gj = spans[i], spans[j]
            rel = self.relation_out(self.relation_ff(torch.cat([gi, gj, gi * gj], -1)))
            rel = rel + (mention[i] + mention[j]).unsqueeze(-1)
            rel = torch.cat([rel.new_zeros(rel.shape[0], 1), rel], -1)
            labels.append(rel.max(-1).indices - 1)
            if keep_scores:
                scores.append(rel)
        relation_label = torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long, device=dev)
        out = _Outputs(ner_label=ner_label, kept=kept, relation_label=relation_label)
        if keep_scores:
            out.ner_scores, out.mention_scores = ner, mention
            out.relation_scores = (
                torch.cat(scores) if scores else ner.new_zeros(0, len(self.relation_labels) + 1)
            )
        return out

    # ------------------------------------------------------------------ decoding (CPU)
    def _decode(self, batch: _Batch, out: _Outputs) -> list[dict]:
        ner_label = out.ner_label.cpu().numpy()
        kept = out.kept.cpu().numpy()
        relation_label = out.relation_label.cpu().numpy()
        keep = batch.keep.numpy()
        results = []
        for b, words in enumerate(batch.words):
            s0, s1 = batch.span_offset[b], batch.span_offset[b + 1]
            starts, ends = self._spans(len(words))
            labels = ner_label[s0:s1]
            entities, key_of = {}, {}
            for q, s in enumerate(np.flatnonzero(labels).tolist()):
                start, end = int(starts[s]), int(ends[s])
                key_of[s] = key = str(q + 1)
                entities[key] = {
                    "tokens": " ".join(words[start : end + 1]),
                    "label": self.ner_labels[labels[s]],
                    "start_ix": start,
                    "end_ix": end,
                    "relations": [],
                }
            k = int(keep[b])
            local = (kept[b, :k] - s0).tolist()
            rel = relation_label[batch.pair_offset[b] : batch.pair_offset[b + 1]].reshape(k, k)
            # Row-major over the kept spans, as the reference lists them; a relation survives only if both
            # of its spans are entities.
            for i, j in zip(*np.nonzero(rel >= 0), strict=True):
                source, target = local[i], local[j]
                if source in key_of and target in key_of:
                    entities[key_of[source]]["relations"].append(
                        [self.relation_labels[rel[i, j]], key_of[target]]
                    )
            results.append(_annotation(words, entities))
        return results


def _copy(annotation: dict) -> dict:
    """A deep copy of one annotation dict (duplicated reports get independent dicts; ~10x copy.deepcopy)."""
    entities = {
        k: {**e, "relations": [list(r) for r in e["relations"]]} for k, e in annotation["entities"].items()
    }
    return {**annotation, "entities": entities}


def _annotation(words: list[str], entities: dict) -> dict:
    return {"text": " ".join(words), "entities": entities, "data_source": None, "data_split": "inference"}
