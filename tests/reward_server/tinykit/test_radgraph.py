"""The tiny RadGraph archive: official layout, deterministic, and heads that predict realistic graphs.

That radeval 2.2.1's RadGraph loads the archive unmodified (strict state-dict load) and agrees with ours is
tested in test_radgraph.py; here: the files themselves and the rates the shaped heads produce.
"""

from __future__ import annotations

import json
import shutil
import tarfile

import pytest
import torch

from reward_server.radcliq.model_files import RADGRAPH_BACKBONE, ModelFiles, sha256
from reward_server.radcliq.radgraph import RadGraph
from reward_server.tinykit import radgraph as kit
from reward_server.tinykit.corpus import synthetic_reports, tokenizer_corpus
from tests.parity.pairs import iu_reports


@pytest.fixture(scope="module")
def radgraph(tiny_model_dir) -> RadGraph:
    files = ModelFiles.locate(tiny_model_dir, verify=False)
    return RadGraph.from_pretrained(files.radgraph, model_dir=tiny_model_dir, device="cpu")


def test_archive_layout(tiny_model_dir):
    archive = tiny_model_dir / "StanfordAIMI" / "RRG_scorers" / "radgraph.tar.gz"
    with tarfile.open(archive, "r:gz") as tar:
        names = {m.name for m in tar.getmembers()}
        read = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    assert names == {
        "config.json",
        "weights.th",
        "vocabulary",
        "vocabulary/non_padded_namespaces.txt",
        "vocabulary/radgraph__ner_labels.txt",
        "vocabulary/radgraph__relation_labels.txt",
    }
    config = json.loads(read["config.json"])
    for section in (
        config["dataset_reader"]["token_indexers"],
        config["model"]["embedder"]["token_embedders"],
    ):
        assert section["bert"]["model_name"] == RADGRAPH_BACKBONE
        assert section["bert"]["type"] == "pretrained_transformer_mismatched"
    ner = read["vocabulary/radgraph__ner_labels.txt"].decode().split("\n")
    assert ner[0] == "" and len([x for x in ner[1:] if x]) == 4
    assert len(read["vocabulary/radgraph__relation_labels.txt"].decode().split()) == 3
    backbone = tiny_model_dir / RADGRAPH_BACKBONE
    assert (backbone / "config.json").is_file() and (backbone / "vocab.txt").is_file()
    bert = json.loads((backbone / "config.json").read_text())
    assert bert["max_position_embeddings"] == 512  # inputs over 510 pieces are folded, not truncated
    assert archive.stat().st_size < 4 << 20


def test_write_is_deterministic(tiny_model_dir, tmp_path, monkeypatch):
    """Same seed, same bytes. The WordPiece trainer is replaced by a copy of the kit's own vocabulary, so this
    checks everything written here (weights, calibration, config, tar) independently of the trainer."""

    def copy_tokenizer(corpus, out_dir):
        shutil.copytree(tiny_model_dir / RADGRAPH_BACKBONE, out_dir, dirs_exist_ok=True)
        return out_dir

    monkeypatch.setattr(kit, "train_wordpiece_uncased", copy_tokenizer)
    threads = torch.get_num_threads()
    torch.set_num_threads(1 if threads > 1 else 2)  # another thread count must not change the bytes either
    try:
        path = kit.write_radgraph(tmp_path, tokenizer_corpus(0), seed=0)
    finally:
        torch.set_num_threads(threads)
    assert sha256(path) == sha256(tiny_model_dir / "StanfordAIMI" / "RRG_scorers" / "radgraph.tar.gz")


def check_rates(stats: dict, entities: tuple[float, float], relations: tuple[float, float]) -> None:
    assert entities[0] <= stats["entities_per_word"] <= entities[1], stats
    assert relations[0] <= stats["relations_per_entity"] <= relations[1], stats
    assert min(stats["entity_labels"].values()) > 0 and min(stats["relation_labels"].values()) > 0, stats
    assert min(stats["min_margin_ner"], stats["min_margin_relation"]) > 5e-6, stats  # float32 noise ~1e-6


def test_rates_on_unseen_synthetic_reports(radgraph):
    stats = kit.calibration_stats(radgraph.scores(synthetic_reports(150, seed=123)))
    print(f"tiny RadGraph on synthetic reports: {stats}")
    check_rates(stats, entities=(0.3, 0.5), relations=(0.3, 0.7))


def test_rates_on_iu_xray_reports(radgraph, iu_annotation):
    stats = kit.calibration_stats(radgraph.scores(iu_reports(iu_annotation)[:300]))
    print(f"tiny RadGraph on IU X-ray reports: {stats}")
    check_rates(stats, entities=(0.25, 0.5), relations=(0.2, 0.7))


def test_bad_size_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="size"):
        kit.write_radgraph(tmp_path, ["a b c"], size="huge")
