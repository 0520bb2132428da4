"""The commands docker/README.md and the headers of compose.yaml and the Dockerfiles tell users to run stay runnable: every argument
list handed to an image (``docker run … IMAGE ARGS``, ``docker compose run … SERVICE ARGS``) goes through
the parser that image's entrypoint uses."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.docker.cli_parsers import parse_accelerate_launch, parse_rrg_reward

REPO = Path(__file__).resolve().parents[2]
DOCS = [
    REPO / "docker" / name for name in ("README.md", "compose.yaml", "Dockerfile.reward", "Dockerfile.train")
]
# image or compose service -> which entrypoint receives the arguments after it
REWARD = {"rrg-trl/reward:cpu", "rrg-trl/reward:cuda", "reward"}
TRAIN = {"rrg-trl/train", "trainer"}


def documented_commands(path: Path) -> list[list[str]]:
    """Shell lines (continuations joined; in compose.yaml and the Dockerfiles, the comment lines) that run
    an image."""
    text = path.read_text()
    if path.suffix != ".md":
        text = "\n".join(line.lstrip("# ") for line in text.splitlines() if line.startswith("#"))
    text = re.sub(r"\\\n\s*", " ", text)
    commands = []
    for line in text.splitlines():
        line = line.strip().strip("`")
        if not re.match(r"^(docker run|docker compose .*\brun\b)", line):
            continue
        words = shlex.split(line, comments=True)
        commands.append(words)
    return commands


def image_arguments(words: list[str]) -> tuple[str, list[str]] | None:
    """``(image or service, args after it)``; None when --entrypoint replaces the image's own."""
    if "--entrypoint" in words:
        return None
    for i, word in enumerate(words):
        if word in REWARD | TRAIN and words[i - 1] not in {"--name", "-v", "-e", "--gpus"}:
            return word, words[i + 1 :]
    pytest.fail(f"no known image or service in: {' '.join(words)}")


def all_documented() -> list[tuple[str, list[str]]]:
    out = []
    for doc in DOCS:
        for words in documented_commands(doc):
            found = image_arguments(words)
            if found:
                out.append((f"{doc.name}: {' '.join(words)}", found))
    return out


def test_docs_show_commands_for_both_images():
    targets = {target for _, (target, _) in all_documented()}
    assert targets & REWARD and targets & TRAIN


@pytest.mark.parametrize(("where", "found"), all_documented(), ids=[w[:80] for w, _ in all_documented()])
def test_documented_arguments_parse(where, found):
    target, args = found
    if not args:  # the image's default CMD: covered by the Dockerfile tests
        return
    if target in REWARD:
        parse_rrg_reward(args)
    else:
        launch = parse_accelerate_launch(args)
        assert launch.module and launch.training_script.startswith("rrg_trl."), where
