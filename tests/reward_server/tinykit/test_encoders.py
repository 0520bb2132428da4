"""The tiny kit's BERTScore and CheXbert files: official layout, loadable by the Auto classes, small, seeded."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from reward_server.radcliq.model_files import BERTSCORE_MODEL, CHEXBERT_BACKBONE, CHEXBERT_FILE, SCORERS_REPO
from reward_server.tinykit.corpus import tokenizer_corpus
from reward_server.tinykit.encoders import write_bertscore_model, write_chexbert, write_chexbert_weights


def _digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def corpus():
    return tokenizer_corpus(0)


@pytest.fixture(scope="module")
def kit(tmp_path_factory, corpus):
    out = tmp_path_factory.mktemp("encoders")
    write_bertscore_model(out, corpus, seed=0)
    write_chexbert(out, corpus, seed=0)
    return out


def test_bertscore_model_layout(kit):
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    folder = kit / BERTSCORE_MODEL
    config = AutoConfig.from_pretrained(folder)
    assert config.model_type == "roberta" and config.num_hidden_layers >= 6
    assert config.max_position_embeddings == 514 and config.pad_token_id == 1
    tok = AutoTokenizer.from_pretrained(folder, use_fast=True, add_prefix_space=True)
    assert (tok.cls_token_id, tok.pad_token_id, tok.sep_token_id) == (0, 1, 2) and tok.model_max_length == 512
    assert tok.encode("") == [0, 2]
    model = AutoModel.from_pretrained(folder)
    assert type(model).__name__ == "RobertaModel"
    assert {"vocab.json", "merges.txt", "tokenizer.json", "model.safetensors"} <= {
        p.name for p in folder.iterdir()
    }


def test_chexbert_layout(kit):
    from transformers import AutoConfig, BertTokenizer

    config = AutoConfig.from_pretrained(kit / CHEXBERT_BACKBONE)
    assert config.model_type == "bert"
    tok = BertTokenizer.from_pretrained(kit / CHEXBERT_BACKBONE)
    assert tok("Heart NORMAL.")["input_ids"] == tok("heart normal.")["input_ids"]  # uncased
    state = torch.load(kit / SCORERS_REPO / CHEXBERT_FILE, weights_only=True)
    assert set(state) == {"model_state_dict"}
    keys = set(state["model_state_dict"])
    assert "module.bert.embeddings.word_embeddings.weight" in keys and "module.bert.pooler.dense.bias" in keys
    assert {f"module.linear_heads.{i}.{p}" for i in range(14) for p in ("weight", "bias")} <= keys
    assert all(k.startswith(("module.bert.", "module.linear_heads.")) for k in keys)


def test_small_and_fast(kit):
    total = sum(p.stat().st_size for p in kit.rglob("*") if p.is_file())
    assert total < 8 * 2**20, total  # the whole tiny kit (with RadGraph) must stay under 20 MB


def test_bertscore_model_deterministic(tmp_path, corpus, kit):
    write_bertscore_model(tmp_path, corpus, seed=0)
    assert _digests(tmp_path / BERTSCORE_MODEL) == _digests(kit / BERTSCORE_MODEL)
    write_bertscore_model(tmp_path / "other", corpus, seed=1)
    assert (
        _digests(tmp_path / "other" / BERTSCORE_MODEL)["model.safetensors"]
        != _digests(kit / BERTSCORE_MODEL)["model.safetensors"]
    )


def test_chexbert_deterministic(tmp_path, corpus, kit):
    write_chexbert(tmp_path / "same", corpus, seed=0)
    assert _digests(tmp_path / "same") == {
        k: v for k, v in _digests(kit).items() if k.startswith((CHEXBERT_BACKBONE, SCORERS_REPO))
    }
    other = tmp_path / "other" / CHEXBERT_FILE  # same tokenizer, another seed: other weights
    write_chexbert_weights(other, kit / CHEXBERT_BACKBONE, corpus, seed=1)
    assert _digests(other.parent)[CHEXBERT_FILE] != _digests(kit / SCORERS_REPO)[CHEXBERT_FILE]


def test_unknown_size(tmp_path, corpus):
    with pytest.raises(ValueError, match="size"):
        write_bertscore_model(tmp_path, corpus, size="large")
