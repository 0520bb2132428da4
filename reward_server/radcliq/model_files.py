"""Where the scorer's weight files live, how they are checked, and how they are fetched.

A model directory mirrors the hub ids it stands for, so the same folder works for the real weights
(``rrg-reward download DIR``), for the embedded tiny kit (``rrg-reward make-tiny DIR``), and for an
air-gapped copy of either::

    DIR/distilroberta-base/                       BERTScore encoder (save_pretrained format)
    DIR/bert-base-uncased/                        CheXbert config + tokenizer
    DIR/StanfordAIMI/RRG_scorers/chexbert.pth     CheXbert weights {"model_state_dict": ...}
    DIR/StanfordAIMI/RRG_scorers/radgraph.tar.gz  RadGraph (DyGIE++) archive, or radgraph/ extracted
    DIR/<radgraph backbone hub id>/               named by the archive's config.json
    DIR/checksums.sha256                          optional; verified at load when present
    DIR/RANDOM_WEIGHTS.json                       only in a make-tiny kit: its files' sha256 (see below)

The tiny kit's layout is deliberately the official one, so the only thing telling its RANDOM weights apart is
the marker ``make-tiny`` writes (``download`` writes none). It lists the sha256 of every file of the kit and is
itself covered by ``checksums.sha256``; at load a directory with a marker must hold exactly those files, so a
kit with an official file copied in (or an official folder with a stale marker) is refused, not mislabelled.
Each component folder also gets a short copy, so a kit folder copied into a downloaded directory is caught too
(a single weight file copied on its own is not: the mark lives beside the files, not inside them).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

BERTSCORE_MODEL = "distilroberta-base"
CHEXBERT_BACKBONE = "bert-base-uncased"
SCORERS_REPO = "StanfordAIMI/RRG_scorers"
CHEXBERT_FILE = "chexbert.pth"
RADGRAPH_FILE = "radgraph.tar.gz"
# The backbone named inside the official radgraph.tar.gz config.json (read from the archive at load time;
# this constant is only what `download` fetches when the archive is not yet present).
RADGRAPH_BACKBONE = "microsoft/BiomedNLP-PubMedBERT-base-uncased-abstract-fulltext"
CHECKSUMS = "checksums.sha256"
RANDOM_WEIGHTS_FILE = "RANDOM_WEIGHTS.json"
# The one wording every output of scores from random models carries (evaluation, CLI, server, TRL logs, demo).
RANDOM_WEIGHTS_LABEL = "tiny RANDOM scorer models"
RANDOM_WEIGHTS_NOTICE = f"{RANDOM_WEIGHTS_LABEL}: numbers show that the pipeline runs, not clinical quality"

# Files a hub model directory needs for config + tokenizer (+ weights where the weights come from it).
_TOKENIZER_FILES = [
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "special_tokens_map.json",
]


class ModelFilesError(FileNotFoundError):
    """A model directory is incomplete or does not match its recorded checksums."""


def resolve_hub_id(model_dir: str | Path | None, name: str) -> str:
    """``model_dir/name`` when that folder exists, else ``name`` unchanged (a hub id or an absolute path)."""
    if model_dir is not None:
        local = Path(model_dir) / name
        if local.is_dir():
            return str(local)
    return name


@dataclass(frozen=True)
class ModelFiles:
    """Resolved paths of every file RadCliQ needs, found in one model directory."""

    root: Path
    bertscore: Path
    chexbert_backbone: Path
    chexbert_weights: Path
    radgraph: Path  # the .tar.gz archive or its extracted folder
    random_weights: dict | None = None  # the make-tiny marker (seed, size, files) when the weights are random

    @classmethod
    def locate(cls, model_dir: str | Path, verify: bool = True) -> ModelFiles:
        root = Path(model_dir).expanduser()
        if not root.is_dir():
            raise ModelFilesError(
                f"model directory {root} does not exist; create it with `rrg-reward make-tiny {root}` "
                f"(random test weights) or `rrg-reward download {root}` (the official weights)"
            )
        scorers = root / SCORERS_REPO
        radgraph = scorers / RADGRAPH_FILE
        if not radgraph.is_file() and (scorers / "radgraph").is_dir():
            radgraph = scorers / "radgraph"
        files = cls(
            root=root,
            bertscore=root / BERTSCORE_MODEL,
            chexbert_backbone=root / CHEXBERT_BACKBONE,
            chexbert_weights=scorers / CHEXBERT_FILE,
            radgraph=radgraph,
        )
        missing = [
            str(p.relative_to(root)) for p in (files.bertscore, files.chexbert_backbone) if not p.is_dir()
        ]
        missing += [str(p.relative_to(root)) for p in (files.chexbert_weights,) if not p.is_file()]
        if not files.radgraph.exists():
            missing.append(f"{SCORERS_REPO}/{RADGRAPH_FILE} (or {SCORERS_REPO}/radgraph/)")
        if missing:
            raise ModelFilesError(f"model directory {root} is missing: {', '.join(missing)}")
        verified = verify_checksums(root) if verify else {}
        marker = check_random_weights(root, verify=verify, verified=verified)
        return dataclasses.replace(files, random_weights=marker)

    def radgraph_backbone(self) -> str:
        """The backbone hub id recorded in the RadGraph archive, resolved to a sibling folder if present."""
        config = read_radgraph_config(self.radgraph)
        name = config["model"]["embedder"]["token_embedders"]["bert"]["model_name"]
        return resolve_hub_id(self.root, name)


def read_radgraph_config(archive_or_dir: str | Path) -> dict:
    """``config.json`` of a RadGraph archive (``.tar.gz``) or of its extracted folder."""
    path = Path(archive_or_dir)
    if path.is_dir():
        return json.loads((path / "config.json").read_text())
    with tarfile.open(path, "r:*") as tar:
        member = next((m for m in tar.getmembers() if Path(m.name).name == "config.json"), None)
        if member is None:
            raise ModelFilesError(f"{path} has no config.json: not a RadGraph (DyGIE++) archive")
        return json.loads(tar.extractfile(member).read())


def sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _tracked_files(root: Path) -> list[Path]:
    out = []
    for dirpath, _, names in os.walk(root):
        for name in names:
            p = Path(dirpath) / name
            if name == CHECKSUMS or name.endswith(".lock") or ".cache" in p.relative_to(root).parts:
                continue
            out.append(p)
    return sorted(out)


def write_checksums(model_dir: str | Path) -> Path:
    """Record ``sha256  relative/path`` for every file (``sha256sum -c`` can check it too)."""
    root = Path(model_dir)
    lines = [f"{sha256(p)}  {p.relative_to(root).as_posix()}" for p in _tracked_files(root)]
    out = root / CHECKSUMS
    out.write_text("\n".join(lines) + "\n")
    return out


def read_checksums(model_dir: str | Path) -> dict[str, str]:
    path = Path(model_dir) / CHECKSUMS
    if not path.is_file():
        return {}
    table = {}
    for line in path.read_text().splitlines():
        if line.strip():
            digest, rel = line.split(maxsplit=1)
            table[rel.strip()] = digest
    return table


def verify_checksums(model_dir: str | Path) -> dict[str, str]:
    """Check every recorded file; raise naming each missing or mismatched one. No file, no check."""
    root = Path(model_dir)
    table = read_checksums(root)
    bad = []
    for rel, digest in table.items():
        p = root / rel
        if not p.is_file():
            bad.append(f"{rel} (missing)")
        elif sha256(p) != digest:
            bad.append(f"{rel} (sha256 mismatch)")
    if bad:
        raise ModelFilesError(f"model directory {root} fails its {CHECKSUMS}: {', '.join(bad)}")
    return table


def random_weights_fields(random_weights: bool) -> dict:
    """The fields each output of scores carries (``info()``, score rows, evaluation files): the flag, and
    the notice when the scorer models are random."""
    if random_weights:
        return {"random_weights": True, "random_weights_notice": RANDOM_WEIGHTS_NOTICE}
    return {"random_weights": False}


def _weight_files(root: Path) -> dict[str, Path]:
    """Every tracked file but the marker itself, by relative path."""
    files = {p.relative_to(root).as_posix(): p for p in _tracked_files(root)}
    files.pop(RANDOM_WEIGHTS_FILE, None)
    return files


def _archive_members(root: Path) -> dict[str, str]:
    """sha256 of each RadGraph archive member as extracted into ``radgraph/`` (which ``locate`` accepts too)."""
    archive = root / SCORERS_REPO / RADGRAPH_FILE
    if not archive.is_file():
        return {}
    with tarfile.open(archive, "r:*") as tar:
        return {
            (Path(SCORERS_REPO) / "radgraph" / m.name).as_posix(): hashlib.sha256(
                tar.extractfile(m).read()
            ).hexdigest()
            for m in tar.getmembers()
            if m.isfile()
        }


def _component_dirs(root: Path) -> list[Path]:
    """The folders a user may copy on their own: the two encoders, the scorers repo, the RadGraph backbone."""
    files = ModelFiles.locate(root, verify=False)
    backbone = Path(files.radgraph_backbone())
    return [files.bertscore, files.chexbert_backbone, files.chexbert_weights.parent, backbone]


def write_random_weights_marker(model_dir: str | Path, **about) -> Path:
    """Record that every file now in ``model_dir`` holds random weights (``about``: seed, size), by sha256;
    the RadGraph archive's members too, so an extracted ``radgraph/`` folder is still recognised. Each
    component folder gets a short copy (no file list), so one copied into another directory is caught."""
    root = Path(model_dir)
    tag = {
        "random_weights": True,
        "notice": RANDOM_WEIGHTS_NOTICE,
        "written_by": "rrg-reward make-tiny",
        **about,
    }
    for folder in _component_dirs(root):
        if folder.is_dir() and folder.resolve().is_relative_to(root.resolve()):
            (folder / RANDOM_WEIGHTS_FILE).write_text(json.dumps(tag, indent=1) + "\n")
    files = {rel: sha256(p) for rel, p in _weight_files(root).items()}
    members = _archive_members(root)
    marker = {
        **tag,
        "files": files,
        "extracted": {f"{SCORERS_REPO}/{RADGRAPH_FILE}": members} if members else {},
    }
    out = root / RANDOM_WEIGHTS_FILE
    out.write_text(json.dumps(marker, indent=1) + "\n")
    return out


def _read_marker(path: Path) -> tuple[dict, dict[str, str], dict[str, dict[str, str]]]:
    try:
        marker = json.loads(path.read_text())
        return marker, dict(marker["files"]), {k: dict(v) for k, v in marker.get("extracted", {}).items()}
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ModelFilesError(
            f"{path} is not a make-tiny marker ({e!r}); rebuild the kit with `rrg-reward make-tiny`"
        ) from None


def _refuse_stray_component_markers(root: Path) -> None:
    """A folder copied from a make-tiny kit into a directory without the kit's marker: random beside others."""
    stray = sorted(
        f"{Path(rel).parent.as_posix()}/"
        for rel in _weight_files(root)
        if Path(rel).name == RANDOM_WEIGHTS_FILE
    )
    if stray:
        raise ModelFilesError(
            f"model directory {root} mixes random and other weight files: {', '.join(stray)} come from "
            f"`rrg-reward make-tiny` (random weights; each holds a {RANDOM_WEIGHTS_FILE}), but {root} has no "
            f"{RANDOM_WEIGHTS_FILE} of its own, so its other files are not the kit's. Rebuild the kit with "
            "`rrg-reward make-tiny`, or fetch the official files with `rrg-reward download` into an empty folder"
        )


