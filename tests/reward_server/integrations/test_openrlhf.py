"""OpenRLHF 0.11.2 calling the RadCliQ reward through its own code, HTTP (``/v1/openrlhf``) and file mode.

Queries are built by OpenRLHF itself: ``openrlhf.datasets.prompts_dataset.preprocess_data`` renders the
prompt with the policy's chat template, ``openrlhf.utils.agent.SingleTurnAgentExecutor.execute`` tokenizes it
(``openrlhf.utils.vlm_utils.process_prompt_with_images`` for a VLM: the processor expands the image
placeholder), decodes prompt ids + response ids + EOS with special tokens kept, and calls the reward: its
aiohttp request for a URL, or the ``reward_func`` it loads from a ``.py`` path. On a CPU machine vLLM and
Ray cannot run, so the engine is :class:`~tests.reward_server.integrations.rollouts.ReplayEngine` (it
returns a known report's ids + EOS); every reward must equal the in-process RadCliQScorer on that report.
The next layer, ``openrlhf.trainer.ppo_utils.samples_generator`` (executor output -> Experience), imports vLLM
and cannot be imported on a CPU machine: the executor's output dict is the nearest layer checked.
"""

from __future__ import annotations

import pytest
import torch

import reward_server.integrations.openrlhf as openrlhf_file
from reward_server.integrations import scoring
from rrg_trl.modeling.tiny import FAMILIES
from tests.reward_server.integrations.rollouts import (
    LLAMA_PROMPT,
    chat_prompt,
    image,
    llama_style_tokenizer,
    rollout,
)
from tests.reward_server.live import LiveServer, pool, tiny_scorer

pytest.importorskip("openrlhf.utils.agent", reason="openrlhf is not installed (make install-dev)")

POLICIES = (*FAMILIES, "text-chatml", "text-llama")
KEYS = ("radcliq", "radgraph", "bertscore", "semb", "bleu2")


@pytest.fixture(scope="module")
def scorer(tiny_model_dir):
    return tiny_scorer(str(tiny_model_dir))


@pytest.fixture(scope="module")
def live(scorer):
    with LiveServer(scorer) as server:  # OpenRLHF's HTTP mode sends no API key
        yield server


@pytest.fixture
def backend(monkeypatch, live):
    """The file mode's backend, rebuilt from the environment each test (one per process in real use)."""
    monkeypatch.setenv("RRG_REWARD_URLS", live.url)
    monkeypatch.setattr(scoring, "_shared", None)
    monkeypatch.setattr(openrlhf_file, "_extractor", openrlhf_file._extractor.__wrapped__)


def policy_case(policy: str, tiny_policy) -> tuple[object, list[str], list]:
    """(what OpenRLHF calls hf_tokenizer, prompts, images) for two samples."""
    if policy == "text-llama":
        return llama_style_tokenizer(), [LLAMA_PROMPT] * 2, [None, None]
    from rrg_trl.modeling.loading import load_processor

    processor = load_processor(tiny_policy("qwen2_5_vl" if policy == "text-chatml" else policy))
    if policy == "text-chatml":
        return processor.tokenizer, [chat_prompt(processor.tokenizer, False)] * 2, [None, None]
    return processor, [chat_prompt(processor, True)] * 2, [[image()], [image()]]


def check_rollouts(outs, engine, hf_tokenizer, prompts, labels, reports, scorer, verbatim=False) -> None:
    tokenizer = engine.tokenizer
    for out, prompt, label, report in zip(outs, prompts, labels, reports, strict=True):
        query = hf_tokenizer.decode(out["observation_tokens"], skip_special_tokens=False)
        # Why the old route failed: the query ends in EOS text, and (VLM, inexact round trip) does not start
        # with the prompt; only a byte-level text-only tokenizer gives the prompt back verbatim.
        assert query.rstrip().endswith(tokenizer.eos_token), query[-80:]
        assert query.startswith(prompt) == verbatim, query[:200]
        bare = tokenizer.decode(
            tokenizer(report, add_special_tokens=False)["input_ids"], skip_special_tokens=True
        )
        expected = scorer.score([bare.strip()], [label])[0]
        assert out["reward"] is not None, "OpenRLHF got no reward (its request failed: see the INFO log)"
        got = torch.as_tensor(out["reward"], dtype=torch.float64).flatten().tolist()
        assert got == pytest.approx([-expected["radcliq"]], abs=1e-5)
        assert torch.as_tensor(out["scores"], dtype=torch.float64).flatten().tolist() == pytest.approx(got)
        for k in KEYS:
            value = torch.as_tensor(out["extra_logs"][k], dtype=torch.float64).flatten().tolist()
            assert value == pytest.approx([expected[k]], abs=1e-5), k


