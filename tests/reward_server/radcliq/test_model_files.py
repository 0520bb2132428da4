"""Model files: `download` builds the layout from the hub (served here from a local hub cache), checksums."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from reward_server.radcliq.model_files import (
    CHECKSUMS,
    RADGRAPH_BACKBONE,
    RANDOM_WEIGHTS_FILE,
    RANDOM_WEIGHTS_NOTICE,
    ModelFiles,
    ModelFilesError,
    read_checksums,
    resolve_hub_id,
    verify_checksums,
    write_checksums,
)
from tests.conftest import REPO
from tests.parity.ref_env import _hub_entry


def test_download_builds_the_layout_from_the_hub(official_layout_dir, tiny_model_dir, tmp_path):
    """`rrg-reward download` against a hub cache holding the tiny kit's files under the official repo ids
    (without the kit's RANDOM_WEIGHTS.json markers, which no hub repo has).

    huggingface_hub serves snapshot_download / hf_hub_download from its cache in offline mode, so the real
    download code runs end to end without a network; the result must be the same layout, loadable.
    """
    hub, kit = tmp_path / "hub", official_layout_dir
    _hub_entry(hub, "distilroberta-base", kit / "distilroberta-base")
    _hub_entry(hub, "bert-base-uncased", kit / "bert-base-uncased")
    _hub_entry(hub, RADGRAPH_BACKBONE, kit / RADGRAPH_BACKBONE)
    _hub_entry(hub, "StanfordAIMI/RRG_scorers", kit / "StanfordAIMI" / "RRG_scorers")
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
    assert files.random_weights is None and not (out / RANDOM_WEIGHTS_FILE).exists()  # download marks nothing
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


# ---------------------------------------------------------------------- the random-weights marker
def test_make_tiny_marks_every_file_random_and_checksums_the_marker(tiny_model_dir):
    files = ModelFiles.locate(tiny_model_dir)
    marker = files.random_weights
    assert marker["random_weights"] is True and marker["notice"] == RANDOM_WEIGHTS_NOTICE
    assert (marker["seed"], marker["size"]) == (0, "tiny")
    sums = read_checksums(tiny_model_dir)
    assert RANDOM_WEIGHTS_FILE in sums  # editing or deleting the marker fails the checksums
    assert marker["files"] == {rel: d for rel, d in sums.items() if rel != RANDOM_WEIGHTS_FILE}
    folders = {rel.rsplit("/", 1)[0] for rel in marker["files"] if rel.endswith("/" + RANDOM_WEIGHTS_FILE)}
    assert folders == {
        "distilroberta-base",
        "bert-base-uncased",
        "StanfordAIMI/RRG_scorers",
        RADGRAPH_BACKBONE,
    }


def test_official_layout_without_the_marker_is_not_labelled(official_layout_dir):
    assert ModelFiles.locate(official_layout_dir).random_weights is None


def _kit_copy(tiny_model_dir, tmp_path):
    copy = tmp_path / "models"
    shutil.copytree(tiny_model_dir, copy)
    return copy


def test_a_replaced_file_is_refused_even_with_rewritten_checksums(tiny_model_dir, tmp_path):
    """An official file copied over a random one: the checksums are rewritten (so they pass), the marker is
    not, and the directory is refused with the file named, as mixed, not labelled either way."""
    copy = _kit_copy(tiny_model_dir, tmp_path)
    (copy / "StanfordAIMI/RRG_scorers/chexbert.pth").write_bytes(b"official weights stand-in")
    write_checksums(copy)
    with pytest.raises(ModelFilesError, match="mixes random and other weight files") as err:
        ModelFiles.locate(copy)
    assert "not the random files it lists: StanfordAIMI/RRG_scorers/chexbert.pth" in str(err.value)


def test_an_added_component_file_or_a_lost_one_is_named_even_without_verify(tiny_model_dir, tmp_path):
    copy = _kit_copy(tiny_model_dir, tmp_path)
    (copy / "distilroberta-base" / "pytorch_model.bin").write_bytes(b"from the hub")
    (copy / "bert-base-uncased" / "vocab.txt").unlink()
    with pytest.raises(ModelFilesError) as err:
        ModelFiles.locate(copy, verify=False)
    assert "not the random files it lists: distilroberta-base/pytorch_model.bin" in str(err.value)
    assert "random files it lists are gone: bert-base-uncased/vocab.txt" in str(err.value)


def test_a_stale_marker_in_an_official_folder_names_every_file(official_layout_dir, tiny_model_dir, tmp_path):
    """All files official but the marker copied in (and checksummed): every listed file is named."""
    copy = tmp_path / "models"
    shutil.copytree(official_layout_dir, copy)
    for rel in ("distilroberta-base/model.safetensors", "StanfordAIMI/RRG_scorers/radgraph.tar.gz"):
        (copy / rel).write_bytes(b"official " + rel.encode())
    shutil.copyfile(tiny_model_dir / RANDOM_WEIGHTS_FILE, copy / RANDOM_WEIGHTS_FILE)
    write_checksums(copy)
    with pytest.raises(ModelFilesError) as err:
        ModelFiles.locate(copy)
    assert "distilroberta-base/model.safetensors" in str(err.value) and "radgraph.tar.gz" in str(err.value)


def test_a_kit_folder_copied_into_an_official_directory_is_refused(
    official_layout_dir, tiny_model_dir, tmp_path
):
    """No marker at the root, but the scorers repo comes from a make-tiny kit (its folder copy of the marker)."""
    copy = tmp_path / "models"
    shutil.copytree(official_layout_dir, copy)
    shutil.copytree(tiny_model_dir / "StanfordAIMI", copy / "StanfordAIMI", dirs_exist_ok=True)
    write_checksums(copy)
    with pytest.raises(ModelFilesError, match="mixes random and other weight files") as err:
        ModelFiles.locate(copy, verify=False)
    assert "StanfordAIMI/RRG_scorers/ come from `rrg-reward make-tiny`" in str(err.value)


def test_a_marker_outside_the_checksums_is_refused(tiny_model_dir, tmp_path):
    copy = _kit_copy(tiny_model_dir, tmp_path)
    sums = read_checksums(copy)
    del sums[RANDOM_WEIGHTS_FILE]
    (copy / CHECKSUMS).write_text("".join(f"{d}  {rel}\n" for rel, d in sums.items()))
    with pytest.raises(ModelFilesError, match="not covered by"):
        ModelFiles.locate(copy)


def test_the_kits_radgraph_extracted_is_still_random(tiny_model_dir, tmp_path):
    import tarfile

    copy = _kit_copy(tiny_model_dir, tmp_path)
    scorers = copy / "StanfordAIMI" / "RRG_scorers"
    with tarfile.open(scorers / "radgraph.tar.gz") as tar:
        tar.extractall(scorers / "radgraph", filter="data")
    (scorers / "radgraph.tar.gz").unlink()
    write_checksums(copy)
    assert ModelFiles.locate(copy).random_weights["seed"] == 0
    (scorers / "radgraph" / "weights.th").write_bytes(b"official")
    write_checksums(copy)
    with pytest.raises(ModelFilesError, match="StanfordAIMI/RRG_scorers/radgraph/weights.th"):
        ModelFiles.locate(copy)


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
