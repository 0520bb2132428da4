"""An RL stage's rewards from its arguments: configuration precedence, the registry and dotted paths,
components logged through TRL's hooks, the guard on the first reward, and failing fast when no server answers."""

from __future__ import annotations

import asyncio

import pytest

from reward_server.client import RewardServerUnavailable
from rrg_trl.configs import GRPOScriptArguments
from rrg_trl.reward_setup import build_reward_funcs, prepare_rewards, stop_token_ids
from tests.reward_server.live import free_port, grpo_batch

STOP = {2}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for var in ("RRG_REWARD_URLS", "RRG_REWARD_API_KEY", "RRG_REWARD_TIMEOUT_S", "RRG_REWARD_RETRY_BUDGET_S"):
        monkeypatch.delenv(var, raising=False)


def test_recipe_over_environment_over_defaults(monkeypatch):
    monkeypatch.setenv("RRG_REWARD_URLS", "http://env:1,http://env:2")
    monkeypatch.setenv("RRG_REWARD_TIMEOUT_S", "7")
    monkeypatch.setenv("RRG_REWARD_API_KEY", "from-env")
    config = GRPOScriptArguments()
    assert config.reward_urls == ["http://env:1", "http://env:2"] and config.reward_timeout_s == 7.0
    assert config.api_key == "from-env" and config.reward_reference_column == "report"
    config = GRPOScriptArguments(
        reward_urls=["http://recipe:8000"],
        reward_timeout_s=3,
        reward_retry_budget_s=9,
        reward_max_consecutive_failures=2,
    )
    assert config.reward_urls == ["http://recipe:8000"] and config.reward_timeout_s == 3
    assert config.reward_retry_budget_s == 9 and config.reward_max_consecutive_failures == 2
    monkeypatch.setenv("MY_TOKEN", "secret")
    assert GRPOScriptArguments(reward_api_key_env="MY_TOKEN").api_key == "secret"


def test_a_named_but_missing_key_variable_is_an_error():
    with pytest.raises(ValueError, match="reward_api_key_env='NOT_SET_ANYWHERE'"):
        prepare_rewards(GRPOScriptArguments(reward_api_key_env="NOT_SET_ANYWHERE"))


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="unknown reward guard"):
        GRPOScriptArguments(reward_guards=["empty", "shouting"])
    with pytest.raises(ValueError, match="reward_funcs is empty"):
        GRPOScriptArguments(reward_funcs=[])
    with pytest.raises(
        ValueError, match=r"unknown reward_funcs \['rouge'\]"
    ):  # when the arguments are parsed
        GRPOScriptArguments(reward_funcs=["rouge"])
    with pytest.raises(ValueError, match="cannot import reward"):
        build_reward_funcs(GRPOScriptArguments(reward_funcs=["no_such_pkg.reward"]), None, STOP)
    with pytest.raises(ValueError, match="has no function 'missing'"):
        build_reward_funcs(
            GRPOScriptArguments(reward_funcs=["tests.rrg_trl.toy_rewards.missing"]), None, STOP
        )
    with pytest.raises(ValueError, match="reward_weights has 2 values for 1 reward_funcs"):
        build_reward_funcs(GRPOScriptArguments(reward_urls=["http://127.0.0.1:1"]), [1.0, 2.0], STOP)


def test_dotted_path_reward_needs_no_server():
    args = GRPOScriptArguments(
        reward_funcs=["tests.rrg_trl.toy_rewards.target_token_share"], reward_guards=[]
    )
    assert prepare_rewards(args) is None
    funcs, weights = build_reward_funcs(args, None, STOP)
    assert [f.__name__ for f in funcs] == ["target_token_share"] and weights == [1.0]


def test_radcliq_with_logged_components_against_the_live_server(reward_server, stage_scorer):
    args = GRPOScriptArguments(reward_urls=[reward_server.url], guard_penalty=0.5)
    funcs, weights = build_reward_funcs(args, [2.0], STOP, rewards=prepare_rewards(args))
    assert [f.__name__ for f in funcs] == ["radcliq"] and weights == [2.0] and hasattr(funcs[0], "guard")

    hyps, refs = grpo_batch(1, group=4, seed=11)
    hyps[1] = ""  # an empty report: scored by the server, then penalised
    ids = [[5, 2], [2], [5, 6], [5, 2]]  # the third never finished: truncated
    requests_before = reward_server.state.batcher.stats.pairs
    metrics, extra = {}, {}
    hooks = {"log_metric": metrics.__setitem__, "log_extra": extra.__setitem__}
    radcliq = asyncio.run(
        funcs[0](prompts=["p"] * 4, completions=hyps, completion_ids=ids, report=refs, **hooks)
    )
    assert reward_server.state.batcher.stats.pairs - requests_before == 4, "one request serves all five"
    expected = stage_scorer.score(hyps, refs)
    penalty = [0.0, 0.5, 0.5, 0.0]
    assert radcliq == pytest.approx(
        [-e["radcliq"] - p for e, p in zip(expected, penalty, strict=True)], abs=1e-5
    )
    for name in ["radgraph", "bertscore", "semb", "bleu2"]:  # what TRL would log for a weight-0 reward
        assert extra[name] == pytest.approx([e[name] for e in expected], abs=1e-5), name
        assert metrics[f"rewards/{name}/mean"] == pytest.approx(sum(e[name] for e in expected) / 4, abs=1e-5)
    assert "rewards/radcliq/mean" not in metrics, "TRL logs the trained reward itself"


