"""The TRL reward adapter against a live reward server (and in-process), including a real GRPOTrainer step."""

from __future__ import annotations

import asyncio
import importlib
import logging
import math

import pytest

from reward_server.client import AsyncRewardClient, RewardRequestError, RewardServerUnavailable
from reward_server.radcliq.model_files import RANDOM_WEIGHTS_NOTICE
from rrg_trl import rewards as rw
from rrg_trl.rewards import COMPONENTS, RadCliQRewards, RewardComputationError, RewardConfig, get_reward_funcs
from tests.reward_server.live import (
    FaultyScorer,
    LiveServer,
    free_port,
    grpo_batch,
    pool,
    reports,
    tiny_scorer,
)


@pytest.fixture(scope="module")
def scorer(tiny_model_dir):
    return tiny_scorer(str(tiny_model_dir))


@pytest.fixture(scope="module")
def live(scorer):
    with LiveServer(scorer, max_wait_ms=2) as server:
        yield server


def call_all(funcs, completions, **columns):
    async def main():
        return await asyncio.gather(
            *(f(prompts=["p"] * len(completions), completions=completions, **columns) for f in funcs)
        )

    return asyncio.run(main())


def test_all_components_from_one_request(live, scorer):
    hyps, refs = grpo_batch(2, group=4, seed=3)
    rewards = RadCliQRewards(RewardConfig(reward_urls=[live.url]))
    funcs = [rewards.reward_func(name) for name in COMPONENTS]
    assert [f.__name__ for f in funcs] == list(COMPONENTS)
    chunks_before = live.state.batcher.stats.chunks
    out = dict(zip(COMPONENTS, call_all(funcs, hyps, report=refs), strict=True))
    assert rewards.requests == 1 and live.state.batcher.stats.chunks - chunks_before == 1
    expected = scorer.score(hyps, refs)
    assert out["radcliq"] == pytest.approx([-e["radcliq"] for e in expected], abs=1e-4)
    for name in COMPONENTS[1:]:
        assert out[name] == pytest.approx([e[name] for e in expected], abs=1e-4)


def test_conversational_completions_and_reference_column(live, scorer):
    hyps, refs = grpo_batch(1, group=4, seed=8)
    convo = [[{"role": "assistant", "content": h}] for h in hyps]
    convo[1] = [{"role": "assistant", "content": [{"type": "text", "text": hyps[1]}]}]
    [radcliq] = get_reward_funcs(["radcliq"], urls=[live.url], reference_column="findings")
    [got] = call_all([radcliq], convo, findings=refs, report=["ignored"] * 4)
    assert got == pytest.approx([-e["radcliq"] for e in scorer.score(hyps, refs)], abs=1e-4)


def test_missing_reference_column_is_a_clear_error(live):
    [radcliq] = get_reward_funcs(["radcliq"], urls=[live.url])
    with pytest.raises(KeyError, match="reference report column 'report'.*'findings'"):
        call_all([radcliq], ["a"], findings=["b"])
    with pytest.raises(ValueError, match=r"report\[0\] must be a string"):
        call_all([radcliq], ["a"], report=[None])


def test_registry_and_dotted_path(live, scorer, monkeypatch):
    monkeypatch.setenv("RRG_REWARD_URLS", live.url)
    rw._default.cache_clear()
    try:
        module = importlib.import_module("rrg_trl.rewards")
        assert module.radcliq is rw.REWARD_FUNCS["radcliq"]
        assert get_reward_funcs(["radcliq", "bleu2"]) == [rw.radcliq, rw.bleu2]
        assert get_reward_funcs("radcliq,semb") == [rw.radcliq, rw.semb]
        hyps, refs = grpo_batch(1, group=4, seed=4)
        got, bleu = call_all([module.radcliq, module.bleu2], hyps, report=refs)
        expected = scorer.score(hyps, refs)
        assert got == pytest.approx([-e["radcliq"] for e in expected], abs=1e-4)
        assert bleu == pytest.approx([e["bleu2"] for e in expected], abs=1e-4)
        assert rw._default().config.reward_urls == [live.url]
    finally:
        rw._default.cache_clear()
    with pytest.raises(ValueError, match="unknown reward function"):
        get_reward_funcs(["rouge"])


