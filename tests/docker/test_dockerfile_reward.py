"""docker/Dockerfile.reward: what each variant (DEVICE=cpu|cuda) runs, checked against the real
``rrg-reward`` parser, plus the image properties issue 7 asks for (non-root, model volume, /ready probe,
CPU torch wheel for the CPU variant, no torchvision)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.docker.cli_parsers import parse_rrg_reward
from tests.docker.dockerfile_reader import Dockerfile

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = Dockerfile(REPO / "docker" / "Dockerfile.reward")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def all_runs(build_args=None) -> list[str]:
    return [i.value for s in DOCKERFILE.stages(build_args) for i in s.all("RUN")]


@pytest.fixture(params=["cpu", "cuda"])
def device(request) -> str:
    return request.param


def test_default_build_is_the_cpu_variant():
    assert DOCKERFILE.image().stages[-2].name == "runtime-cpu"


def test_each_variant_resolves_to_its_own_stage(device):
    chain = [s.name for s in DOCKERFILE.image({"DEVICE": device}).stages]
    assert chain[:-1] == ["runtime", f"runtime-{device}"]


def test_runs_rrg_reward_serve_in_exec_form(device):
    image = DOCKERFILE.image({"DEVICE": device})
    # Exec form, so rrg-reward is PID 1 and SIGTERM reaches uvicorn (graceful drain of queued work).
    for stage in image.stages:
        for ins in stage.all("CMD") + stage.all("ENTRYPOINT"):
            assert ins.value.startswith("["), f"line {ins.line}: {ins.keyword} must be exec form"
    assert image.entrypoint == ["rrg-reward"]
    assert image.cmd[0] == "serve"


def test_serve_arguments_accepted_by_the_real_parser(device):
    image = DOCKERFILE.image({"DEVICE": device})
    args = parse_rrg_reward(image.cmd)
    assert args.device == device
    assert str(args.model_dir) in image.volumes, "--model-dir must be the declared VOLUME"
    assert str(args.port) in {p.split("/")[0] for p in image.exposed}, "--port must be EXPOSEd"
    assert image.env.get("RRG_REWARD_PORT") == str(args.port), "the health probe reads RRG_REWARD_PORT"
    if args.host not in LOOPBACK:
        # The server refuses a non-loopback bind without a key; the image names the variable and the
        # deployment supplies the value.
        assert args.api_key_env, "binding a non-loopback host needs --api-key-env"
        assert args.api_key_env not in image.env, "no API key value may be baked into the image"


def test_healthcheck_runs_the_copied_probe(device):
    image = DOCKERFILE.image({"DEVICE": device})
    assert image.healthcheck is not None and image.healthcheck[0] == "python"
    copied = {dst: srcs for srcs, dst in DOCKERFILE.copies({"DEVICE": device})}
    assert copied.get(image.healthcheck[-1]) == ["docker/healthcheck.py"]
    assert int(image.healthcheck_options["retries"]) >= 1
    assert image.healthcheck_options["start-period"], "model loading needs a start period"


def test_runs_as_a_non_root_user(device):
    user = DOCKERFILE.image({"DEVICE": device}).user
    assert user is not None and user.split(":")[0] not in {"0", "root"}


def test_slim_serve_extra_only_and_no_torchvision():
    installs = [r for r in all_runs() if "pip install" in r]
    assert any('".[serve]"' in r for r in installs), "the image installs rrg-trl[serve]"
    assert not any(re.search(r"\[[^\]]*train", r) for r in installs), "no trainer stack in the reward image"
    assert not any(re.search(r"pip install[^&]*torchvision", r) for r in installs)
    # The build itself fails if anything pulled torchvision in.
    assert any("find_spec('torchvision')" in r and "sys.exit" in r for r in installs)


def test_package_install_cannot_replace_torch():
    package_run = next(r for r in all_runs() if '".[serve]"' in r)
    assert "--constraint /opt/torch-constraint.txt" in package_run
    torch_run = next(r for r in all_runs() if '"torch==${TORCH_VERSION}"' in r)
    assert "> /opt/torch-constraint.txt" in torch_run
    assert "torch.version.cuda" in torch_run, "the build checks the wheel matches DEVICE"


@pytest.mark.parametrize(
    ("device_arg", "index_arg", "expected"),
    [
        ("cpu", "", "index=https://download.pytorch.org/whl/cpu"),
        ("cpu", "https://mirror.example/cpu", "index=https://mirror.example/cpu"),
        ("cuda", "", "index="),  # pip's default index: its Linux torch wheels are CUDA builds
        ("cuda", "https://mirror.example/cu126", "index=https://mirror.example/cu126"),
    ],
)
def test_torch_index_selection_runs_in_sh(device_arg, index_arg, expected):
    """Run the Dockerfile's own ``case`` block in /bin/sh and read the index it selects."""
    result = _run_index_case(device_arg, index_arg)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


def test_unknown_device_fails_the_build():
    result = _run_index_case("tpu", "")
    assert result.returncode != 0
    assert "DEVICE must be cpu or cuda" in result.stderr and "tpu" in result.stderr


def _run_index_case(device: str, index: str) -> subprocess.CompletedProcess:
    torch_run = next(r for r in all_runs() if '"torch==${TORCH_VERSION}"' in r)
    case_block = torch_run[torch_run.index("case ") : torch_run.index("esac") + len("esac")]
    script = f'{case_block}\necho "index=${{PIP_INDEX_URL:-}}"'
    env = {"PATH": "/usr/bin:/bin", "DEVICE": device, "TORCH_INDEX_URL": index}
    return subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True, text=True, timeout=10)


def test_base_images_pinned_by_tag():
    stage_names = {s.name for s in DOCKERFILE.stages()}
    for stage in DOCKERFILE.stages():
        if stage.base in stage_names:
            continue
        _, _, tag = stage.base.partition(":")
        assert tag and tag != "latest", f"{stage.base} must be pinned by tag"