def check_random_weights(
    model_dir: str | Path, verify: bool = True, verified: dict[str, str] | None = None
) -> dict | None:
    """The make-tiny marker of ``model_dir`` (None: no marker, i.e. official files); raise on a mixed directory.

    With a marker, every file must be one it lists (with ``verify``, with the listed sha256; ``verified``:
    digests already checked against the files) and every listed file must be there: anything else means
    random and other files side by side, and the error names them.
    """
    root = Path(model_dir)
    path = root / RANDOM_WEIGHTS_FILE
    if not path.is_file():
        _refuse_stray_component_markers(root)
        return None
    marker, listed, extracted = _read_marker(path)
    checksums = read_checksums(root) if verify else {}
    if checksums and RANDOM_WEIGHTS_FILE not in checksums:
        raise ModelFilesError(f"{path} is not covered by {root / CHECKSUMS}: it was added or edited by hand")
    known = {**listed, **{m: d for members in extracted.values() for m, d in members.items()}}
    verified = verified or {}
    present = _weight_files(root)

    def is_random(rel: str, p: Path) -> bool:
        return rel in known and (not verify or (verified.get(rel) or sha256(p)) == known[rel])

    foreign = sorted(rel for rel, p in present.items() if not is_random(rel, p))
    missing = sorted(
        rel
        for rel in listed
        if rel not in present and not (rel in extracted and set(extracted[rel]) <= set(present))
    )
    if foreign or missing:
        random = sorted({f"{Path(rel).parent.as_posix()}/" for rel in present if rel not in foreign})
        problems = [f"not the random files it lists: {', '.join(foreign)}"] if foreign else []
        problems += [f"random files it lists are gone: {', '.join(missing)}"] if missing else []
        problems += [f"its random files are still in: {', '.join(random)}"] if random else []
        raise ModelFilesError(
            f"model directory {root} mixes random and other weight files ({RANDOM_WEIGHTS_FILE} is the "
            f"make-tiny marker): {'; '.join(problems)}. Rebuild the kit with `rrg-reward make-tiny`, or fetch "
            "the official files with `rrg-reward download` into an empty folder"
        )
    return marker


