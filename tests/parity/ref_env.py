"""Run the reference implementation (radeval 2.2.1) offline on a model directory of ours.

radeval hard-codes hub ids and reads from the Hugging Face / appdirs caches, whose paths are frozen when
huggingface_hub, transformers or radeval are first imported. So the reference always runs in a fresh
subprocess whose environment points those caches at a hand-built hub layout that links to our files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from reward_server.radcliq.model_files import (
    BERTSCORE_MODEL,
    CHEXBERT_BACKBONE,
    CHEXBERT_FILE,
    RADGRAPH_FILE,
    SCORERS_REPO,
    ModelFiles,
    read_radgraph_config,
)

FAKE_COMMIT = "0" * 40
HERE = Path(__file__).resolve().parent


def _hub_entry(
    hub_cache: Path, repo_id: str, src_dir: Path | None = None, files: dict[str, Path] | None = None
):
    """Create ``models--ORG--NAME/{refs/main, snapshots/<commit>/...}`` pointing at our files."""
    entry = hub_cache / ("models--" + repo_id.replace("/", "--"))
    snap = entry / "snapshots" / FAKE_COMMIT
    snap.mkdir(parents=True, exist_ok=True)
    (entry / "refs").mkdir(exist_ok=True)
    (entry / "refs" / "main").write_text(FAKE_COMMIT)
    items = dict(files or {})
    if src_dir is not None:
        items.update({p.name: p for p in src_dir.iterdir() if p.is_file()})
    for name, path in items.items():
        link = snap / name
        if not link.exists():
            link.symlink_to(path.resolve())


def _model_files(model_dir: str | Path) -> ModelFiles:
    """``ModelFiles.locate``, except that a kit without RadGraph is accepted (encoder-only parity runs)."""
    root = Path(model_dir)
    scorers = root / SCORERS_REPO
    if (scorers / RADGRAPH_FILE).exists() or (scorers / "radgraph").is_dir():
        return ModelFiles.locate(root, verify=False)
    return ModelFiles(
        root=root,
        bertscore=root / BERTSCORE_MODEL,
        chexbert_backbone=root / CHEXBERT_BACKBONE,
        chexbert_weights=scorers / CHEXBERT_FILE,
        radgraph=scorers / RADGRAPH_FILE,
    )


def build_reference_cache(model_dir: str | Path, cache_root: str | Path) -> dict[str, str]:
    """Lay out the caches radeval reads and return the environment variables that select them."""
    files = _model_files(model_dir)
    root = Path(cache_root)
    hf_home = root / "hf"
    hub = hf_home / "hub"
    xdg = root / "xdg"
    # A partial kit (e.g. only the encoders a test needs) links what it has.
    if files.bertscore.is_dir():
        _hub_entry(hub, "distilroberta-base", files.bertscore)
    if files.chexbert_backbone.is_dir():
        _hub_entry(hub, "bert-base-uncased", files.chexbert_backbone)
    # chexbert.pth: hf_hub_download(SCORERS_REPO, "chexbert.pth", cache_dir=user_cache_dir("chexbert"))
    if files.chexbert_weights.is_file():
        _hub_entry(xdg / "chexbert", SCORERS_REPO, files={CHEXBERT_FILE: files.chexbert_weights})
    # RadGraph: an extracted, writable copy (AllenNLP writes a .lock into vocabulary/).
    rg = xdg / "radgraph" / "0.1.18" / "radgraph"
    if files.radgraph.exists():
        backbone_id = read_radgraph_config(files.radgraph)["model"]["embedder"]["token_embedders"]["bert"][
            "model_name"
        ]
        _hub_entry(hub, backbone_id, Path(files.radgraph_backbone()))
    if files.radgraph.exists() and not rg.is_dir():
        rg.mkdir(parents=True)
        if files.radgraph.is_dir():
            shutil.copytree(files.radgraph, rg, dirs_exist_ok=True)
        else:
            with tarfile.open(files.radgraph, "r:*") as tar:
                tar.extractall(rg, filter="data")
    return {
        "HF_HOME": str(hf_home),
        "HF_HUB_CACHE": str(hub),
        "XDG_CACHE_HOME": str(xdg),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONHASHSEED": "0",
        "NLTK_DATA": str(root / "nltk"),
    }


def _visible_devices(device: str, visible: str | None) -> str:
    """``CUDA_VISIBLE_DEVICES`` that makes ``device`` the reference's ``cuda:0`` ("" for the CPU)."""
    kind, _, index = str(device).partition(":")
    if kind == "cpu":
        return ""
    if kind != "cuda":
        raise ValueError(f"the reference runs on 'cpu' or 'cuda[:N]', not {device!r}")
    if not index:
        return visible if visible is not None else "0"
    ids = visible.split(",") if visible else None
    if ids and int(index) >= len(ids):
        raise ValueError(f"{device!r} is not among the visible GPUs (CUDA_VISIBLE_DEVICES={visible!r})")
    return ids[int(index)] if ids else index


def run_reference(
    script: str,
    model_dir: str | Path,
    cache_root: str | Path,
    payload: dict,
    timeout: int = 1800,
    device: str | None = None,
):
    """Run ``tests/parity/<script>`` in a clean subprocess with the reference caches; JSON in, JSON out.

    The reference picks its own device (``cuda:0`` whenever one is visible). ``device`` pins it, so that a
    benchmark compares like with like: "cpu" hides the GPUs from it, "cuda:N" shows it only GPU N.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_", "XDG_"))}
    env.update(build_reference_cache(model_dir, cache_root))
    if device is not None:
        env["CUDA_VISIBLE_DEVICES"] = _visible_devices(device, env.get("CUDA_VISIBLE_DEVICES"))
    root = Path(cache_root)
    inp, out = root / f"{script}.in.json", root / f"{script}.out.json"
    inp.write_text(json.dumps(payload))
    proc = subprocess.run(
        [sys.executable, str(HERE / script), str(inp), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"reference run {script} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(out.read_text())
