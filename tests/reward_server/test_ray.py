"""``rrg-reward serve --ray``: the reward app on Ray Serve, over real HTTP and the Serve handle.

One local Ray cluster per module (started here with ``ray.init``, shut down at the end); the user's command,
``rrg-reward serve --ray --ray-address ...``, joins it in a child process with two tiny-kit replicas on CPU.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time

import httpx
import pytest

ray = pytest.importorskip("ray", reason="ray not installed: pip install 'rrg-trl[ray]'")
serve = pytest.importorskip("ray.serve", reason="ray[serve] not installed: pip install 'rrg-trl[ray]'")

from reward_server.client import RewardClient, RewardRequestError  # noqa: E402
from reward_server.ray import (  # noqa: E402
    APP_NAME,
    AsyncRayRewardClient,
    RayRewardClient,
    RayServeConfig,
    ReplicaHealth,
    app_builder,
    get_scorer_handle,
)
from reward_server.service.app import ApiError, ServerSettings, create_app  # noqa: E402
from reward_server.service.local import LocalRewardServer  # noqa: E402
from rrg_trl.rewards import RadCliQRewards, RewardConfig  # noqa: E402
from tests.reward_server.live import FaultyScorer, assert_rows_close, pool, tiny_scorer  # noqa: E402
from tests.reward_server.service.test_app import (  # noqa: E402
    AUTH,
    BAD_INPUTS,
    GOOD,
    KEY,
    MAX_BODY,
    MAX_CHARS,
    MAX_PAIRS,
)

TOL = 1e-5
KEY_ENV = "RRG_TEST_RAY_KEY"


@pytest.fixture(scope="module")
def scorer(tiny_model_dir):
    return tiny_scorer(str(tiny_model_dir))


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster owned by this module (4 logical CPUs: 2 replicas + room for a replacement)."""
    context = ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    try:
        yield context.address_info["gcs_address"]
    finally:
        serve.shutdown()
        ray.shutdown()


@pytest.fixture(scope="module")
def served(cluster, tiny_model_dir, tmp_path_factory):
    """What a user runs: ``rrg-reward serve --ray`` joining the cluster, 2 replicas, the plain server's limits."""
    log = tmp_path_factory.mktemp("ray-serve") / "serve.log"
    server = LocalRewardServer(
        tiny_model_dir,
        "--ray",
        "--ray-address",
        cluster,
        "--num-replicas",
        "2",
        "--num-cpus-per-replica",
        "1",
        "--health-check-period-s",
        "2",
        "--api-key-env",
        KEY_ENV,
        "--max-pairs-per-request",
        str(MAX_PAIRS),
        "--max-text-chars",
        str(MAX_CHARS),
        "--max-body-bytes",
        str(MAX_BODY),
        "--max-batch-pairs",
        "64",
        "--openrlhf-strip",
        "</s>",
        log_path=log,
        env={KEY_ENV: KEY},
    )
    try:
        server.wait_ready(timeout_s=300)  # one replica answers /ready: wait for the second too
        deadline = time.monotonic() + 120
        while running_replicas() < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        yield server
    finally:
        assert server.stop(timeout_s=60) == 0, log.read_text()[-3000:]


def replica_ids() -> set[str]:
    prefix = f"SERVE_REPLICA::{APP_NAME}#"
    return {
        a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith(prefix)
    }


def running_replicas() -> int:
    app = serve.status().applications.get(APP_NAME)
    if app is None or app.status != "RUNNING":
        return 0
    return sum(d.replica_states.get("RUNNING", 0) for d in app.deployments.values())


def plans(clients: int, requests: int, seed: int) -> list[list[tuple[list[str], list[str]]]]:
    rng = random.Random(seed)
    texts = pool()
    return [
        [
            ([rng.choice(texts) for _ in range(n)], [rng.choice(texts) for _ in range(n)])
            for n in (rng.choice([1, 2, 3, 5, 8]) for _ in range(requests))
        ]
        for _ in range(clients)
    ]


