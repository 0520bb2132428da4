"""Model files: `download` builds the layout from the hub (served here from a local hub cache), checksums."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from reward_server.model_files import (
    CHECKSUMS,
    RADGRAPH_BACKBONE,
    ModelFiles,
    ModelFilesError,
    read_checksums,
    resolve_hub_id,
    verify_checksums,
)
from tests.conftest import REPO
from tests.parity.ref_env import _hub_entry


def test_download_builds_the_layout_from_the_hub(tiny_model_dir, tmp_path):
    """`rrg-reward download` against a hub cache holding the tiny kit's files under the official repo ids.

    huggingface_hub serves snapshot_download / hf_hub_download from its cache in offline mode, so the real
    download code runs end to end without a network; the result must be the same layout, loadable.
    """
    hub = tmp_path / "hub"
    _hub_entry(hub, "distilroberta-base", tiny_model_dir / "distilroberta-base")
    _hub_entry(hub, "bert-base-uncased", tiny_model_dir / "bert-base-uncased")
    _hub_entry(hub, RADGRAPH_BACKBONE, tiny_model_dir / RADGRAPH_BACKBONE)
    _hub_entry(hub, "StanfordAIMI/RRG_scorers", tiny_model_dir / "StanfordAIMI" / "RRG_scorers")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env.update(HF_HUB_CACHE=str(hub), HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    out = tmp_path / "downloaded"
    proc = subprocess.run(
        [sys.executable, "-m", "reward_server.cli", "download", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = ModelFiles.locate(out)  # verifies the checksums download recorded
    assert files.radgraph_backbone() == str(out / RADGRAPH_BACKBONE)
    ours, theirs = read_checksums(out), read_checksums(tiny_model_dir)
    for rel in (
        "StanfordAIMI/RRG_scorers/chexbert.pth",
        "StanfordAIMI/RRG_scorers/radgraph.tar.gz",
        "distilroberta-base/model.safetensors",
        "bert-base-uncased/vocab.txt",
    ):
        assert ours[rel] == theirs[rel], rel


def test_checksums_name_every_bad_file(tiny_model_dir, tmp_path):
    copy = tmp_path / "models"
    shutil.copytree(tiny_model_dir, copy)
    (copy / "bert-base-uncased" / "vocab.txt").write_text("changed\n")
    (copy / "distilroberta-base" / "config.json").unlink()
    with pytest.raises(ModelFilesError) as err:
        verify_checksums(copy)
    assert "bert-base-uncased/vocab.txt (sha256 mismatch)" in str(err.value)
    assert "distilroberta-base/config.json (missing)" in str(err.value)
    (copy / CHECKSUMS).unlink()
    assert verify_checksums(copy) == {}  # no record, no check


def test_missing_directory_says_how_to_make_one(tmp_path):
    with pytest.raises(ModelFilesError, match="rrg-reward make-tiny"):
        ModelFiles.locate(tmp_path / "nowhere")


def test_extracted_radgraph_folder_is_accepted(tiny_model_dir, tmp_path):
    import tarfile

    copy = tmp_path / "models"
    shutil.copytree(tiny_model_dir, copy)
    scorers = copy / "StanfordAIMI" / "RRG_scorers"
    with tarfile.open(scorers / "radgraph.tar.gz") as tar:
        tar.extractall(scorers / "radgraph", filter="data")
    (scorers / "radgraph.tar.gz").unlink()
    files = ModelFiles.locate(copy, verify=False)
    assert files.radgraph == scorers / "radgraph" and files.radgraph_backbone().endswith(RADGRAPH_BACKBONE)


def test_resolve_hub_id_prefers_a_local_folder(tmp_path):
    (tmp_path / "org" / "model").mkdir(parents=True)
    assert resolve_hub_id(tmp_path, "org/model") == str(tmp_path / "org" / "model")
    assert resolve_hub_id(tmp_path, "org/other") == "org/other"
    assert resolve_hub_id(None, "org/model") == "org/model"


@pytest.mark.parametrize("offline", [True, False])
def test_download_without_the_hub_is_one_line_saying_what_to_do(tmp_path, offline):
    """Issue 18 case 16: offline mode (the Makefile exports HF_HUB_OFFLINE=1) or an unreachable hub gave a
    20-line LocalEntryNotFoundError traceback; now one line, exit 1, what to unset, the air-gapped route."""
    from tests.reward_server.live import free_port

    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env.update(HF_HUB_CACHE=str(tmp_path / "empty-cache"), PYTHONPATH=str(REPO))
    env.update(HF_HUB_OFFLINE="1") if offline else env.update(HF_ENDPOINT=f"http://127.0.0.1:{free_port()}")
    out = tmp_path / "models"
    proc = subprocess.run(
        [sys.executable, "-m", "reward_server.cli", "download", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    why = "offline mode is on (HF_HUB_OFFLINE=1" if offline else "the Hugging Face hub cannot be reached"
    assert proc.stderr.startswith(f"rrg-reward download: cannot download the scorer files into {out}: {why}")
    assert "Air-gapped: run `rrg-reward download DIR` where the hub is reachable, copy DIR" in proc.stderr
    assert "checksums.sha256" in proc.stderr and not out.exists()