def test_config_from_env(monkeypatch):
    monkeypatch.setenv("RRG_REWARD_URLS", "http://a:1, http://b:2")
    monkeypatch.setenv("RRG_REWARD_API_KEY", "k")
    monkeypatch.setenv("RRG_REWARD_RETRY_BUDGET_S", "7.5")
    monkeypatch.setenv("RRG_REWARD_REFERENCE_COLUMN", "findings")
    cfg = RewardConfig.from_env(timeout_s=3)
    assert cfg.reward_urls == ["http://a:1", "http://b:2"] and cfg.api_key == "k"
    assert cfg.reward_retry_budget_s == 7.5 and cfg.reward_timeout_s == 3
    assert cfg.reward_reference_column == "findings"
    with pytest.raises(TypeError, match="unknown reward settings"):
        RewardConfig.from_env(url="x")


def test_in_process_variant_matches_remote(live, scorer):
    hyps, refs = grpo_batch(2, group=4, seed=5)
    local = get_reward_funcs(list(COMPONENTS), scorer=scorer)
    remote = get_reward_funcs(list(COMPONENTS), urls=[live.url])
    for a, b in zip(call_all(local, hyps, report=refs), call_all(remote, hyps, report=refs), strict=True):
        assert a == pytest.approx(b, abs=1e-4)


def test_transient_failure_gives_none_and_is_logged(scorer, caplog):
    faulty = FaultyScorer(
        scorer,
        lambda groups: (
            RuntimeError("injected") if any("POISON" in h for hyps, _ in groups for h in hyps) else None
        ),
    )
    with LiveServer(faulty, max_wait_ms=0) as server:
        client = AsyncRewardClient(server.url, max_error_retries=1, backoff_initial_s=0.01)
        rewards = RadCliQRewards(RewardConfig(reward_max_consecutive_failures=2), client=client)
        radcliq, bleu = rewards.reward_func("radcliq"), rewards.reward_func("bleu2")
        with caplog.at_level(logging.WARNING, logger="rrg_trl.rewards"):
            out = call_all([radcliq, bleu], ["POISON", "ok"], report=["a", "b"])
        assert out == [[None, None], [None, None]]
        assert (
            "RadCliQ reward failed for a batch of 2 completions" in caplog.text and "injected" in caplog.text
        )
        hyps, refs = grpo_batch(1, group=2)
        [good] = call_all([radcliq], hyps, report=refs)  # the next batch is scored normally
        assert all(math.isfinite(x) for x in good)
        for _ in range(2):
            call_all([radcliq], ["POISON"], report=["a"])
        with pytest.raises(RewardComputationError, match="3 batches in a row"):
            call_all([radcliq], ["POISON"], report=["a"])


def test_random_scorer_models_are_logged_once_per_run(live, scorer, official_layout_dir, caplog):
    """The training log says once that the rewards come from the random tiny kit (remote or in-process);
    an official-layout scorer, behind a server or not, is not called random."""
    official = tiny_scorer(str(official_layout_dir))
    with (
        LiveServer(official, max_wait_ms=0) as plain_server,
        caplog.at_level(logging.WARNING, "rrg_trl.rewards"),
    ):
        backends = {
            "remote tiny kit": RadCliQRewards(RewardConfig(reward_urls=[live.url])),
            "in-process tiny kit": RadCliQRewards(scorer=scorer),
            # a client that never needed /v1/info for its limits: the reward asks for it itself
            "remote official": RadCliQRewards(
                client=AsyncRewardClient(plain_server.url, max_pairs_per_request=64)
            ),
            "in-process official": RadCliQRewards(scorer=official),
        }
        for name, rewards in backends.items():
            caplog.clear()
            for seed in range(3):  # three different batches, one line
                hyps, refs = grpo_batch(1, group=2, seed=20 + seed)
                call_all([rewards.reward_func("radcliq"), rewards.reward_func("bleu2")], hyps, report=refs)
            random = name.endswith("tiny kit")
            assert rewards.requests == 3 and rewards.random_weights is random, name
            said = [
                r for r in caplog.records if r.name == rw.__name__ and RANDOM_WEIGHTS_NOTICE in r.getMessage()
            ]
            assert len(said) == (1 if random else 0), name