# ---------------------------------------------------------------------- the default: a local cluster
def test_serve_ray_alone_starts_a_local_cluster_and_stops_on_sigterm(tiny_model_dir, tmp_path):
    """Runs before the module's cluster exists: ``rrg-reward serve --ray`` with no address owns its cluster."""
    log = tmp_path / "serve.log"
    server = LocalRewardServer(
        tiny_model_dir, "--ray", "--ray-num-cpus", "1", "--num-replicas", "1", log_path=log
    )
    try:
        server.wait_ready(timeout_s=300)
        r = httpx.post(server.url + "/v1/score", json=GOOD, timeout=60)
        assert r.status_code == 200 and len(r.json()["scores"]) == 1, r.text
    finally:
        code = server.stop(timeout_s=60)
    assert code == 0, log.read_text()[-3000:]
    with pytest.raises(httpx.TransportError):  # Serve's proxy went down with the cluster
        httpx.get(server.url + "/health", timeout=5)


# ---------------------------------------------------------------------- HTTP through the Serve proxy
def test_two_replicas_64_concurrent_clients_get_their_own_rows(served, scorer):
    work = plans(64, 10, seed=7)

    async def client(plan):
        async with httpx.AsyncClient(base_url=served.url, headers=AUTH, timeout=300) as c:
            out = []
            for hyps, refs in plan:
                r = await c.post("/v1/score", json={"hypotheses": hyps, "references": refs})
                assert r.status_code == 200, r.text
                out.append(r.json())
            return out

    async def main():
        return await asyncio.gather(*(client(p) for p in work))

    assert running_replicas() == 2
    got = [body for bodies in asyncio.run(main()) for body in bodies]
    sent = [pair for plan in work for pair in plan]
    assert len(got) == len(sent) == 640
    for body, rows in zip(got, scorer.score_many(sent), strict=True):
        assert_rows_close(body["scores"], rows, tol=TOL)
        assert body["rewards"] == [-s["radcliq"] for s in body["scores"]]


def test_routes_and_contracts_are_the_plain_servers(served, scorer):
    assert httpx.get(served.url + "/health").json() == {"status": "ok"}
    assert httpx.get(served.url + "/ready").json()["ready"] is True
    info = httpx.get(served.url + "/v1/info", headers=AUTH).json()
    assert info["server"]["limits"]["max_pairs_per_request"] == MAX_PAIRS
    assert KEY not in str(info)
    assert "rrg_reward_requests_total" in httpx.get(served.url + "/metrics", headers=AUTH).text
    labels, completions = pool()[:2], pool()[2:4]
    query = ["Findings: " + c + "</s>" for c in completions]
    r = httpx.post(
        served.url + "/v1/openrlhf",
        json={"query": query, "prompts": ["Findings:"] * 2, "labels": labels},
        headers=AUTH,
    )
    assert r.status_code == 200, r.text
    expected = scorer.score(completions, labels)
    assert r.json()["rewards"] == pytest.approx([-e["radcliq"] for e in expected], abs=TOL)


@pytest.mark.parametrize(
    ("path", "headers", "body", "status", "needle"),
    [c[1:] for c in BAD_INPUTS],
    ids=[c[0] for c in BAD_INPUTS],
)
def test_bad_input_answers_the_plain_servers_4xx(served, path, headers, body, status, needle):
    r = httpx.post(served.url + path, content=body, headers=headers, timeout=60)
    assert r.status_code == status, r.text
    assert needle in r.json()["detail"], r.json()
    assert httpx.post(served.url + "/v1/score", json=GOOD, headers=AUTH, timeout=60).status_code == 200


