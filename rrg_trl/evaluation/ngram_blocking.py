"""No repeated word n-gram in a generated report: R2Gen-family blocking for subword tokenizers (issue 16).

R2Gen and its successors block repeated trigrams of their tokens, which are words. transformers'
``no_repeat_ngram_size`` blocks repeated n-grams of *subword* tokens, and a byte-level BPE spells the same words
with different tokens ("The lungs are" at the start of a report, " the lungs are" later; "No" and " no"), so
"No pleural effusion. ... no pleural effusion" passes it. The evaluation's repeated-trigram figure counts words
(:func:`rrg_trl.metrics.degeneracy.report_words`), so token blocking let through the very repetition the table
then reported, and RL's decoding guard stopped on it. :class:`WordNgramBlocker` bans, at each step, every token
that would complete a word n-gram the report already contains, with the same word splitter the figure uses.

A word is complete once a non-word character follows it (or the report ends: end-of-sequence, or the last
allowed token). Tokens are grouped by what they do to the word being written: a token of word characters only
extends it and can never complete a repeat (unless it is the last allowed token); a token that starts with a
non-word character (" lungs", ".", end-of-sequence) completes it; one with word characters before a non-word
character ("s.") completes it extended by them. Each group is checked once per step, and tokens that complete
further words inside themselves (rare under byte-level BPE pre-tokenizers) one by one, so a step costs a few
dictionary look-ups, not a pass over the vocabulary.
"""

from __future__ import annotations

import re
import weakref
from collections import defaultdict
from collections.abc import Sequence

import torch
from transformers import LogitsProcessor

from rrg_trl.metrics.degeneracy import report_words

NGRAM_UNITS = ("word", "token")
_OPEN_TAIL = re.compile(r"[A-Za-z0-9']+\Z")
_LEAD = re.compile(r"^[A-Za-z0-9']*")


def check_ngram_unit(unit: str) -> None:
    if unit not in NGRAM_UNITS:
        raise ValueError(f"no_repeat_ngram_unit must be one of {NGRAM_UNITS}, got {unit!r}")


class _Vocabulary:
    """The tokenizer's tokens sorted into the groups above (built once per tokenizer)."""

    def __init__(self, tokenizer):
        texts = [tokenizer.decode([i], skip_special_tokens=True) for i in range(len(tokenizer))]
        self.pure: dict[str, list[int]] = defaultdict(list)  # lower-cased text -> ids: word characters only
        self.by_lead: dict[str, list[int]] = defaultdict(list)  # lower-cased lead -> ids: completes the word
        self.inner: list[tuple[int, str]] = []  # (id, text): completes further words inside itself
        self.tails: dict[str, list[tuple[int, str]]] = defaultdict(list)  # its open last word -> (id, text)
        for i, text in enumerate(texts):
            lead = _LEAD.match(text).group(0)
            if text and lead == text:
                self.pure[text.lower()].append(i)
                continue
            if _completed_words(text[len(lead) :]):
                self.inner.append((i, text))
            else:
                self.by_lead[lead.lower()].append(i)
            tail = report_words(text[len(lead) :])
            if tail and _OPEN_TAIL.search(text):
                self.tails[tail[-1]].append((i, text))
        # Leads that add no letter ("", "'"): such a token completes the word being written as it stands.
        self.quotes = {lead for lead in [*self.by_lead, *self.pure] if not lead.strip("'")} | {""}


def _completed_words(text: str) -> list[str]:
    """Words of ``text`` that a later token cannot extend (all but an open last one)."""
    words = report_words(text)
    if words and _OPEN_TAIL.search(text) and report_words(_OPEN_TAIL.search(text).group(0)):
        words = words[:-1]
    return words


class WordNgramBlocker(LogitsProcessor):
    """Ban tokens that would complete a word n-gram already in the report (words as the degeneracy figures count)."""

    # Sorting a vocabulary decodes every token: once per tokenizer, not once per batch.
    _vocabularies: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def __init__(self, tokenizer, ngram_size: int, prompt_length: int, max_new_tokens: int | None = None):
        if ngram_size < 1:
            raise ValueError(f"ngram_size must be >= 1, got {ngram_size}")
        self.tokenizer, self.n, self.prompt_length = tokenizer, ngram_size, prompt_length
        self.last_step = None if max_new_tokens is None else prompt_length + max_new_tokens - 1
        if tokenizer not in self._vocabularies:
            self._vocabularies[tokenizer] = _Vocabulary(tokenizer)
        self.vocab = self._vocabularies[tokenizer]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        last = self.last_step is not None and input_ids.shape[1] >= self.last_step
        for row, ids in enumerate(input_ids[:, self.prompt_length :].tolist()):
            banned = self.banned_tokens(self.tokenizer.decode(ids, skip_special_tokens=True), last)
            if banned and len(banned) < scores.shape[1]:  # never leave a row without any token
                scores[row, banned] = -float("inf")
        return scores

    def banned_tokens(self, text: str, last: bool = False) -> list[int]:
        """Ids whose next appearance after ``text`` completes a repeated word n-gram."""
        tail = _OPEN_TAIL.search(text)
        partial = tail.group(0) if tail else ""
        done = report_words(text[: len(text) - len(partial)])
        seen = {tuple(done[i : i + self.n]) for i in range(len(done) - self.n + 1)}
        if not seen:
            return []
        context = tuple(done[len(done) - self.n + 1 :]) if self.n > 1 else ()
        # The words that would repeat an n-gram if completed now, as what is still to be written of them.
        low = partial.lower()
        rests = {g[-1][len(low) :] for g in seen if g[:-1] == context and g[-1].startswith(low)}

        def repeats(new: Sequence[str]) -> bool:
            return self._repeats(done, seen, new)

        vocab, banned = self.vocab, []
        # What a token may add before the word ends: the rest of such a word, or apostrophes (words end before them).
        leads = vocab.quotes | rests | {rest + "'" for rest in rests}
        for lead in leads & vocab.by_lead.keys():
            if repeats(report_words(partial + lead)):
                banned += vocab.by_lead[lead]
        banned += [i for i, token in vocab.inner if repeats(_completed_words(partial + token))]
        if last:  # the report ends after this token: the word a token leaves open is complete too
            for piece in leads & vocab.pure.keys():
                if repeats(report_words(partial + piece)):
                    banned += vocab.pure[piece]
            # A repeat is made of words already written: only tokens ending in one of them can close it.
            for word in set(done) & vocab.tails.keys():
                banned += [i for i, token in vocab.tails[word] if repeats(report_words(partial + token))]
        return sorted(set(banned))

    def _repeats(self, done: Sequence[str], seen: set, new: Sequence[str]) -> bool:
        """Whether appending the completed words ``new`` to ``done`` forms an n-gram seen before."""
        words, grams = list(done) + list(new), set(seen)
        for end in range(len(done) + 1, len(words) + 1):
            gram = tuple(words[end - self.n : end]) if end >= self.n else None
            if gram is not None:
                if gram in grams:
                    return True
                grams.add(gram)
        return False
