"""The reward service over real HTTP (uvicorn on 127.0.0.1) with the real tiny-kit scorer."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import threading

import httpx
import pytest
import torch

from reward_server.radcliq.model_files import RANDOM_WEIGHTS_NOTICE
from reward_server.service.app import ServerSettings, check_bind, is_loopback
from tests.reward_server.live import (
    FaultyScorer,
    GatedScorer,
    LiveServer,
    assert_rows_close,
    grpo_batch,
    pool,
    tiny_scorer,
)

KEY = "test-key-1234"
AUTH = {"Authorization": f"Bearer {KEY}"}
JSON = {"Content-Type": "application/json", **AUTH}
MAX_PAIRS, MAX_CHARS, MAX_BODY = 64, 2000, 1_000_000


@pytest.fixture(scope="module")
def scorer(tiny_model_dir):
    return tiny_scorer(str(tiny_model_dir))


@pytest.fixture(scope="module")
def live(scorer):
    settings = ServerSettings(
        port=0,
        api_key=KEY,
        max_pairs_per_request=MAX_PAIRS,
        max_text_chars=MAX_CHARS,
        max_body_bytes=MAX_BODY,
        max_batch_pairs=64,
        max_wait_ms=5,
        openrlhf_strip=("</s>",),
    )
    with LiveServer(scorer, settings) as server:
        yield server


def post(live, path, payload, headers=JSON):
    return httpx.post(live.url + path, json=payload, headers=headers, timeout=60)


# ---------------------------------------------------------------------- happy paths
def test_score_matches_in_process_scoring(live, scorer):
    hyps, refs = grpo_batch(2, group=8, seed=5)
    r = post(live, "/v1/score", {"hypotheses": hyps, "references": refs})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"scores", "rewards"}
    expected = scorer.score(hyps, refs)
    assert_rows_close(body["scores"], expected)
    assert body["rewards"] == [-s["radcliq"] for s in body["scores"]]
    assert set(body["scores"][0]) == {"radcliq", "radgraph", "bertscore", "semb", "bleu2"}


def test_empty_request_is_an_empty_answer(live):
    r = post(live, "/v1/score", {"hypotheses": [], "references": []})
    assert r.status_code == 200 and r.json() == {"scores": [], "rewards": []}


def test_64_concurrent_clients_get_their_own_results_in_order(live, scorer):
    rng = random.Random(42)
    texts = pool()
    plans = [
        [
            ([rng.choice(texts) for _ in range(n)], [rng.choice(texts) for _ in range(n)])
            for n in (rng.choice([1, 2, 3, 5, 8, 13, 24]) for _ in range(3))
        ]
        for _ in range(64)
    ]

    async def client(plan):
        out = []
        async with httpx.AsyncClient(base_url=live.url, headers=AUTH, timeout=300) as c:
            for hyps, refs in plan:
                r = await c.post("/v1/score", json={"hypotheses": hyps, "references": refs})
                assert r.status_code == 200, r.text
                out.append(r.json())
        return out

    async def main():
        return await asyncio.gather(*(client(p) for p in plans))

    before = live.state.batcher.stats.batches
    results = asyncio.run(main())
    batches = live.state.batcher.stats.batches - before
    sent = [pair for plan in plans for pair in plan]
    got = [body for bodies in results for body in bodies]
    expected = scorer.score_many(sent)  # in-process, all requests in one call
    assert len(got) == len(sent) == 192
    for body, rows in zip(got, expected, strict=True):
        assert_rows_close(body["scores"], rows)
    assert batches < len(sent), f"{batches} batches for {len(sent)} requests: no coalescing"


def test_openrlhf_protocol(live, scorer):
    labels, completions = pool()[:3], pool()[3:6]
    prompts = ["<s>[INST] Findings? [/INST]", "Report:", ""]
    query = [p + " " + c + "</s>" for p, c in zip(prompts, completions, strict=True)]
    r = post(live, "/v1/openrlhf", {"query": query, "prompts": prompts, "labels": labels})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"rewards", "scores", "extra_logs"}
    expected = scorer.score(completions, labels)
    assert body["rewards"] == pytest.approx([-e["radcliq"] for e in expected], abs=1e-4)
    assert body["scores"] == body["rewards"]
    assert set(body["extra_logs"]) == {"radcliq", "radgraph", "bertscore", "semb", "bleu2"}
    logs = body["extra_logs"]
    assert_rows_close([{k: logs[k][i] for k in expected[0]} for i in range(len(expected))], expected)


def test_health_ready_info_metrics(live, scorer):
    assert httpx.get(live.url + "/health").json() == {"status": "ok"}
    ready = httpx.get(live.url + "/ready")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    info = httpx.get(live.url + "/v1/info", headers=AUTH).json()
    assert info["server"]["limits"]["max_pairs_per_request"] == MAX_PAIRS
    assert info["server"]["auth"] is True and "api_key" not in info["server"]
    assert KEY not in json.dumps(info)
    stripped = info["server"]["openrlhf"]["strip"]
    assert {"</s>", "<|im_end|>", "<|endoftext|>", "<eos>", "<end_of_turn>", "<pad>"} <= set(stripped)
    assert "<|image_pad|>" in info["server"]["openrlhf"]["image_placeholders"]
    assert info["scorer"]["radcliq_version"] == scorer.info()["radcliq_version"]
    post(live, "/v1/score", {"hypotheses": ["a"]})  # one validation error, counted below
    text = httpx.get(live.url + "/metrics", headers=AUTH).text
    for name in (
        "rrg_reward_requests_total",
        "rrg_reward_pairs_total",
        "rrg_reward_batch_pairs_bucket",
        "rrg_reward_queue_pairs",
        "rrg_reward_request_latency_seconds_bucket",
        "rrg_reward_queue_wait_seconds_bucket",
        'rrg_reward_errors_total{kind="validation"}',
    ):
        assert name in text, name
    assert httpx.get(live.url + "/metrics").status_code == 401
    assert httpx.get(live.url + "/v1/info").status_code == 401


def test_scoring_routes_are_counted_and_timed_by_final_status(scorer):
    with LiveServer(scorer, api_key=KEY) as server:
        good = {"hypotheses": ["No acute disease."], "references": ["The lungs are clear."]}
        assert httpx.post(server.url + "/v1/score", json=good).status_code == 401  # the auth dependency
        assert httpx.post(server.url + "/v1/score", json=good, headers=AUTH).status_code == 200
        assert httpx.post(server.url + "/v1/openrlhf", json=good, headers=AUTH).status_code == 422
        assert httpx.get(server.url + "/health").status_code == 200
        text = httpx.get(server.url + "/metrics", headers=AUTH).text
    samples = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    expected = {
        'rrg_reward_requests_total{route="/v1/score",status="401"}': "1.0",
        'rrg_reward_requests_total{route="/v1/score",status="200"}': "1.0",
        'rrg_reward_requests_total{route="/v1/openrlhf",status="422"}': "1.0",
        'rrg_reward_request_latency_seconds_count{route="/v1/score"}': "2.0",
        'rrg_reward_pairs_total{route="/v1/score"}': "1.0",
        'rrg_reward_errors_total{kind="auth"}': "1.0",
    }
    assert {k: samples.get(k) for k in expected} == expected
    assert 'route="/health"' not in text and 'route="/metrics"' not in text


@pytest.mark.parametrize("random_kit", [True, False], ids=["make-tiny", "official-layout"])
def test_info_and_startup_log_say_whether_the_scorer_models_are_random(
    tiny_model_dir, official_layout_dir, random_kit, caplog
):
    scorer = tiny_scorer(str(tiny_model_dir if random_kit else official_layout_dir))
    with caplog.at_level(logging.INFO, logger="reward_server.service.app"), LiveServer(scorer) as server:
        info = httpx.get(server.url + "/v1/info").json()["scorer"]
    [ready] = [r for r in caplog.records if r.getMessage().startswith("reward server ready")]
    assert info["random_weights"] is random_kit
    if random_kit:
        assert info["random_weights_notice"] == RANDOM_WEIGHTS_NOTICE
        assert ready.levelno == logging.WARNING and RANDOM_WEIGHTS_NOTICE in ready.getMessage()
    else:
        assert "random_weights_notice" not in info
        assert ready.levelno == logging.INFO and "RANDOM" not in ready.getMessage()


# ---------------------------------------------------------------------- bad input
GOOD = {"hypotheses": ["No acute disease."], "references": ["The lungs are clear."]}


def _body(obj) -> bytes:
    return json.dumps(obj).encode()


BAD_INPUTS = [
    # (id, path, headers, raw body, status, text that the detail must contain)
    ("malformed-json", "/v1/score", JSON, b'{"hypotheses": [', 400, "malformed JSON"),
    ("trailing-garbage", "/v1/score", JSON, _body(GOOD) + b" xyz", 400, "Extra data"),
    ("empty-body", "/v1/score", JSON, b"", 400, "empty"),
    ("non-utf8-bytes", "/v1/score", JSON, b'{"hypotheses": ["\xff\xfe"], "references": ["a"]}', 400, "UTF-8"),
    ("utf16-body", "/v1/score", JSON, json.dumps(GOOD).encode("utf-16"), 400, "UTF-8"),
    ("utf8-bom", "/v1/score", JSON, b"\xef\xbb\xbf" + _body(GOOD), 400, "malformed JSON"),
    ("deeply-nested", "/v1/score", JSON, b"[" * 200_000 + b"]" * 200_000, 400, "nested too deeply"),
    ("text-plain", "/v1/score", {**AUTH, "Content-Type": "text/plain"}, _body(GOOD), 415, "application/json"),
    ("no-content-type", "/v1/score", AUTH, _body(GOOD), 415, "Content-Type"),
    (
        "form-encoded",
        "/v1/score",
        {**AUTH, "Content-Type": "application/x-www-form-urlencoded"},
        b"hypotheses=a&references=b",
        415,
        "application/json",
    ),
    (
        "latin1-charset",
        "/v1/score",
        {**AUTH, "Content-Type": "application/json; charset=latin-1"},
        _body(GOOD),
        415,
        "UTF-8",
    ),
    ("top-level-array", "/v1/score", JSON, _body([GOOD]), 422, "valid dictionary"),
    ("top-level-string", "/v1/score", JSON, _body("hello"), 422, "valid dictionary"),
    ("top-level-null", "/v1/score", JSON, b"null", 422, "valid dictionary"),
    (
        "missing-hypotheses",
        "/v1/score",
        JSON,
        _body({"references": ["a"]}),
        422,
        "hypotheses: Field required",
    ),
    (
        "missing-references",
        "/v1/score",
        JSON,
        _body({"hypotheses": ["a"]}),
        422,
        "references: Field required",
    ),
    (
        "extra-field",
        "/v1/score",
        JSON,
        _body({**GOOD, "ids": [1]}),
        422,
        "ids: Extra inputs are not permitted",
    ),
    (
        "hypotheses-is-string",
        "/v1/score",
        JSON,
        _body({"hypotheses": "a", "references": ["b"]}),
        422,
        "hypotheses: Input should be a valid list",
    ),
    (
        "null-hypothesis",
        "/v1/score",
        JSON,
        _body({"hypotheses": ["a", None], "references": ["b", "c"]}),
        422,
        "hypotheses[1]: Input should be a valid string (got NoneType)",
    ),
    (
        "null-references",
        "/v1/score",
        JSON,
        _body({"hypotheses": ["a"], "references": None}),
        422,
        "references: Input should be a valid list",
    ),
    (
        "int-reference",
        "/v1/score",
        JSON,
        _body({"hypotheses": ["a"], "references": [3]}),
        422,
        "references[0]: Input should be a valid string (got int)",
    ),
    ("float-nan", "/v1/score", JSON, b'{"hypotheses": [NaN], "references": ["a"]}', 422, "hypotheses[0]"),
    (
        "bool-text",
        "/v1/score",
        JSON,
        _body({"hypotheses": [True], "references": ["a"]}),
        422,
        "hypotheses[0]",
    ),
    (
        "nested-list-text",
        "/v1/score",
        JSON,
        _body({"hypotheses": [["a"]], "references": ["a"]}),
        422,
        "hypotheses[0]",
    ),
    (
        "object-text",
        "/v1/score",
        JSON,
        _body({"hypotheses": [{"text": "a"}], "references": ["a"]}),
        422,
        "hypotheses[0]",
    ),
    (
        "mismatched-lengths",
        "/v1/score",
        JSON,
        _body({"hypotheses": ["a", "b"], "references": ["a"]}),
        422,
        "same length, got hypotheses=2, references=1",
    ),
    (
        "too-many-pairs",
        "/v1/score",
        JSON,
        _body({"hypotheses": ["a"] * 65, "references": ["b"] * 65}),
        413,
        f"max_pairs_per_request={MAX_PAIRS}",
    ),
    (
        "huge-text",
        "/v1/score",
        JSON,
        _body({"hypotheses": ["a"], "references": ["x" * (MAX_CHARS + 1)]}),
        413,
        f"references[0] has {MAX_CHARS + 1} characters, above max_text_chars={MAX_CHARS}",
    ),
    (
        "body-too-large",
        "/v1/score",
        JSON,
        _body({"hypotheses": ["a" * MAX_BODY], "references": ["b"]}),
        413,
        f"max_body_bytes={MAX_BODY}",
    ),
    (
        "lone-surrogate",
        "/v1/score",
        JSON,
        b'{"hypotheses": ["ok \\ud800"], "references": ["a"]}',
        422,
        "hypotheses[0] contains an unpaired surrogate",
    ),
    (
        "auth-missing",
        "/v1/score",
        {"Content-Type": "application/json"},
        _body(GOOD),
        401,
        "missing bearer token",
    ),
    (
        "auth-wrong-key",
        "/v1/score",
        {"Content-Type": "application/json", "Authorization": "Bearer nope"},
        _body(GOOD),
        401,
        "invalid API key",
    ),
    (
        "auth-wrong-scheme",
        "/v1/score",
        {"Content-Type": "application/json", "Authorization": f"Basic {KEY}"},
        _body(GOOD),
        401,
        "missing bearer token",
    ),
    ("unknown-route", "/v1/scores", JSON, _body(GOOD), 404, "Not Found"),
    (
        "openrlhf-prompt-not-prefix",
        "/v1/openrlhf",
        JSON,
        _body({"query": ["Q: x A: y"], "prompts": ["Q: z"], "labels": ["y"]}),
        422,
        "query[0] does not contain prompts[0]",
    ),
    (
        "openrlhf-vlm-prompt-lost",
        "/v1/openrlhf",
        JSON,
        _body(
            {
                "query": ["<|im_start|>user\n<|image_pad|><|image_pad|>Hi<|im_end|>\na", "Q: b"],
                "prompts": ["<|im_start|>user\n<|image_pad|>Hi<|im_end|>\n", "Q: z"],
                "labels": ["a", "b"],
            }
        ),
        422,
        "query[1] does not contain prompts[1]",
    ),
    (
        "openrlhf-prompt-ends-in-image",
        "/v1/openrlhf",
        JSON,
        _body({"query": ["USER: <image><image>a"], "prompts": ["USER: <image>"], "labels": ["a"]}),
        422,
        "query[0] does not contain prompts[0]",
    ),
    (
        "openrlhf-non-text-label",
        "/v1/openrlhf",
        JSON,
        _body({"query": ["Q: a"], "prompts": ["Q:"], "labels": [3]}),
        422,
        "labels[0]",
    ),
    (
        "openrlhf-missing-labels",
        "/v1/openrlhf",
        JSON,
        _body({"query": ["a"], "prompts": ["a"]}),
        422,
        "labels: Field required",
    ),
    (
        "openrlhf-mismatched",
        "/v1/openrlhf",
        JSON,
        _body({"query": ["ab", "cd"], "prompts": ["a"], "labels": ["b", "d"]}),
        422,
        "same length",
    ),
    ("openrlhf-score-fields", "/v1/openrlhf", JSON, _body(GOOD), 422, "query: Field required"),
]


@pytest.mark.parametrize(
    ("path", "headers", "body", "status", "needle"),
    [c[1:] for c in BAD_INPUTS],
    ids=[c[0] for c in BAD_INPUTS],
)
def test_bad_input_is_a_clear_4xx_and_the_server_keeps_serving(live, path, headers, body, status, needle):
    r = httpx.post(live.url + path, content=body, headers=headers, timeout=60)
    assert r.status_code == status, r.text
    assert needle in r.json()["detail"], r.json()
    good = httpx.post(live.url + "/v1/score", json=GOOD, headers=AUTH, timeout=60)
    assert good.status_code == 200 and len(good.json()["scores"]) == 1


def test_at_least_30_kinds_of_bad_input():
    assert len({c[0] for c in BAD_INPUTS}) >= 30


def test_wrong_method(live):
    r = httpx.get(live.url + "/v1/score", headers=AUTH)
    assert r.status_code == 405


# ---------------------------------------------------------------------- faults, overload, shutdown
def test_scorer_failure_fails_only_that_batch(scorer):
    faulty = FaultyScorer(
        scorer,
        lambda groups: (
            RuntimeError("injected failure")
            if any("POISON" in h for hyps, _ in groups for h in hyps)
            else None
        ),
    )
    hyps, refs = grpo_batch(1, group=4)
    with LiveServer(faulty, max_wait_ms=0) as server:
        bad = httpx.post(server.url + "/v1/score", json={"hypotheses": ["POISON"], "references": ["x"]})
        assert bad.status_code == 500
        assert "RuntimeError: injected failure" in bad.json()["detail"]
        good = httpx.post(server.url + "/v1/score", json={"hypotheses": hyps, "references": refs})
        assert good.status_code == 200
        assert_rows_close(good.json()["scores"], scorer.score(hyps, refs))
        assert 'rrg_reward_errors_total{kind="scorer"} 1.0' in httpx.get(server.url + "/metrics").text


def test_oom_is_retried_in_halves_over_http(scorer):
    faulty = FaultyScorer(
        scorer,
        lambda groups: (
            torch.cuda.OutOfMemoryError("CUDA out of memory") if sum(len(h) for h, _ in groups) > 4 else None
        ),
    )
    hyps, refs = grpo_batch(2, group=8)
    with LiveServer(faulty, max_wait_ms=0) as server:
        r = httpx.post(server.url + "/v1/score", json={"hypotheses": hyps, "references": refs})
        assert r.status_code == 200
        assert_rows_close(r.json()["scores"], scorer.score(hyps, refs))
        assert "rrg_reward_oom_splits_total 3.0" in httpx.get(server.url + "/metrics").text  # 16 -> 8 -> 4


def test_full_queue_answers_503_with_retry_after(scorer):
    gated = GatedScorer(scorer)
    hyps, refs = grpo_batch(1, group=8)
    payload = {"hypotheses": hyps, "references": refs}
    with LiveServer(
        gated, max_batch_pairs=8, max_pairs_per_request=8, max_queue_pairs=8, retry_after_s=3, max_wait_ms=0
    ) as server:
        results = {}

        def send(name):
            results[name] = httpx.post(server.url + "/v1/score", json=payload, timeout=60)

        first = threading.Thread(target=send, args=("first",))
        first.start()
        assert gated.entered.wait(10)
        second = threading.Thread(target=send, args=("second",))
        second.start()
        while server.state.batcher.queued_pairs < 8:
            threading.Event().wait(0.01)
        full = httpx.post(server.url + "/v1/score", json=payload)
        assert full.status_code == 503 and full.headers["retry-after"] == "3"
        assert "max_queue_pairs=8" in full.json()["detail"]
        gated.gate.set()
        first.join()
        second.join()
        assert results["first"].status_code == results["second"].status_code == 200


def test_graceful_shutdown_finishes_queued_work(scorer):
    gated = GatedScorer(scorer)
    batches = [grpo_batch(1, group=4, seed=s) for s in range(3)]
    server = LiveServer(gated, max_batch_pairs=4, max_wait_ms=0).start()
    results = [None] * 3

    def send(i):
        h, r = batches[i]
        results[i] = httpx.post(server.url + "/v1/score", json={"hypotheses": h, "references": r}, timeout=60)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    assert gated.entered.wait(10)
    while server.state.batcher.queued_pairs < 8:  # one batch in the scorer, two queued
        threading.Event().wait(0.01)
    server.server.should_exit = True  # what SIGTERM does
    threading.Event().wait(0.2)
    with pytest.raises(httpx.TransportError):  # no longer accepting connections
        httpx.get(server.url + "/health", timeout=2)
    gated.gate.set()
    for t in threads:
        t.join(30)
    server.thread.join(30)
    assert not server.thread.is_alive()
    for (h, r), res in zip(batches, results, strict=True):
        assert res.status_code == 200
        assert_rows_close(res.json()["scores"], scorer.score(h, r))


# ---------------------------------------------------------------------- bind safety
@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("127.0.0.2", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.1.2.3", False),
        ("example.org", False),
    ],
)
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_non_loopback_bind_requires_api_key():
    with pytest.raises(ValueError, match="requires an API key"):
        check_bind(ServerSettings(host="0.0.0.0"))
    check_bind(ServerSettings(host="0.0.0.0", api_key="k"))
    check_bind(ServerSettings(host="127.0.0.1"))


def test_settings_are_checked():
    with pytest.raises(ValueError, match="max_queue_pairs"):
        ServerSettings(max_pairs_per_request=100, max_queue_pairs=10).validate()
    with pytest.raises(ValueError, match="max_text_chars"):
        ServerSettings(max_text_chars=0).validate()