# ---------------------------------------------------------------------- the handle
def test_handle_rows_equal_http_rows_and_the_scorer(served, scorer):
    hyps, refs = pool()[10:30], pool()[30:50]
    http_rows = httpx.post(
        served.url + "/v1/score", json={"hypotheses": hyps, "references": refs}, headers=AUTH, timeout=60
    ).json()["scores"]

    async def via_handle():
        handle = get_scorer_handle()
        return await handle.score.remote(hyps, refs), await AsyncRayRewardClient().score(hyps, refs)

    handle_rows, client_rows = asyncio.run(via_handle())
    assert_rows_close(handle_rows, http_rows, tol=TOL)
    assert_rows_close(handle_rows, scorer.score(hyps, refs), tol=TOL)
    # finite rows: the client's None-for-NaN changes nothing (the two calls may reach different replicas,
    # whose feature caches and batches differ: equal to float32 rounding, not bit for bit)
    assert_rows_close(client_rows, handle_rows, tol=TOL)
    assert RayRewardClient().rewards(hyps[:3], refs[:3]) == pytest.approx(
        [-r["radcliq"] for r in handle_rows[:3]], abs=TOL
    )


def test_handle_rejects_bad_input_like_http(served):
    with pytest.raises(ApiError, match="same length, got hypotheses=2, references=1") as e:
        get_scorer_handle().score.remote(["a", "b"], ["c"]).result()  # the replica checks it
    assert e.value.status == 422
    with pytest.raises(ApiError, match=r"hypotheses\[1\]: Input should be a valid string") as e:
        get_scorer_handle().score.remote(["a", None], ["c", "d"]).result()
    assert e.value.status == 422
    with pytest.raises(RewardRequestError, match="max_text_chars") as e:
        asyncio.run(AsyncRayRewardClient().score(["a"], ["x" * (MAX_CHARS + 1)]))
    assert e.value.status == 413


def test_trl_adapter_uses_the_handle_when_configured(served, monkeypatch):
    monkeypatch.setenv("RRG_REWARD_RAY", "1")
    config = RewardConfig()
    assert config.reward_ray is True
    rewards = RadCliQRewards(config)
    assert isinstance(rewards.client, AsyncRayRewardClient)
    completions, refs = pool()[:4], pool()[4:8]
    got = asyncio.run(rewards.reward_func("radcliq")([""] * 4, completions, report=refs))
    assert rewards.client.random_weights is True, "the tiny kit behind the handle is labelled (info())"
    with RewardClient(served.url, api_key=KEY) as http:
        assert got == pytest.approx(http.rewards(completions, refs), abs=TOL)


def test_verl_and_openrlhf_files_use_the_handle_when_configured(served, scorer, monkeypatch):
    """The files other stacks load by path take the same switch (RRG_REWARD_RAY=1) as the TRL adapter."""
    import reward_server.integrations.openrlhf as openrlhf_file
    import reward_server.integrations.verl as verl_file
    from reward_server.integrations import scoring

    monkeypatch.setenv("RRG_REWARD_RAY", "1")
    monkeypatch.delenv("RRG_REWARD_URLS", raising=False)
    monkeypatch.setattr(scoring, "_shared", None)
    hyps, refs = pool()[:4], pool()[4:8]
    expected = [-row["radcliq"] for row in scorer.score(hyps, refs)]
    rows = verl_file.compute_score_batch(["iu_xray"] * 4, hyps, refs, [{}] * 4)
    assert scoring.shared().where == "the Ray Serve handle"
    assert [r["score"] for r in rows] == pytest.approx(expected, abs=TOL)
    one = asyncio.run(verl_file.compute_score_async("iu_xray", hyps[1], refs[1], extra_info={}, unused=1))
    assert one["score"] == pytest.approx(expected[1], abs=TOL)
    out = openrlhf_file.reward_func([f"Report:\n{h}<|im_end|>" for h in hyps], ["Report:"] * 4, refs)
    assert out["rewards"].tolist() == pytest.approx(expected, abs=TOL)


