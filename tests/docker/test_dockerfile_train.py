"""docker/Dockerfile.train: a pinned CUDA PyTorch base, ``rrg-trl[train,deepspeed]`` without torchvision,
and a default ``accelerate launch`` line that accelerate and the GRPO stage's real parser accept."""

from __future__ import annotations

import re
from pathlib import Path

from tests.docker.cli_parsers import parse_accelerate_launch, parse_stage
from tests.docker.dockerfile_reader import Dockerfile

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = Dockerfile(REPO / "docker" / "Dockerfile.train")


def runs() -> list[str]:
    return [i.value for s in DOCKERFILE.stages() for i in s.all("RUN")]


def test_cuda_pytorch_base_pinned_by_tag():
    (stage,) = DOCKERFILE.stages()
    match = re.fullmatch(r"pytorch/pytorch:(\d+\.\d+\.\d+)-cuda(\d+\.\d+)-cudnn\d+-devel", stage.base)
    assert match, (
        f"expected a pinned pytorch/pytorch CUDA devel tag (nvcc for DeepSpeed ops), got {stage.base}"
    )
    major, minor, _ = (int(x) for x in match.group(1).split("."))
    assert (major, minor) >= (2, 6), "transformers 5 needs torch>=2.6"


def test_entrypoint_is_accelerate_launch_in_exec_form():
    image = DOCKERFILE.image()
    for ins in DOCKERFILE.stages()[-1].all("ENTRYPOINT") + DOCKERFILE.stages()[-1].all("CMD"):
        assert ins.value.startswith("["), f"line {ins.line}: {ins.keyword} must be exec form (signals)"
    assert image.entrypoint == ["accelerate", "launch"]


def test_default_launch_line_accepted_by_accelerate_and_the_stage():
    image = DOCKERFILE.image()
    launch = parse_accelerate_launch(image.cmd)
    assert launch.module and launch.training_script == "rrg_trl.grpo"
    assert image.workdir == "/workspace"
    # Relative paths resolve against WORKDIR, where recipes/ is copied.
    copied = {dst: srcs for srcs, dst in DOCKERFILE.copies()}
    assert copied.get("./recipes") == ["recipes"]
    assert (REPO / launch.config_file).is_file(), launch.config_file
    parse_stage(launch.training_script, launch.training_script_args)


def test_installs_train_and_deepspeed_without_torchvision():
    install = next(r for r in runs() if "pip install" in r)
    assert re.search(r"\[train,deepspeed\]", install)
    # The base ships torchvision; it goes before the install and the build fails if it came back.
    assert install.index("pip uninstall -y torchvision") < install.index("pip install")
    assert "find_spec('torchvision')" in install
    assert "--constraint /opt/torch-constraint.txt" in install, "the base's CUDA torch stays"
    assert "torch.version.cuda" in install


def test_runs_as_a_non_root_user_with_the_data_volume():
    image = DOCKERFILE.image()
    assert image.user is not None and image.user.split(":")[0] not in {"0", "root"}
    assert "/data" in image.volumes
    assert image.env.get("HF_HOME", "").startswith("/data/")
    assert image.env.get("HF_HUB_OFFLINE") == "1", "air-gapped by default; the hub cache is pre-filled"
