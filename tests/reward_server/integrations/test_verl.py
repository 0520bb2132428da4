"""verl 0.9.1 calling the RadCliQ reward through its own loading code and reward managers.

The reward file is loaded by ``verl.trainer.ppo.reward.get_custom_reward_fn`` from the path the README prints
(``reward_kwargs`` merged in, so ``**kwargs`` is exercised), and run by the legacy managers
``verl.workers.reward_manager.NaiveRewardManager`` (per sample, synchronous: verl <= 0.6's default and the
``use_reward_loop=False`` path) and ``BatchRewardManager`` (one call per batch), and by the reward loop's
``RewardLoopWorker`` (verl >= 0.7's default; 0.9's only trainer path), on a ``DataProto`` built with verl's
classes from tiny-policy token ids. All of these import and run on a CPU; only Ray, which hosts the reward
loop worker as an actor in training, is not started here (the worker class is driven directly).
Every reward must equal the in-process RadCliQScorer on the decoded response.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from reward_server.integrations import scoring
from tests.reward_server.live import LiveServer, pool, tiny_scorer

pytest.importorskip("verl.trainer.ppo.reward", reason="verl is not installed (make install-dev)")
from verl.trainer.ppo.reward import get_custom_reward_fn  # noqa: E402

from tests.reward_server.integrations.verl_data import custom_reward_config, make_batch  # noqa: E402

KEYS = ("score", "radcliq", "radgraph", "bertscore", "semb", "bleu2")
N = 4


@pytest.fixture(scope="module")
def scorer(tiny_model_dir):
    return tiny_scorer(str(tiny_model_dir))


@pytest.fixture(scope="module")
def live(scorer):
    with LiveServer(scorer, api_key="verl-key") as server:
        yield server


@pytest.fixture(params=["server", "in-process"])
def backend(request, monkeypatch, live, tiny_model_dir):
    if request.param == "server":
        monkeypatch.setenv("RRG_REWARD_URLS", live.url)
        monkeypatch.setenv("RRG_REWARD_API_KEY", "verl-key")
    else:
        monkeypatch.setenv("RRG_REWARD_MODEL_DIR", str(tiny_model_dir))
        monkeypatch.setenv("RRG_REWARD_DEVICE", "cpu")
    monkeypatch.setattr(scoring, "_shared", None)
    return request.param


@pytest.fixture(scope="module")
def verl_file() -> str:
    """The path exactly as the README tells users to find it."""
    code = "import reward_server.integrations.verl as m; print(m.__file__)"
    return subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture(scope="module")
def tokenizer(tiny_policy):
    from rrg_trl.modeling.loading import load_processor

    return load_processor(tiny_policy("qwen2_5_vl")).tokenizer


def load(verl_file: str, name: str):
    return get_custom_reward_fn(custom_reward_config(verl_file, name, reward_scale=1.0))


def expected_rows(scorer, tokenizer, reports, refs) -> list[dict]:
    decoded = [tokenizer.decode(tokenizer(r)["input_ids"], skip_special_tokens=True) for r in reports]
    return [scorer.score([h], [g])[0] for h, g in zip(decoded, refs, strict=True)]


def check(reward_tensor, extra, data, expected) -> None:
    lengths = data.batch["attention_mask"][:, data.batch["prompts"].shape[-1] :].sum(-1)
    for i, row in enumerate(expected):
        assert reward_tensor[i, lengths[i] - 1].item() == pytest.approx(-row["radcliq"], abs=1e-5)
        assert reward_tensor[i].abs().sum().item() == pytest.approx(abs(row["radcliq"]), abs=1e-5)
        for k in KEYS[1:]:
            assert extra[k][i] == pytest.approx(row[k], abs=1e-5), (i, k)
        assert extra["score"][i] == pytest.approx(-row["radcliq"], abs=1e-5)


def test_naive_reward_manager(backend, verl_file, tokenizer, scorer):
    from verl.workers.reward_manager import NaiveRewardManager

    reports, refs = pool()[:N], pool()[N : 2 * N]
    data = make_batch(tokenizer, reports, refs)
    manager = NaiveRewardManager(tokenizer, num_examine=0, compute_score=load(verl_file, "compute_score"))
    out = manager(data, return_dict=True)
    check(
        out["reward_tensor"], out["reward_extra_info"], data, expected_rows(scorer, tokenizer, reports, refs)
    )


def test_batch_reward_manager(backend, verl_file, tokenizer, scorer):
    from verl.workers.reward_manager import BatchRewardManager

    reports, refs = pool()[8 : 8 + N], pool()[16 : 16 + N]
    data = make_batch(tokenizer, reports, refs)
    manager = BatchRewardManager(
        tokenizer, num_examine=0, compute_score=load(verl_file, "compute_score_batch")
    )
    out = manager(data, return_dict=True)
    check(
        out["reward_tensor"], out["reward_extra_info"], data, expected_rows(scorer, tokenizer, reports, refs)
    )


@pytest.mark.parametrize("name", ["compute_score", "compute_score_async"])
def test_reward_loop_worker(name, backend, verl_file, tokenizer, tiny_policy, scorer):
    """verl >= 0.7's reward loop as the trainer runs it (``RewardLoopWorker``, a Ray actor there; here the
    class itself): ``load_reward_manager`` builds its naive manager from the config, then every sample's
    ``run_single`` runs concurrently (the sync function in the loop's executor, the coroutine awaited)."""
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker

    reports, refs = pool()[24 : 24 + N], pool()[32 : 32 + N]
    data = make_batch(tokenizer, reports, refs)
    config = custom_reward_config(verl_file, name, str(tiny_policy("qwen2_5_vl")), reward_scale=1.0)

    async def run():
        worker = RewardLoopWorker(config)
        assert asyncio.iscoroutinefunction(worker.reward_manager.compute_score) == name.endswith("_async")
        return await worker.compute_score_batch(data)

    results = asyncio.run(run())
    expected = expected_rows(scorer, tokenizer, reports, refs)
    for res, row in zip(results, expected, strict=True):
        assert res["reward_score"] == pytest.approx(-row["radcliq"], abs=1e-5)
        assert set(res["reward_extra_info"]) == set(KEYS)
        for k in KEYS[1:]:
            assert res["reward_extra_info"][k] == pytest.approx(row[k], abs=1e-5), k


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda m: m.compute_score("d", None, "ref"), "solution_str[0] must be a string"),
        (lambda m: m.compute_score("d", "hyp", 3), "ground_truth[0] must be a string"),
        (lambda m: m.compute_score_batch(["d"] * 2, ["a", b"b"], ["r", "r"], [{}, {}]), "solution_strs[1]"),
        (
            lambda m: m.compute_score_batch(["d"] * 2, ["a", "b"], ["r"], [{}, {}]),
            "ground_truths has 1 items",
        ),
    ],
)
def test_bad_input_names_the_index(call, needle, live, monkeypatch):
    import reward_server.integrations.verl as module

    monkeypatch.setenv("RRG_REWARD_URLS", live.url)
    monkeypatch.setattr(scoring, "_shared", None)
    with pytest.raises(ValueError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        call(module)