def test_components_can_be_left_out_and_requested_ones_are_not_duplicated(reward_server):
    args = GRPOScriptArguments(
        reward_urls=[reward_server.url], reward_funcs=["bleu2", "rrg_trl.rewards.semb"], reward_guards=[]
    )
    rewards = prepare_rewards(args)
    funcs, weights = build_reward_funcs(args, [1.0, 0.5], STOP, rewards=rewards)
    assert [f.__name__ for f in funcs] == ["bleu2", "semb"] and weights == [1.0, 0.5]
    metrics, extra = {}, {}
    hyps, refs = grpo_batch(1, group=2, seed=3)
    asyncio.run(
        funcs[0](
            prompts=["p"] * 2,
            completions=hyps,
            report=refs,
            log_metric=metrics.__setitem__,
            log_extra=extra.__setitem__,
        )
    )
    assert sorted(extra) == ["bertscore", "radcliq", "radgraph"], "radcliq too, when it is not trained on"
    assert sorted(metrics) == [
        "reward_server/failed",
        "reward_server/latency_s",
        "rewards/bertscore/mean",
        "rewards/radcliq/mean",
        "rewards/radgraph/mean",
    ]
    assert rewards.requests == 1, "the dotted path to a registered reward shares the stage's request"
    args = GRPOScriptArguments(reward_urls=[reward_server.url], log_reward_components=False, reward_guards=[])
    funcs, weights = build_reward_funcs(args, None, STOP)
    metrics.clear()
    asyncio.run(funcs[0](prompts=["p"] * 2, completions=hyps, report=refs, log_metric=metrics.__setitem__))
    assert [f.__name__ for f in funcs] == ["radcliq"] and weights == [1.0] and not hasattr(funcs[0], "guard")
    assert not any(k.startswith("rewards/") for k in metrics)


def test_no_server_fails_fast_before_the_policy_is_loaded():
    args = GRPOScriptArguments(reward_urls=[f"http://127.0.0.1:{free_port()}"], reward_wait_timeout_s=0.5)
    with pytest.raises(RewardServerUnavailable, match="not ready after 0.5s"):
        prepare_rewards(args)
    args.reward_wait_timeout_s = 0  # opt out of the wait: the backend is built, the first batch will retry
    assert prepare_rewards(args) is not None


def test_nothing_listening_gives_up_early_instead_of_waiting_the_whole_timeout():
    """Issue 18 case 9: with every attempt refused, a 30 s wait ends after reward_refused_give_up_s."""
    url = f"http://127.0.0.1:{free_port()}"
    args = GRPOScriptArguments(reward_urls=[url], reward_wait_timeout_s=30, reward_refused_give_up_s=0.3)
    with pytest.raises(RewardServerUnavailable, match=r"nothing is listening at \['http://127.0.0.1:\d+'\]"):
        prepare_rewards(args)


def test_stop_token_ids_of_the_tiny_policy(policy_dir):
    from rrg_trl.modeling import load_policy

    model, processor = load_policy(policy_dir)
    ids = stop_token_ids(model, processor)
    tok = processor.tokenizer
    assert {tok.eos_token_id, tok.pad_token_id} <= ids and None not in ids


def test_a_wrong_api_key_fails_before_the_data_and_the_policy_load(
    stage_scorer, policy_dir, tmp_path, monkeypatch
):
    """Issue 18 case 10: the key used to be checked at the first training step; /v1/info (authenticated) now
    checks it in prepare_rewards, and the server's limits come back with it."""
    from rrg_trl import grpo
    from tests.reward_server.live import LiveServer
    from tests.rrg_trl.stage_helpers import run_stage, stage_argv

    with LiveServer(stage_scorer, api_key="right-key") as server:
        args = GRPOScriptArguments(reward_urls=[server.url], reward_api_key_env="MY_KEY")
        monkeypatch.setenv("MY_KEY", "wrong-key")
        with pytest.raises(ValueError, match=r"rejected the key in \$MY_KEY \(HTTP 401: invalid API key\)"):
            prepare_rewards(args)
        argv = stage_argv("grpo", tmp_path / "out", "--model_name_or_path", str(policy_dir))
        argv += ["--reward_urls", server.url, "--reward_api_key_env", "MY_KEY"]
        with pytest.raises(ValueError, match="rejected the key") as error:
            run_stage(grpo, argv)
        names = {entry.name for entry in error.traceback}
        assert "prepare_rewards" in names and not {"load_splits", "get_policy"} & names
        assert not (tmp_path / "out").exists()
        with pytest.raises(ValueError, match=r"rejected no key \(\$RRG_REWARD_API_KEY is unset\)"):
            prepare_rewards(GRPOScriptArguments(reward_urls=[server.url]))
        monkeypatch.setenv("MY_KEY", "right-key")
        rewards = prepare_rewards(args)
        assert rewards.server_info["server"]["limits"]["max_text_chars"] == 20_000


def test_reports_longer_than_the_context_or_the_servers_limit_are_warned_about(policy_dir, caplog):
    """Issue 18 case 6: 5,000-word reports trained silently past the model's context."""
    from datasets import Dataset

    from rrg_trl.modeling import load_policy
    from rrg_trl.preflight import model_context, warn_long_reports

    model, processor = load_policy(policy_dir)
    context = model_context(model)
    assert isinstance(context, int) and context > 0
    long = "effusion " * (context + 10)
    data = Dataset.from_dict({"id": ["s1", "s2", "s3"], "report": ["No effusion.", long, "Clear."]})
    with caplog.at_level("WARNING", logger="rrg_trl.preflight"):
        assert warn_long_reports(data, tokenizer=processor.tokenizer, context=context) == 1
        assert warn_long_reports(data, max_text_chars=20) == 1
        assert warn_long_reports(data, max_text_chars=len(long)) == 0
    assert (
        f"1 of 3 reports are longer than the model's context ({context} tokens); the longest, study 's2'"
        in caplog.text
    )
    assert "1 of 3 reports are longer than the reward server's max_text_chars (20 characters)" in caplog.text