# ---------------------------------------------------------------------- a replica dies mid-load
def test_killed_replica_is_replaced_and_no_request_is_lost(served, scorer):
    before = replica_ids()
    assert len(before) == 2
    work = plans(32, 20, seed=11)
    results: list = [None] * len(work)
    errors: list[BaseException] = []
    started = threading.Event()

    def client(i, plan):
        try:
            # Half over HTTP through Serve's proxy, half over the handle: both must ride out the kill.
            if i % 2:
                c = RayRewardClient(retry_budget_s=120, max_error_retries=5)
            else:
                # A request Serve's proxy had routed to the killed replica can hang there: a per-request
                # timeout well under the budget makes the client retry it (docs/ray.md says to set one).
                c = RewardClient(served.url, api_key=KEY, timeout=20, retry_budget_s=120, max_error_retries=5)
            results[i] = []
            for hyps, refs in plan:
                results[i].append(c.score(hyps, refs))
                started.set()
            if isinstance(c, RewardClient):
                c.close()
        except BaseException as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=client, args=(i, p)) for i, p in enumerate(work)]
    for t in threads:
        t.start()
    assert started.wait(60)
    victim = sorted(before)[0]
    ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)
    done_at_kill = sum(len(r or []) for r in results)
    for t in threads:
        t.join(timeout=180)
    assert not errors, errors[:3]
    for plan, got in zip(work, results, strict=True):
        for (hyps, refs), rows in zip(plan, got, strict=True):
            assert_rows_close(rows, scorer.score(hyps, refs), tol=TOL)

    assert done_at_kill < sum(len(p) for p in work), "the load was over before the kill"

    def replaced() -> bool:  # Serve's status lags the death: wait for the new replica's name too
        ids = replica_ids()
        return victim not in ids and len(ids - before) == 1 and len(ids) == 2 and running_replicas() == 2

    deadline = time.monotonic() + 120
    while not replaced() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert replaced(), (replica_ids(), serve.status())
    # Several calls so that both replicas (the router picks among them) answer /ready.
    assert all(httpx.get(served.url + "/ready").status_code == 200 for _ in range(10))


# ---------------------------------------------------------------------- health check, config (no Ray needed)
def test_check_health_fails_when_the_scorer_is_broken(scorer):
    broken = {"on": False}
    faulty = FaultyScorer(
        scorer, lambda groups: RuntimeError("CUDA error: device lost") if broken["on"] else None
    )

    async def main():
        app = create_app(faulty, ServerSettings(max_wait_ms=0))
        state = app.state.rrg
        await state.batcher.start()
        health = ReplicaHealth(state, timeout_s=30)
        try:
            await health.check()
            broken["on"] = True
            with pytest.raises(RuntimeError, match="scorer is broken.*device lost"):
                await health.check()
            broken["on"] = False
            await health.check()
            await state.batcher.close()
            with pytest.raises(RuntimeError, match="batcher is not running"):
                await health.check()
        finally:
            await state.batcher.close()
        return health.checks

    assert asyncio.run(main()) == 3
    assert faulty.calls == [1, 1, 1]  # one canary pair per check that reached the scorer