@pytest.mark.parametrize("policy", POLICIES)
def test_http_route_with_openrlhf_queries(policy, live, scorer, tiny_policy):
    hf_tokenizer, prompts, images = policy_case(policy, tiny_policy)
    labels, reports = pool()[:2], pool()[2:4]
    outs, engine = rollout(live.url + "/v1/openrlhf", hf_tokenizer, prompts, labels, reports, images)
    check_rollouts(outs, engine, hf_tokenizer, prompts, labels, reports, scorer, policy == "text-chatml")
    if images[0]:  # the processor expanded the placeholder: the prompt ids are longer than the prompt's own
        plain = engine.tokenizer(prompts[0], add_special_tokens=False)["input_ids"]
        assert len(engine.prompts_seen[0]) > len(plain)


@pytest.mark.parametrize("policy", ["qwen2_5_vl", "gemma3", "text-llama"])
def test_file_mode_loaded_by_openrlhf(policy, backend, scorer, tiny_policy):
    hf_tokenizer, prompts, images = policy_case(policy, tiny_policy)
    labels, reports = pool()[4:6], pool()[6:8]
    outs, engine = rollout(openrlhf_file.__file__, hf_tokenizer, prompts, labels, reports, images)
    check_rollouts(outs, engine, hf_tokenizer, prompts, labels, reports, scorer)
    assert isinstance(outs[0]["reward"], torch.Tensor)


def test_file_mode_in_process(monkeypatch, tiny_model_dir, scorer, tiny_policy):
    monkeypatch.setenv("RRG_REWARD_MODEL_DIR", str(tiny_model_dir))
    monkeypatch.setenv("RRG_REWARD_DEVICE", "cpu")
    monkeypatch.setattr(scoring, "_shared", None)
    hf_tokenizer, prompts, images = policy_case("idefics3", tiny_policy)
    labels, reports = pool()[8:10], pool()[10:12]
    outs, engine = rollout(openrlhf_file.__file__, hf_tokenizer, prompts, labels, reports, images)
    check_rollouts(outs, engine, hf_tokenizer, prompts, labels, reports, scorer)
    assert scoring.shared()._scorer is not None and scoring.shared()._client is None


def test_file_mode_returns_openrlhfs_dict(backend, scorer):
    labels, completions = pool()[:3], pool()[3:6]
    queries = [f"Report:\n{c}<|im_end|><|endoftext|><|endoftext|>" for c in completions]
    out = openrlhf_file.reward_func(queries, ["Report:"] * 3, labels)
    expected = scorer.score(completions, labels)
    assert set(out) == {"rewards", "scores", "extra_logs"} and set(out["extra_logs"]) == set(KEYS)
    assert out["rewards"].shape == (3,) and torch.equal(out["rewards"], out["scores"])
    assert out["rewards"].tolist() == pytest.approx([-e["radcliq"] for e in expected], abs=1e-5)
    # scoring the EOS text as part of the report (the old behaviour) gives measurably different rewards
    with_eos = scorer.score([c + "<|im_end|>" for c in completions], labels)
    assert max(abs(a["radcliq"] - b["radcliq"]) for a, b in zip(with_eos, expected, strict=True)) > 1e-3


@pytest.mark.parametrize(
    ("queries", "prompts", "labels", "needle"),
    [
        (
            ["USER: <image><image>Q ASSISTANT: a", "x"],
            ["USER: <image>Q ASSISTANT:", "y"],
            ["a", "b"],
            "query[1]",
        ),
        (["Q: a"], ["Q:"], ["a", "b"], "labels has 2 items for 1 completions"),
        (["Q: a", 7], ["Q:", "Q:"], ["a", "b"], "queries[1] must be a string"),
        (["Q: a"], ["Q:"], [None], "labels[0] must be a string"),
        (["Q: a", "Q: b"], ["Q:"], ["a", "b"], "same length"),
    ],
)
def test_file_mode_bad_input_names_the_index(backend, queries, prompts, labels, needle):
    with pytest.raises(ValueError, match=__import__("re").escape(needle)):
        openrlhf_file.reward_func(queries, prompts, labels)
