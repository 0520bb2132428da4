"""Read a Dockerfile the way the builder does, far enough to know what each image runs.

No Docker engine runs in CI, so the tests resolve the final image config here: line continuations and
comments, build args in ``FROM``, stage inheritance, and the rule that an ``ENTRYPOINT`` set in a stage
clears the ``CMD`` inherited from its base. Only the instructions the tests look at are modelled.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

_VAR = re.compile(r"\$\{(\w+)\}|\$(\w+)")


@dataclass
class Instruction:
    keyword: str  # upper case: FROM, RUN, CMD, ...
    value: str  # the rest of the logical line, continuations joined
    line: int  # 1-based line where the instruction starts


@dataclass
class Stage:
    base: str  # image reference or the name of an earlier stage, build args substituted
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


@dataclass
class ImageConfig:
    """What ``docker inspect`` would show for the target stage, for the fields the tests need."""

    entrypoint: list[str] | None
    cmd: list[str] | None
    user: str | None
    workdir: str | None
    volumes: list[str]
    exposed: list[str]
    healthcheck: list[str] | None
    healthcheck_options: dict[str, str]
    env: dict[str, str]
    stages: list[Stage]  # the chain from the first base to the target

    @property
    def argv(self) -> list[str]:
        return (self.entrypoint or []) + (self.cmd or [])


def logical_lines(text: str) -> list[Instruction]:
    """Join backslash continuations and drop comment lines (also inside continuations), as BuildKit does."""
    out: list[Instruction] = []
    buffer: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not buffer:
            start = number
        if raw.rstrip().endswith("\\"):
            buffer.append(raw.rstrip()[:-1])
            continue
        buffer.append(raw)
        joined = "".join(buffer).strip()
        buffer = []
        keyword, _, value = joined.partition(" ")
        out.append(Instruction(keyword.upper(), value.strip(), start))
    if buffer:
        raise ValueError(f"Dockerfile ends inside a line continuation started at line {start}")
    return out


def substitute(value: str, variables: dict[str, str]) -> str:
    def repl(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name not in variables:
            raise KeyError(f"build arg {name!r} has no value in {value!r}")
        return variables[name]

    return _VAR.sub(repl, value)


def exec_form(value: str) -> list[str] | None:
    """The JSON array of an exec-form instruction, or None for shell form."""
    if not value.startswith("["):
        return None
    parsed = json.loads(value)
    if not (isinstance(parsed, list) and all(isinstance(x, str) for x in parsed)):
        raise ValueError(f"exec form must be a JSON array of strings: {value}")
    return parsed


def command(value: str) -> list[str]:
    """CMD/ENTRYPOINT as the engine runs it: exec form as is, shell form under ``/bin/sh -c``."""
    parsed = exec_form(value)
    return parsed if parsed is not None else ["/bin/sh", "-c", value]


class Dockerfile:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.text = self.path.read_text()
        self.instructions = logical_lines(self.text)

    def stages(self, build_args: dict[str, str] | None = None) -> list[Stage]:
        global_args: dict[str, str] = {}
        stages: list[Stage] = []
        for ins in self.instructions:
            if ins.keyword == "ARG" and not stages:
                name, _, default = ins.value.partition("=")
                global_args[name] = default
            elif ins.keyword == "FROM":
                variables = {**global_args, **(build_args or {})}
                words = ins.value.split()
                words = [w for w in words if not w.startswith("--platform")]
                base = substitute(words[0], variables)
                name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
                stages.append(Stage(base=base, name=name))
            elif stages:
                stages[-1].instructions.append(ins)
        return stages

    def image(self, build_args: dict[str, str] | None = None, target: str | None = None) -> ImageConfig:
        """Resolve the config of ``target`` (default: the last stage, what a plain build produces)."""
        stages = self.stages(build_args)
        by_name = {s.name: s for s in stages if s.name}
        stage = by_name[target] if target else stages[-1]
        chain = [stage]
        while chain[0].base in by_name:
            chain.insert(0, by_name[chain[0].base])
        config = ImageConfig(None, None, None, None, [], [], None, {}, {}, chain)
        for link in chain:
            cmd_set_here = False
            for ins in link.instructions:
                if ins.keyword == "ENTRYPOINT":
                    config.entrypoint = command(ins.value)
                    if not cmd_set_here:
                        config.cmd = None
                elif ins.keyword == "CMD":
                    config.cmd = command(ins.value)
                    cmd_set_here = True
                elif ins.keyword == "USER":
                    config.user = ins.value
                elif ins.keyword == "WORKDIR":
                    config.workdir = ins.value
                elif ins.keyword == "VOLUME":
                    config.volumes += exec_form(ins.value) or ins.value.split()
                elif ins.keyword == "EXPOSE":
                    config.exposed += ins.value.split()
                elif ins.keyword == "ENV":
                    config.env.update(parse_env(ins.value))
                elif ins.keyword == "HEALTHCHECK":
                    config.healthcheck, config.healthcheck_options = parse_healthcheck(ins.value)
        return config

    def copies(self, build_args: dict[str, str] | None = None) -> list[tuple[list[str], str]]:
        """``(sources, destination)`` of every ``COPY`` from the build context (``--from`` copies excluded)."""
        out = []
        for stage in self.stages(build_args):
            for ins in stage.all("COPY"):
                words = shlex.split(ins.value)
                if any(w.startswith("--from") for w in words):
                    continue
                words = [w for w in words if not w.startswith("--")]
                out.append((words[:-1], words[-1]))
        return out


def parse_env(value: str) -> dict[str, str]:
    words = shlex.split(value)
    if words and "=" not in words[0]:  # legacy ``ENV KEY value``
        return {words[0]: " ".join(words[1:])}
    return dict(w.split("=", 1) for w in words)


def parse_healthcheck(value: str) -> tuple[list[str] | None, dict[str, str]]:
    if value.strip().upper() == "NONE":
        return None, {}
    options: dict[str, str] = {}
    rest = value
    while rest.startswith("--"):
        option, _, rest = rest.partition(" ")
        key, _, val = option[2:].partition("=")
        options[key] = val
        rest = rest.lstrip()
    keyword, _, cmd = rest.partition(" ")
    if keyword.upper() != "CMD":
        raise ValueError(f"HEALTHCHECK without CMD: {value}")
    return command(cmd.strip()), options
