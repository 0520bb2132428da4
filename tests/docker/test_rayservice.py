"""docker/rayservice.yaml (KubeRay) and docker/Dockerfile.ray: the manifest parses, its Serve application
is what ``reward_server.ray:app_builder`` builds from those args (replicas, GPUs), the key comes from a
Secret, the Ray versions agree with the tested pin, and the image's command passes the real parser."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import yaml

from tests.docker.cli_parsers import parse_rrg_reward
from tests.docker.dockerfile_reader import Dockerfile

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "docker" / "rayservice.yaml"
DOCKERFILE = Dockerfile(REPO / "docker" / "Dockerfile.ray")


@pytest.fixture(scope="module")
def service() -> dict:
    return yaml.safe_load(MANIFEST.read_text())


@pytest.fixture(scope="module")
def app(service) -> dict:
    serve_config = yaml.safe_load(service["spec"]["serveConfigV2"])
    assert serve_config["http_options"] == {"host": "0.0.0.0", "port": 8000}
    (application,) = serve_config["applications"]
    return application


def containers(service: dict) -> list[dict]:
    cluster = service["spec"]["rayClusterConfig"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    return [c for g in groups for c in g["template"]["spec"]["containers"]]


def test_is_a_rayservice_running_our_app_builder(service, app):
    assert service["apiVersion"] == "ray.io/v1" and service["kind"] == "RayService"
    assert app["name"] == "rrg-reward" and app["route_prefix"] == "/"
    module, _, name = app["import_path"].partition(":")
    assert module == "reward_server.ray" and callable(getattr(importlib.import_module(module), name))


def test_args_build_the_deployment_the_gpus_fit(service, app, monkeypatch):
    pytest.importorskip("ray.serve", reason="ray[serve] not installed: pip install 'rrg-trl[ray]'")
    from reward_server.ray import DEPLOYMENT_NAME, app_builder

    args = app["args"]
    monkeypatch.setenv(args["api_key_env"], "a-key-for-this-test")
    deployment = app_builder(args)._bound_deployment
    assert deployment.name == DEPLOYMENT_NAME
    assert deployment.num_replicas == args["num_replicas"]
    assert deployment.ray_actor_options["num_gpus"] == args["num_gpus_per_replica"] == 1
    workers = service["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    gpus = sum(
        g["replicas"] * int(g["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"])
        for g in workers
    )
    assert gpus >= args["num_replicas"], "not enough GPU workers for the replicas"
    assert args["model_dir"].startswith("/models/")


def test_api_key_only_from_a_secret(service, app):
    assert "api_key" not in app["args"]
    for c in containers(service):
        (var,) = [e for e in c["env"] if e["name"] == app["args"]["api_key_env"]]
        assert "value" not in var and var["valueFrom"]["secretKeyRef"]["key"] == "api-key"


def test_ray_versions_agree_with_the_tested_pin(service):
    pinned = re.search(r'"ray\[serve\]==([\d.]+)"', (REPO / "pyproject.toml").read_text()).group(1)
    assert service["spec"]["rayClusterConfig"]["rayVersion"] == pinned
    assert f'"ray[serve]=={pinned}"' in DOCKERFILE.text
    assert {c["image"] for c in containers(service)} == {"rrg-trl/reward-ray:cuda"}
    assert "-t rrg-trl/reward-ray:cuda" in DOCKERFILE.text


def test_ray_image_command_passes_the_real_parser():
    image = DOCKERFILE.image()
    assert image.entrypoint == ["rrg-reward"] and image.user == "10001:10001"
    args = parse_rrg_reward(image.cmd)
    assert args.ray and args.api_key_env == "RRG_REWARD_API_KEY" and args.host == "0.0.0.0"
