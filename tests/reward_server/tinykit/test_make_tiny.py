"""The tiny kit: the official layout, loadable by the standard loaders, deterministic, small."""

from __future__ import annotations

import tarfile

import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer, BertTokenizer

from reward_server.radcliq.model_files import (
    CHECKSUMS,
    RADGRAPH_BACKBONE,
    ModelFiles,
    read_checksums,
    read_radgraph_config,
)
from reward_server.tinykit import make_tiny


def test_layout_mirrors_the_hub_ids(tiny_model_dir):
    files = ModelFiles.locate(tiny_model_dir)  # also verifies the recorded checksums
    assert files.radgraph.name == "radgraph.tar.gz"
    assert files.radgraph_backbone() == str(tiny_model_dir / RADGRAPH_BACKBONE)
    assert (tiny_model_dir / CHECKSUMS).is_file()
    size = sum(p.stat().st_size for p in tiny_model_dir.rglob("*") if p.is_file())
    assert size < 20 * 2**20, f"tiny kit is {size / 2**20:.1f} MB"


def test_each_file_loads_with_transformers_and_torch(tiny_model_dir):
    roberta = AutoModel.from_pretrained(tiny_model_dir / "distilroberta-base")
    assert roberta.config.model_type == "roberta" and roberta.config.num_hidden_layers >= 6
    tok = AutoTokenizer.from_pretrained(tiny_model_dir / "distilroberta-base", add_prefix_space=True)
    assert tok("no effusion")["input_ids"][0] == tok.cls_token_id == 0 and tok.pad_token_id == 1

    bert_tok = BertTokenizer.from_pretrained(tiny_model_dir / "bert-base-uncased")
    assert bert_tok.pad_token_id == 0 and bert_tok.tokenize("Left-Sided") == ["left", "-", "sided"]
    config = AutoConfig.from_pretrained(tiny_model_dir / "bert-base-uncased")
    state = torch.load(tiny_model_dir / "StanfordAIMI/RRG_scorers/chexbert.pth", map_location="cpu")[
        "model_state_dict"
    ]
    assert all(k.startswith("module.") for k in state) and not any("position_ids" in k for k in state)
    heads = sorted({k.split(".")[2] for k in state if k.startswith("module.linear_heads.")}, key=int)
    assert heads == [str(i) for i in range(14)]
    assert [state[f"module.linear_heads.{i}.weight"].shape[0] for i in range(14)] == [4] * 13 + [2]
    assert state["module.bert.embeddings.word_embeddings.weight"].shape[1] == config.hidden_size

    with tarfile.open(tiny_model_dir / "StanfordAIMI/RRG_scorers/radgraph.tar.gz") as tar:
        names = set(tar.getnames())
    assert {"config.json", "weights.th", "vocabulary/radgraph__ner_labels.txt"} <= names
    config = read_radgraph_config(tiny_model_dir / "StanfordAIMI/RRG_scorers/radgraph.tar.gz")
    assert config["model"]["embedder"]["token_embedders"]["bert"]["model_name"] == RADGRAPH_BACKBONE
    AutoTokenizer.from_pretrained(tiny_model_dir / RADGRAPH_BACKBONE)


def test_same_seed_same_bytes(tiny_model_dir, tmp_path):
    again = make_tiny(tmp_path / "again", seed=0)
    assert read_checksums(again) == read_checksums(tiny_model_dir)