def _materialise(snapshot: Path, dest: Path) -> None:
    """Copy a hub snapshot (symlinks into the blob store) as plain files, so the folder can be moved."""
    for src in snapshot.rglob("*"):
        if src.is_file():
            target = dest / src.relative_to(snapshot)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src.resolve(), target)


def download(model_dir: str | Path, revision: str | None = None, cache_dir: str | Path | None = None) -> Path:
    """Fetch the official files from the Hugging Face hub into the layout above and record checksums.

    Files go through the standard hub cache (``cache_dir``, default ``HF_HUB_CACHE``), so an already
    populated cache works offline too (``HF_HUB_OFFLINE=1``), then are copied as plain files into
    ``model_dir``. ``revision`` pins ``StanfordAIMI/RRG_scorers``. For air-gapped clusters: run once where the
    hub is reachable, then copy the folder.
    """
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    root = Path(model_dir)
    created = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    try:
        _fetch_all(root, revision, cache_dir)
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as error:
        if created and not any(root.iterdir()):
            root.rmdir()
        raise HubUnreachable(_unreachable_message(root, error)) from error
    write_checksums(root)
    return root


class HubUnreachable(RuntimeError):
    """``download`` found neither the hub nor the files in the local hub cache; the message says what to do."""


def _unreachable_message(root: Path, error: Exception) -> str:
    from huggingface_hub import constants

    why = (
        "offline mode is on (HF_HUB_OFFLINE=1; the Makefile exports it): unset it, e.g. `HF_HUB_OFFLINE=0 "
        "rrg-reward download ...`"
        if constants.HF_HUB_OFFLINE
        else f"the Hugging Face hub cannot be reached ({type(error).__name__}): check the network or HF_ENDPOINT"
    )
    return (
        f"cannot download the scorer files into {root}: {why}, and the hub cache does not hold them. "
        "Air-gapped: run `rrg-reward download DIR` where the hub is reachable, copy DIR here (its "
        "checksums.sha256 is verified at load) and pass it as --model-dir"
    )


def _fetch_all(root: Path, revision: str | None, cache_dir: str | Path | None) -> None:
    from huggingface_hub import hf_hub_download, snapshot_download

    patterns = ["config.json", *_TOKENIZER_FILES]

    def fetch(repo_id: str, allow: list[str]) -> None:
        _materialise(
            Path(snapshot_download(repo_id, allow_patterns=allow, cache_dir=cache_dir)), root / repo_id
        )

    fetch(BERTSCORE_MODEL, [*patterns, "model.safetensors"])
    fetch(CHEXBERT_BACKBONE, patterns)
    scorers = root / SCORERS_REPO
    scorers.mkdir(parents=True, exist_ok=True)
    for name in (CHEXBERT_FILE, RADGRAPH_FILE):
        path = hf_hub_download(SCORERS_REPO, name, revision=revision, cache_dir=cache_dir)
        shutil.copyfile(Path(path).resolve(), scorers / name)
    backbone = read_radgraph_config(scorers / RADGRAPH_FILE)["model"]["embedder"]["token_embedders"]["bert"][
        "model_name"
    ]
    fetch(backbone, patterns)
