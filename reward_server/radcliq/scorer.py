"""RadCliQScorer: the four RadCliQ features and the composite, batched, with a per-text feature cache.

Every model runs once per DISTINCT text of a call (GRPO sends each reference with 8 hypotheses), and the
per-text features (BERTScore token embeddings, CheXbert [CLS] vector, RadGraph entity/relation sets) are kept
in an LRU cache, so a reference seen in an earlier request costs nothing. The pairwise parts (greedy cosine
matching, cosine, set F1, BLEU-2) are cheap and computed per pair from the cached features.
The same code serves evaluation (``rrg_trl.evaluate``) and the reward server.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from reward_server.radcliq.bleu import bleu2
from reward_server.radcliq.composite import FEATURES, get_model
from reward_server.radcliq.model_files import (
    RANDOM_WEIGHTS_NOTICE,
    ModelFiles,
    random_weights_fields,
    read_checksums,
)
from reward_server.radcliq.radgraph import RadGraph, radgraph_combined
from reward_server.radcliq.texts import check_pairs

logger = logging.getLogger(__name__)


def tf32_matmul_enabled() -> bool:
    """Whether float32 CUDA matmuls in this process may run as TF32 (a trainer's ``tf32: true`` or
    ``torch.set_float32_matmul_precision("high")`` sets this process-wide; PyTorch's default is off)."""
    return bool(torch.backends.cuda.matmul.allow_tf32) or torch.get_float32_matmul_precision() != "highest"


@dataclass
class TextFeatures:
    """What the three encoders say about one text; independent of the text it is compared with."""

    bert: Any  # one entry of BERTScorer.encode()
    cls: np.ndarray  # CheXbert [CLS] vector, float32
    annotation: dict = field(repr=False)  # RadGraph's, for radgraph_combined


class FeatureCache:
    """A thread-safe LRU map text -> TextFeatures (bounded by entries)."""

    def __init__(self, max_entries: int):
        self.max_entries = max_entries
        self._data: OrderedDict[str, TextFeatures] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get_many(self, texts: Sequence[str]) -> dict[str, TextFeatures]:
        found = {}
        with self._lock:
            for t in texts:
                feats = self._data.get(t)
                if feats is not None:
                    self._data.move_to_end(t)
                    found[t] = feats
            self.hits += len(found)
            self.misses += len(set(texts)) - len(found)
        return found

    def put_many(self, items: dict[str, TextFeatures]) -> None:
        if self.max_entries <= 0:
            return
        with self._lock:
            for t, feats in items.items():
                self._data[t] = feats
                self._data.move_to_end(t)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


class RadCliQScorer:
    """RadCliQ (v1 by default) and its components for lists of (hypothesis, reference) pairs."""

    def __init__(
        self,
        bertscore,
        chexbert,
        radgraph: RadGraph,
        version: str = "v1",
        idf: bool = False,
        cache_size: int = 4096,
        files: ModelFiles | None = None,
    ):
        self.bertscore = bertscore
        self.chexbert = chexbert
        self.radgraph = radgraph
        self.model = get_model(version)
        self.version = version
        self.idf = idf
        self.cache = FeatureCache(cache_size)
        self.files = files
        # make-tiny's marker was found: every output built on these scores must say the models are random.
        self.random_weights = bool(files is not None and files.random_weights)
        self._warned_tf32 = False

    @classmethod
    def from_pretrained(
        cls,
        model_dir,
        device: str | torch.device | None = None,
        version: str = "v1",
        idf: bool = False,
        dtype: torch.dtype | str = torch.float32,
        cache_size: int = 4096,
        verify: bool = True,
    ) -> RadCliQScorer:
        """Load the three encoders from a model directory (layout: :mod:`reward_server.radcliq.model_files`)."""
        from reward_server.radcliq.bertscore import BERTScorer
        from reward_server.radcliq.chexbert import CheXbert

        get_model(version)  # fail fast on a bad version, before loading weights
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype)
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        files = ModelFiles.locate(model_dir, verify=verify)
        bertscore = BERTScorer.from_pretrained(files.bertscore, device=device, dtype=dtype)
        chexbert = CheXbert.from_pretrained(
            files.chexbert_weights, files.chexbert_backbone, device=device, dtype=dtype
        )
        radgraph = RadGraph.from_pretrained(files.radgraph, model_dir=files.root, device=device, dtype=dtype)
        if files.random_weights:
            logger.warning("scorer models in %s: %s", files.root, RANDOM_WEIGHTS_NOTICE)
        return cls(
            bertscore, chexbert, radgraph, version=version, idf=idf, cache_size=cache_size, files=files
        )

    # ------------------------------------------------------------------ features
    def features(self, texts: Sequence[str]) -> list[TextFeatures]:
        """Per-text features, computed once per distinct uncached text."""
        distinct = list(dict.fromkeys(texts))
        found = self.cache.get_many(distinct)
        todo = [t for t in distinct if t not in found]
        if todo:
            self._check_precision()
            bert = self.bertscore.encode(todo)
            cls_vecs = self.chexbert.embed(todo)
            annotations = self.radgraph.annotate(todo)
            new = {
                text: TextFeatures(bert[i], np.asarray(cls_vecs[i], dtype=np.float32), annotations[i])
                for i, text in enumerate(todo)
            }
            self.cache.put_many(new)
            found.update(new)
        return [found[t] for t in texts]

    def _check_precision(self) -> None:
        """Exact float32 on a GPU needs IEEE matmuls: say so once if this process has TF32 on."""
        exact = self.bertscore.dtype == torch.float32 and self.bertscore.device.type == "cuda"
        if exact and not self._warned_tf32 and tf32_matmul_enabled():
            self._warned_tf32 = True
            logger.warning(
                "TF32 matmuls are enabled in this process (allow_tf32 / float32_matmul_precision=%r): float32 "
                "scores will deviate from the reference by ~1e-3. Run the reward server in its own process, or "
                "turn TF32 off, for exact RadCliQ.",
                torch.get_float32_matmul_precision(),
            )

    # ------------------------------------------------------------------ scoring
    def validate(self, hypotheses: Sequence[Any], references: Sequence[Any]) -> None:
        """Raise ValueError naming the first bad index; empty and whitespace-only strings are valid."""
        check_pairs(hypotheses, references)

    def score(self, hypotheses: Sequence[str], references: Sequence[str]) -> list[dict[str, float]]:
        """One dict per pair: ``radcliq`` (lower is better) and the features ``radgraph, bertscore, semb, bleu2``."""
        return self.score_many([(hypotheses, references)])[0]

    def score_many(
        self, groups: Sequence[tuple[Sequence[str], Sequence[str]]]
    ) -> list[list[dict[str, float]]]:
        """Score several requests in one pass over all their distinct texts (IDF, if on, stays per request)."""
        for hyps, refs in groups:
            self.validate(hyps, refs)
        texts = [t for hyps, refs in groups for t in (*hyps, *refs)]
        feats = dict(zip(texts, self.features(texts), strict=True)) if texts else {}
        return [self._score_group(list(hyps), list(refs), feats) for hyps, refs in groups]

    def _score_group(self, hyps: list[str], refs: list[str], feats: dict[str, TextFeatures]) -> list[dict]:
        n = len(hyps)
        if n == 0:
            return []
        hf = [feats[h] for h in hyps]
        rf = [feats[r] for r in refs]
        # IDF (off by default, as CXR-Report-Metric and ReXrank) is computed over this request's references.
        idf = self.bertscore.idf_weights([f.bert for f in rf]) if self.idf else None
        _, _, bert_f = self.bertscore.score_from_embeddings(
            [f.bert for f in hf], [f.bert for f in rf], idf=idf
        )
        semb = self.chexbert.semb(np.stack([f.cls for f in rf]), np.stack([f.cls for f in hf]))
        radgraph = np.array(
            [radgraph_combined(r.annotation, h.annotation) for h, r in zip(hf, rf, strict=True)]
        )
        bleu = np.array([bleu2(h, r) for h, r in zip(hyps, refs, strict=True)])
        x = np.column_stack(
            [radgraph, np.asarray(bert_f, dtype=np.float32), np.asarray(semb, dtype=np.float32), bleu]
        )
        radcliq = self.model.predict(x.astype(np.float64))
        return [
            {
                "radcliq": float(radcliq[i]),
                "radgraph": float(x[i, 0]),
                "bertscore": float(x[i, 1]),
                "semb": float(x[i, 2]),
                "bleu2": float(x[i, 3]),
            }
            for i in range(n)
        ]

    # ------------------------------------------------------------------ introspection
    def info(self) -> dict:
        """What a client needs to trust the numbers: versions, settings, model files and their checksums."""
        import transformers

        import reward_server

        files = {}
        if self.files is not None:
            sums = read_checksums(self.files.root)
            files = {"model_dir": str(self.files.root), "checksums": sums}
        return {
            "reward_server_version": getattr(reward_server, "__version__", "unknown"),
            "radcliq_version": self.version,
            "idf": self.idf,
            "features": list(FEATURES),
            "torch_version": torch.__version__,
            "transformers_version": transformers.__version__,
            "device": str(self.bertscore.device),
            "dtype": str(self.bertscore.dtype).replace("torch.", ""),
            "tf32_matmul": self.bertscore.device.type == "cuda" and tf32_matmul_enabled(),
            "cache": {
                "entries": len(self.cache),
                "max_entries": self.cache.max_entries,
                "hits": self.cache.hits,
                "misses": self.cache.misses,
            },
            "files": files,
            **random_weights_fields(self.random_weights),
        }