def test_config_validation_and_app_builder_args(tiny_model_dir, monkeypatch):
    for bad, match in (
        ({"num_replicas": 0}, "num_replicas"),
        ({"min_replicas": 1}, "both min_replicas and max_replicas"),
        ({"min_replicas": 3, "max_replicas": 2}, "min_replicas <= max_replicas"),
        ({"num_gpus_per_replica": -1}, "num_gpus_per_replica"),
    ):
        with pytest.raises(ValueError, match=match):
            RayServeConfig(scorer={"model_dir": "x"}, **bad).validate()
    options = RayServeConfig(scorer={"model_dir": "x"}, min_replicas=1, max_replicas=4).deployment_options()
    assert options["autoscaling_config"]["max_replicas"] == 4 and "num_replicas" not in options
    with pytest.raises(ValueError, match="unknown rrg-reward Ray args"):
        app_builder({"model_dir": str(tiny_model_dir), "replicas": 2})
    monkeypatch.delenv("RRG_TEST_UNSET", raising=False)
    with pytest.raises(ValueError, match="RRG_TEST_UNSET: that environment variable is unset"):
        app_builder({"model_dir": str(tiny_model_dir), "api_key_env": "RRG_TEST_UNSET"})
    with pytest.raises(ValueError, match="unknown rrg-reward Ray args .'api_key'"):
        app_builder({"model_dir": str(tiny_model_dir), "api_key": "never in a manifest"})
    app = app_builder({"model_dir": str(tiny_model_dir), "num_replicas": 3, "num_gpus_per_replica": 0.5})
    assert app._bound_deployment.num_replicas == 3
    assert app._bound_deployment.ray_actor_options["num_gpus"] == 0.5
    # `serve run reward_server.ray:app_builder key=value ...` passes strings.
    app = app_builder(
        {"model_dir": str(tiny_model_dir), "num_replicas": "2", "idf": "true", "max_wait_ms": "2.5"}
    )
    assert app._bound_deployment.num_replicas == 2
    with pytest.raises(ValueError, match="num_replicas='two': expected int"):
        app_builder({"model_dir": str(tiny_model_dir), "num_replicas": "two"})


def test_ray_flags_need_ray(tiny_model_dir):
    from reward_server.cli import main

    with pytest.raises(SystemExit, match="--num-replicas only apply with --ray"):
        main(["serve", "--model-dir", str(tiny_model_dir), "--num-replicas", "2"])
    with pytest.raises(SystemExit, match="min_replicas <= max_replicas"):
        main(
            [
                "serve",
                "--ray",
                "--model-dir",
                str(tiny_model_dir),
                "--min-replicas",
                "3",
                "--max-replicas",
                "1",
            ]
        )


def test_reward_client_picks_the_handle_by_environment(monkeypatch):
    from reward_server.client import AsyncRewardClient
    from reward_server.ray import reward_client

    monkeypatch.delenv("RRG_REWARD_RAY", raising=False)
    http = reward_client(["http://127.0.0.1:1"], api_key="k", retry_budget_s=5)
    assert isinstance(http, AsyncRewardClient) and http.retry_budget_s == 5
    with pytest.raises(ValueError, match="RRG_REWARD_RAY=1"):
        reward_client(None)
    monkeypatch.setenv("RRG_REWARD_RAY", "1")
    handle = reward_client(["http://127.0.0.1:1"], api_key="k", retry_budget_s=5)
    assert isinstance(handle, AsyncRayRewardClient) and handle._retry == {"retry_budget_s": 5}
    assert isinstance(reward_client(None, sync=True), RayRewardClient)
    monkeypatch.setenv("RRG_REWARD_RAY", "0")
    with reward_client("http://127.0.0.1:1", sync=True) as blocking:
        assert isinstance(blocking, RewardClient)


def test_training_stages_wait_for_the_deployment_and_use_its_handle(served):
    from transformers import HfArgumentParser

    from reward_server.client import RewardServerUnavailable
    from rrg_trl.configs import RewardArguments
    from rrg_trl.reward_setup import prepare_rewards

    (args,) = HfArgumentParser(RewardArguments).parse_args_into_dataclasses(
        ["--reward_ray", "true", "--reward_wait_timeout_s", "120"]
    )
    assert args.reward_ray is True
    rewards = prepare_rewards(args)  # waits for a canary pair through the handle, not for an HTTP URL
    assert isinstance(rewards.client, AsyncRayRewardClient)
    with pytest.raises(RewardServerUnavailable, match="'no-such-app' not ready after 2s"):
        RayRewardClient("no-such-app").wait_until_ready(timeout=2, interval=0.5)
