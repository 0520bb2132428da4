"""Reading the official RadGraph (DyGIE++) archive without AllenNLP.

``radgraph.tar.gz`` (or its extracted folder) holds three things at its root: ``config.json`` (the AllenNLP
experiment config that names the backbone and the span/pruning sizes), ``vocabulary/`` (one label file per
namespace, in AllenNLP's format) and ``weights.th`` (the DyGIE model's ``state_dict``). Everything the model
needs is read from these files; nothing about the label order or the layer sizes is assumed here.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import torch

CONFIG = "config.json"
WEIGHTS = "weights.th"
VOCABULARY = "vocabulary"
NON_PADDED = "non_padded_namespaces.txt"
# AllenNLP's defaults: padded namespaces start with this token at index 0.
PADDING_TOKEN = "@@PADDING@@"
OOV_TOKEN = "@@UNKNOWN@@"
BACKBONE_PREFIX = "_embedder.token_embedder_bert._matched_embedder.transformer_model."
_NEW_LINE = re.compile(r"\n|\r\n")


class RadGraphArchiveError(ValueError):
    """The archive is not a usable RadGraph (DyGIE++) archive; the message names what is wrong."""


def _namespace_match(pattern: str, namespace: str) -> bool:
    """AllenNLP's rule: ``*labels`` matches every namespace ending in ``labels``; otherwise equality."""
    if pattern.startswith("*"):
        return namespace.endswith(pattern[1:])
    return pattern == namespace


def parse_vocabulary(files: dict[str, str]) -> dict[str, list[str]]:
    """``{namespace: tokens by index}`` from the text of the files in ``vocabulary/`` (name -> content).

    Mirrors ``Vocabulary.from_files``: namespaces matched by ``non_padded_namespaces.txt`` are indexed from 0,
    the others get the padding token at index 0; a trailing empty line is not a token.
    """
    if NON_PADDED not in files:
        raise RadGraphArchiveError(f"{VOCABULARY}/{NON_PADDED} is missing")
    patterns = [line.strip() for line in files[NON_PADDED].splitlines(keepends=True)]
    vocab = {}
    for name, text in files.items():
        if name == NON_PADDED or name.startswith("."):
            continue
        namespace = name.replace(".txt", "")
        lines = _NEW_LINE.split(text)
        if lines and lines[-1] == "":
            lines = lines[:-1]
        tokens = [line.replace("@@NEWLINE@@", "\n") for line in lines]
        padded = not any(_namespace_match(p, namespace) for p in patterns)
        vocab[namespace] = ([PADDING_TOKEN] if padded else []) + tokens
    return vocab


@dataclass
class RadGraphArchive:
    """The three parts of a RadGraph archive, read into memory."""

    config: dict
    vocabulary: dict[str, list[str]]
    weights: dict[str, torch.Tensor]
    source: str = "<memory>"

    @classmethod
    def load(cls, path: str | Path) -> RadGraphArchive:
        """Read ``radgraph.tar.gz`` (any tar compression) or the folder it extracts to."""
        path = Path(path).expanduser()
        if path.is_dir():
            files = {p.name: p.read_bytes() for p in (path / VOCABULARY).glob("*") if p.is_file()}
            config, weights = path / CONFIG, path / WEIGHTS
            for p in (config, weights):
                if not p.is_file():
                    raise RadGraphArchiveError(f"{path} has no {p.name}: not a RadGraph (DyGIE++) archive")
            return cls._from_bytes(config.read_bytes(), files, weights.read_bytes(), str(path))
        if not path.is_file():
            raise FileNotFoundError(f"RadGraph archive {path} does not exist")
        config = weights = None
        vocab_files = {}
        with tarfile.open(path, "r:*") as tar:
            for member in tar.getmembers():
                if not member.isfile():
                    continue
                parts = [p for p in PurePosixPath(member.name).parts if p not in (".", "")]
                data = tar.extractfile(member).read()
                if parts == [CONFIG]:
                    config = data
                elif parts == [WEIGHTS]:
                    weights = data
                elif len(parts) == 2 and parts[0] == VOCABULARY:
                    vocab_files[parts[1]] = data
        for name, data in ((CONFIG, config), (WEIGHTS, weights)):
            if data is None:
                raise RadGraphArchiveError(
                    f"{path} has no {name} at its root: not a RadGraph (DyGIE++) archive"
                )
        return cls._from_bytes(config, vocab_files, weights, str(path))

    @classmethod
    def _from_bytes(cls, config: bytes, vocab_files: dict[str, bytes], weights: bytes, source: str):
        vocab = parse_vocabulary({k: v.decode("utf-8") for k, v in vocab_files.items()})
        state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
        return cls(json.loads(config), vocab, state, source)

    # ---- config fields (AllenNLP experiment config of DyGIE++) ----
    def _get(self, *keys):
        node = self.config
        for key in keys:
            if not isinstance(node, dict) or key not in node:
                raise RadGraphArchiveError(f"{self.source}: config.json has no {'.'.join(keys)}")
            node = node[key]
        return node

    @property
    def backbone_name(self) -> str:
        return self._get("model", "embedder", "token_embedders", "bert", "model_name")

    @property
    def max_length(self) -> int | None:
        """Word-piece segment length (incl. special tokens) for folding long inputs; None disables folding."""
        return self._get("model", "embedder", "token_embedders", "bert").get("max_length")

    @property
    def max_span_width(self) -> int:
        """Widest span the dataset reader enumerates."""
        return int(self._get("dataset_reader", "max_span_width"))

    @property
    def spans_per_word(self) -> float:
        return float(self._get("model", "modules", "relation", "spans_per_word"))

    def labels(self, namespace: str) -> list[str]:
        if namespace not in self.vocabulary:
            raise RadGraphArchiveError(
                f"{self.source}: vocabulary has no namespace {namespace!r} (has {sorted(self.vocabulary)})"
            )
        return self.vocabulary[namespace]

    def tensor(self, key: str) -> torch.Tensor:
        if key not in self.weights:
            raise RadGraphArchiveError(f"{self.source}: weights.th has no {key}")
        return self.weights[key]

    def backbone_state_dict(self) -> dict[str, torch.Tensor]:
        state = {
            k[len(BACKBONE_PREFIX) :]: v for k, v in self.weights.items() if k.startswith(BACKBONE_PREFIX)
        }
        if not state:
            raise RadGraphArchiveError(f"{self.source}: weights.th has no {BACKBONE_PREFIX}* tensors")
        return state