def test_server_down_past_budget_stops_training():
    dead = f"http://127.0.0.1:{free_port()}"
    [radcliq] = get_reward_funcs(["radcliq"], urls=[dead], retry_budget_s=0.5)
    with pytest.raises(RewardServerUnavailable, match="retry budget"):
        call_all([radcliq], ["a"], report=["b"])


def test_wrong_api_key_stops_training(scorer, monkeypatch):
    with LiveServer(scorer, api_key="secret") as server:
        monkeypatch.setenv("RRG_REWARD_API_KEY", "wrong")
        [radcliq] = get_reward_funcs(["radcliq"], urls=[server.url])
        with pytest.raises(RewardRequestError, match="invalid API key"):
            call_all([radcliq], ["a"], report=["b"])
        monkeypatch.setenv("MY_KEY", "secret")
        [radcliq] = get_reward_funcs(["radcliq"], urls=[server.url], api_key_env="MY_KEY")
        assert len(call_all([radcliq], ["a"], report=["b"])[0]) == 1


# ---------------------------------------------------------------------- a real GRPO step
def _tiny_policy(tmp_path):
    """A 1-layer Llama and a byte-level BPE trained here: enough for GRPO to generate text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<pad>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(reports(200, seed=1), trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    return LlamaForCausalLM(config), tokenizer


@pytest.mark.slow
def test_grpo_trainer_step_against_the_live_server(live, scorer, tmp_path):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    model, tokenizer = _tiny_policy(tmp_path)
    refs = pool()[:4]
    dataset = Dataset.from_dict({"prompt": ["Findings:"] * 4, "report": refs})
    radcliq, semb = get_reward_funcs(["radcliq", "semb"], urls=[live.url])
    seen = []

    async def recorded(prompts, completions, **kwargs):
        out = await radcliq(prompts=prompts, completions=completions, **kwargs)
        seen.append((list(completions), list(kwargs["report"]), out))
        return out

    recorded.__name__ = "radcliq"
    args = GRPOConfig(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=12,
        max_steps=1,
        learning_rate=1e-3,
        use_cpu=True,
        bf16=False,
        report_to="none",
        logging_steps=1,
        save_strategy="no",
        seed=0,
    )
    chunks_before = live.state.batcher.stats.chunks
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[recorded, semb],
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    trainer.train()
    assert live.state.batcher.stats.chunks > chunks_before
    assert seen, "the reward function was never called"
    for completions, references, out in seen:
        expected = scorer.score(completions, references)
        assert out == pytest.approx([-e["radcliq"] for e in expected], abs=1e-4)
    logs = next(entry for entry in trainer.state.log_history if "rewards/radcliq/mean" in entry)
    assert math.isfinite(logs["rewards/radcliq/mean"]) and math.isfinite(logs["rewards/semb/mean"])
    for name in (
        "radgraph",
        "bertscore",
        "bleu2",
    ):  # not trained on: logged by the request through log_metric
        assert math.isfinite(logs[f"rewards/{name}/mean"]), name
    assert "rewards/radgraph/std" not in logs, "only the trained rewards get TRL's std"


def test_a_reference_the_server_refuses_stops_training_naming_the_study(scorer):
    """Issue 18 case 6: a 413 / 422 caused by the data was treated as transient (zero-advantage steps, exit 0);
    now it stops training and names the study. A refused generated text only fails its batch."""
    with LiveServer(scorer, max_text_chars=200, max_pairs_per_request=2) as server:
        [radcliq] = get_reward_funcs(["radcliq"], urls=[server.url])
        long = "Small left effusion. " * 20
        with pytest.raises(
            RewardComputationError, match=r"refused study 'CXR3' \(reference 2 of the batch, 420 ch"
        ):
            call_all([radcliq], ["a", "b", "c"], report=["x", "y", long], id=["CXR1", "CXR2", "CXR3"])
        assert call_all([radcliq], [long, "b"], report=["x", "y"], id=["CXR1", "CXR2"]) == [[None, None]]
