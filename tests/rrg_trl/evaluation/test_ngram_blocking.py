"""Word n-gram blocking: exactly the tokens a brute-force pass over the vocabulary bans, and no repeat survives."""

from __future__ import annotations

import random

import pytest
import torch

from reward_server.tinykit.corpus import synthetic_reports
from rrg_trl.evaluation.ngram_blocking import WordNgramBlocker, _completed_words
from rrg_trl.metrics.degeneracy import report_words


def sentencepiece_style():
    """A Metaspace BPE (as Llama / Mistral tokenizers): a token decoded alone drops its leading space."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.Metaspace()
    bpe.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(
        vocab_size=600, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False
    )
    bpe.train_from_iterator(synthetic_reports(400, seed=9), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="</s>", unk_token="<unk>")


@pytest.fixture(scope="module")
def byte_level(policy_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(policy_dir)  # the tiny policy's: byte-level BPE, as Qwen2-VL's


@pytest.fixture(scope="module", params=["byte_level", "sentencepiece"])
def any_tokenizer(request):
    return request.getfixturevalue("byte_level") if request.param == "byte_level" else sentencepiece_style()


@pytest.fixture(scope="module")
def tokenizer(byte_level):
    return byte_level


def brute_force(tokenizer, ids: list[int], n: int, last: bool) -> set[int]:
    """Decode every continuation and ban those whose newly completed words close a repeated n-gram."""
    before = tokenizer.decode(ids, skip_special_tokens=True)
    done = _completed_words(before)
    banned = set()
    for token in range(len(tokenizer)):
        text = tokenizer.decode(ids + [token], skip_special_tokens=True)
        ended = (
            last or text == before
        )  # a token that writes nothing (special tokens: end-of-sequence...) ends it
        words = report_words(text) if ended else _completed_words(text)
        grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
        if any(gram in grams[:k] for k, gram in enumerate(grams) if k + n > len(done)):
            banned.add(token)
    return banned


def prefixes(tokenizer, count: int, seed: int) -> list[list[int]]:
    """Token prefixes of report-like text that repeats itself in another case, cut at every token (mid-word too)."""
    rng = random.Random(seed)
    out = []
    for report in synthetic_reports(count, seed=seed):
        sentences = report.split(". ")
        text = ". ".join(sentences + [s.lower() for s in rng.sample(sentences, min(2, len(sentences)))])
        ids = tokenizer(text)["input_ids"]
        out += [ids[:stop] for stop in range(4, len(ids) + 1, 2)]
    return out


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("last", [False, True])
def test_bans_exactly_what_brute_force_bans(any_tokenizer, n, last):
    tokenizer = any_tokenizer
    blocker = WordNgramBlocker(tokenizer, n, prompt_length=0)
    some_banned = 0
    for ids in prefixes(tokenizer, 2, seed=n):
        expected = brute_force(tokenizer, ids, n, last)
        got = blocker.banned_tokens(tokenizer.decode(ids, skip_special_tokens=True), last)
        assert set(got) == expected, tokenizer.decode(ids)
        some_banned += bool(expected)
    assert some_banned >= 5  # the prefixes do reach repeats


def test_a_repeat_spelt_with_other_tokens_is_banned(tokenizer):
    """ "The lungs are" and " the lungs are" are different tokens: transformers' blocking lets this through."""
    blocker = WordNgramBlocker(tokenizer, 3, prompt_length=0)
    banned = set(blocker.banned_tokens("The lungs are clear. the lungs are"))
    period, eos = tokenizer.convert_tokens_to_ids("."), tokenizer.eos_token_id
    assert {period, eos} <= banned
    word_pieces = {i for i in range(len(tokenizer)) if tokenizer.decode([i]).isalpha()}
    assert not banned & word_pieces  # extending "are" into another word stays allowed
    assert blocker.banned_tokens("The lungs are clear. the lungs") == []


def test_processor_masks_rows_after_the_prompt(tokenizer):
    prompt = tokenizer("The lungs are clear. the lungs are")["input_ids"]  # a repeat, but in the prompt
    blocker = WordNgramBlocker(tokenizer, 2, prompt_length=len(prompt))
    period = tokenizer.convert_tokens_to_ids(".")
    for report, blocked in (("No effusion. no effusion", True), ("No effusion. The heart", False)):
        ids = torch.tensor([prompt + tokenizer(report)["input_ids"]])
        scores = blocker(ids, torch.zeros(1, len(tokenizer)))
        assert bool(torch.isinf(scores[0, period])) is blocked
        assert bool(torch.isinf(scores).any()) is blocked  # nothing banned where nothing repeats


def test_bad_size(tokenizer):
    with pytest.raises(ValueError, match="ngram_size"):
        WordNgramBlocker(tokenizer, 0, prompt_length=0)
