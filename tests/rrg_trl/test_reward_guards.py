"""Reward-hacking guards: which completions are flagged, the penalty, None kept, and the logs."""

from __future__ import annotations

import asyncio

import pytest

from rrg_trl.reward_guards import GUARDS, GuardConfig, RewardGuard, guard_flags, repeat_fraction

EOS, PAD = 2, 0
CONFIG = GuardConfig(stop_token_ids=frozenset({EOS, PAD}))
REPORT = "The lungs are clear. No pleural effusion or pneumothorax. Heart size is normal."


@pytest.mark.parametrize(
    ("text", "ids", "expected"),
    [
        (REPORT, [5, 6, EOS], []),
        ("", [EOS], ["empty"]),
        ("  \n ... ", [7, EOS], ["empty"]),
        ("Normal.", [7, EOS], ["too_short"]),
        ("No acute", [7, 8, EOS], ["too_short"]),
        ("no effusion " * 8, [9] * 16 + [EOS], ["repetition"]),
        (REPORT, [5, 6, 7], ["truncated"]),  # never emitted EOS: cut at max_completion_length
        ("clear clear", [5, 6], ["too_short", "truncated"]),
        (REPORT, [5, 6, PAD], []),  # padding counts as finished, as in TRL
    ],
)
def test_flags(text, ids, expected):
    assert guard_flags(text, ids, CONFIG) == expected


def test_repeat_fraction():
    assert repeat_fraction(["a", "b", "c", "d", "e"], 3) == 0.0
    assert repeat_fraction(["a", "b", "a", "b", "a", "b"], 2) == pytest.approx(1 - 2 / 5)
    assert repeat_fraction(["a"], 3) == 0.0
    # A long report whose 3-grams mostly repeat trips the default threshold; the real report does not.
    assert guard_flags("the heart is normal. " * 6, [EOS], CONFIG) == ["repetition"]


def test_only_enabled_guards_and_thresholds():
    config = GuardConfig(guards=("empty",), min_words=10)
    assert guard_flags("Normal.", [7], config) == []
    assert guard_flags("", [7], config) == ["empty"]
    assert guard_flags("one two three", None, GuardConfig(guards=("too_short",), min_words=4)) == [
        "too_short"
    ]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"guards": ("empty", "long")}, "unknown reward guard"),
        ({"penalty": -1.0}, "penalty"),
        ({"max_repeat_fraction": 0.0}, "max_repeat_fraction"),
        ({"repeat_ngram": 0}, "repeat_ngram"),
        ({"guards": ("truncated",)}, "stop_token_ids"),
    ],
)
def test_bad_config_is_a_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GuardConfig(**kwargs)


def _completions(texts):
    return [[{"role": "assistant", "content": t}] for t in texts]


TEXTS = [REPORT, "", REPORT, "no effusion " * 8]
IDS = [[5, EOS], [EOS], [5, 6, 7], [9] * 16 + [EOS]]


def test_sync_reward_is_penalised_once_per_flagged_completion_and_none_kept():
    calls = []

    def overlap(prompts, completions, **kwargs):
        calls.append(kwargs)
        return [0.5, 0.25, None, 0.75]

    metrics, extra = {}, {}
    guarded = RewardGuard(overlap, GuardConfig(penalty=2.0, stop_token_ids=frozenset({EOS}))).wrap()
    out = guarded(
        prompts=["p"] * 4,
        completions=_completions(TEXTS),
        completion_ids=IDS,
        report=["r"] * 4,
        log_metric=metrics.__setitem__,
        log_extra=extra.__setitem__,
    )
    # clean; empty; truncated but unscored (stays None: a guard must not invent a reward); repetitive.
    assert out == [0.5, 0.25 - 2.0, None, 0.75 - 2.0]
    assert calls[0]["report"] == ["r"] * 4 and calls[0]["completion_ids"] == IDS
    assert guarded.__name__ == "overlap"
    assert metrics == {
        "guards/empty": 0.25,
        "guards/too_short": 0.0,
        "guards/repetition": 0.25,
        "guards/truncated": 0.25,
        "guards/penalized": 0.75,
    }
    assert extra == {"guards": ["", "empty", "truncated", "repetition"]}


def test_async_reward_stays_async():
    async def radcliq(prompts, completions, **kwargs):
        await asyncio.sleep(0)
        return [-1.0] * len(completions)

    guarded = RewardGuard(radcliq, CONFIG).wrap()
    assert asyncio.iscoroutinefunction(guarded) and guarded.__name__ == "radcliq"
    out = asyncio.run(guarded(prompts=["p"] * 4, completions=TEXTS, completion_ids=IDS))
    assert out == [-1.0, -2.0, -2.0, -2.0]


def test_length_mismatches_are_errors():
    guarded = RewardGuard(lambda prompts, completions, **kw: [0.0], CONFIG).wrap()
    with pytest.raises(ValueError, match="returned 1 values for 2 completions"):
        guarded(prompts=["p", "p"], completions=[REPORT, REPORT], completion_ids=[[EOS], [EOS]])
    with pytest.raises(ValueError, match="1 completion_ids for 2 completions"):
        guarded(prompts=["p", "p"], completions=[REPORT, REPORT], completion_ids=[[EOS]])


def test_all_guards_are_known():
    assert GUARDS == ("empty", "too_short", "repetition", "truncated")
