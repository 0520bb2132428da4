"""/.dockerignore keeps environments, caches, outputs, weights and secrets out of the build context,
while everything the Dockerfiles COPY (and every tracked file beneath it) stays in.

The matcher follows Docker's rules (patterns relative to the context root, ``*``/``?`` within one path
segment, ``**`` across segments, a match on a parent directory excludes what is under it, ``!`` re-includes,
the last matching pattern wins)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.docker.dockerfile_reader import Dockerfile

REPO = Path(__file__).resolve().parents[2]


def _regex(pattern: str) -> re.Pattern:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def load_patterns(path: Path) -> list[tuple[bool, re.Pattern]]:
    patterns = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        patterns.append((negate, _regex(line.lstrip("!").strip().lstrip("/").rstrip("/"))))
    return patterns


PATTERNS = load_patterns(REPO / ".dockerignore")


def excluded(path: str) -> bool:
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    verdict = False
    for negate, regex in PATTERNS:
        if any(regex.fullmatch(c) for c in candidates):
            verdict = not negate
    return verdict


def copied_sources() -> set[str]:
    sources = set()
    for name in ("Dockerfile.reward", "Dockerfile.train"):
        for srcs, _ in Dockerfile(REPO / "docker" / name).copies():
            sources.update(s.rstrip("/") for s in srcs)
    return sources


@pytest.mark.parametrize(
    "path",
    [
        ".git/HEAD",
        ".venv/bin/python",
        "outputs/grpo/checkpoint-10/adapter_model.safetensors",
        "runs/x/events",
        "models/StanfordAIMI/RRG_scorers/chexbert.pth",
        "reward_server/__pycache__/cli.cpython-311.pyc",
        "rrg_trl.egg-info/PKG-INFO",
        ".pytest_cache/v/cache",
        ".ruff_cache/0.6/x",
        ".env",
        "docker/.env",
        "prod.env",
        "rrg_trl/data/policy/model.safetensors",
        "radcliq/StanfordAIMI/RRG_scorers/radgraph.tar.gz",
        "weights/pytorch_model.bin",
        "ckpt/model.pt",
    ],
)
def test_excluded(path):
    assert excluded(path), f"{path} would be sent to the Docker daemon"


def test_everything_the_images_copy_is_in_the_context():
    sources = copied_sources()
    assert {
        "pyproject.toml",
        "README.md",
        "reward_server",
        "rrg_trl",
        "recipes",
        "docker/healthcheck.py",
    } <= sources
    for source in sources:
        assert not excluded(source), f"COPY {source} but .dockerignore drops it"


def test_no_tracked_file_under_a_copied_source_is_dropped():
    """Package data the install needs (e.g. reward_server/radcliq/data/*) must not fall to a weights pattern."""
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", *sorted(copied_sources())],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert tracked, "git sees no files under the copied sources"
    dropped = [f for f in tracked if excluded(f)]
    assert not dropped, f".dockerignore drops files the images copy: {dropped}"


def test_matcher_rules():
    # The rules the two tests above rely on, on patterns written here.
    global PATTERNS
    saved = PATTERNS
    try:
        PATTERNS = [(False, _regex("**/*.bin")), (False, _regex("models")), (True, _regex("models/keep.txt"))]
        assert excluded("a/b/c.bin") and excluded("c.bin")
        assert excluded("models/x/y") and not excluded("models/keep.txt")
        assert not excluded("modelsx/y")
    finally:
        PATTERNS = saved
