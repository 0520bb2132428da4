"""No repeated word n-gram in a generated report: R2Gen-family blocking for subword tokenizers (issue 16).

R2Gen and its successors block repeated trigrams of their tokens, which are words. transformers'
``no_repeat_ngram_size`` blocks repeated n-grams of *subword* tokens, and a byte-level BPE spells the same words
with different tokens ("The lungs are" at the start of a report, " the lungs are" later; "No" and " no"), so
"No pleural effusion. ... no pleural effusion" passes it. The evaluation's repeated-trigram figure counts words
(:func:`rrg_trl.metrics.degeneracy.report_words`), so token blocking let through the very repetition the table
then reported, and RL's decoding guard stopped on it. :class:`WordNgramBlocker` bans, at each step, every token
that would complete a word n-gram the report already contains, with the same word splitter the figure uses.

A word is complete once a non-word character follows it, or the report ends: a token that writes nothing
(end-of-sequence; any special token is taken as one), or the last allowed token. Tokens are grouped by what
they do to the word being written: a token of word characters only extends it, and completes no repeat
unless it is the last allowed token; a token that starts with a non-word character (" lungs", ".",
end-of-sequence) completes it; one with word characters before a non-word character ("s.") completes it
extended by them. Each group is checked once per step, and tokens that complete further words inside
themselves (rare under byte-level BPE pre-tokenizers) one by one: a step costs a few dictionary look-ups, not
a pass over the vocabulary. Each token's text is taken after a word, so SentencePiece tokens keep their
leading space.
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


def _decode(tokenizer, rows: list[list[int]]) -> list[str]:
    """Every row's text in one call: a fast tokenizer's backend directly (its Python wrapper costs more than the
    decoding), never the wrapper's clean-up of spaces."""
    backend = getattr(tokenizer, "_tokenizer", None)
    if backend is not None and hasattr(backend, "decode_batch"):
        return backend.decode_batch(rows, skip_special_tokens=True)
    return tokenizer.batch_decode(rows, skip_special_tokens=True, clean_up_tokenization_spaces=False)


def _token_texts(tokenizer) -> list[str]:
    """What each token adds to a report already under way. Decoded alone, a SentencePiece token drops its leading
    space ("▁lungs" -> "lungs"), so each is decoded after a word and that word is cut off again."""
    anchor = tokenizer.encode("a", add_special_tokens=False)
    head = _decode(tokenizer, [anchor])[0]
    texts = _decode(tokenizer, [anchor + [i] for i in range(len(tokenizer))])
    odd = [
        i for i, text in enumerate(texts) if not text.startswith(head)
    ]  # merged into the word: take it alone
    alone = dict(zip(odd, _decode(tokenizer, [[i] for i in odd]), strict=True))
    return [alone[i] if i in alone else text[len(head) :] for i, text in enumerate(texts)]


def check_ngram_unit(unit: str) -> None:
    if unit not in NGRAM_UNITS:
        raise ValueError(f"no_repeat_ngram_unit must be one of {NGRAM_UNITS}, got {unit!r}")


def _split_open(text: str) -> tuple[list[str], str | None]:
    """The words of ``text`` a later token cannot extend, and the open last word a later token may (or None)."""
    words = report_words(text)
    tail = _OPEN_TAIL.search(text)
    if words and tail and report_words(tail.group(0)):
        return words[:-1], words[-1]
    return words, None


def _completed_words(text: str) -> list[str]:
    """Words of ``text`` that a later token cannot extend (all but an open last one)."""
    return _split_open(text)[0]


class _Vocabulary:
    """The tokenizer's tokens sorted into the groups above (built once per tokenizer)."""

    def __init__(self, tokenizer):
        pure, by_lead = defaultdict(list), defaultdict(list)
        self.inner: list[tuple[int, str]] = []  # (id, text): completes further words inside itself
        self.tails: dict[str, list[tuple[int, str]]] = defaultdict(list)  # its open last word -> (id, text)
        for i, text in enumerate(_token_texts(tokenizer)):
            lead = _LEAD.match(text).group(0)
            if text and lead == text:
                pure[text.lower()].append(i)
                continue
            completed, open_word = _split_open(text[len(lead) :])
            if completed:
                self.inner.append((i, text))
            else:
                by_lead[lead.lower()].append(i)
            if open_word:
                self.tails[open_word].append((i, text))
        # lower-cased text -> ids of the tokens of word characters only; lower-cased lead -> ids that complete it
        self.pure = {piece: torch.tensor(ids, dtype=torch.long) for piece, ids in pure.items()}
        self.by_lead = {lead: torch.tensor(ids, dtype=torch.long) for lead, ids in by_lead.items()}
        # Leads that add no letter ("", "'"): such a token completes the word being written as it stands.
        self.quotes = {lead for lead in [*self.by_lead, *self.pure] if not lead.strip("'")} | {""}


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
        for row, text in enumerate(_decode(self.tokenizer, input_ids[:, self.prompt_length :].tolist())):
            banned = self._banned(text, last)
            if banned is not None and len(banned) < scores.shape[1]:  # never leave a row without any token
                scores[row, banned.to(scores.device)] = -float("inf")
        return scores

    def banned_tokens(self, text: str, last: bool = False) -> list[int]:
        """Ids whose next appearance after ``text`` completes a repeated word n-gram."""
        banned = self._banned(text, last)
        return [] if banned is None else sorted(set(banned.tolist()))

    def _banned(self, text: str, last: bool) -> torch.Tensor | None:
        tail = _OPEN_TAIL.search(text)
        partial = tail.group(0) if tail else ""
        done = report_words(text[: len(text) - len(partial)])
        seen = {tuple(done[i : i + self.n]) for i in range(len(done) - self.n + 1)}
        if not seen:
            return None
        context = tuple(done[len(done) - self.n + 1 :]) if self.n > 1 else ()
        # The words that would repeat an n-gram if completed now, as what is still to be written of them.
        low = partial.lower()
        rests = {g[-1][len(low) :] for g in seen if g[:-1] == context and g[-1].startswith(low)}

        def repeats(new: Sequence[str]) -> bool:
            return self._repeats(done, seen, new)

        vocab, banned, ids = self.vocab, [], []  # banned: id tensors of whole groups; ids: single ids
        # What a token may add before the word ends: the rest of such a word, or apostrophes (words end before them).
        leads = vocab.quotes | rests | {rest + "'" for rest in rests}
        for lead in leads & vocab.by_lead.keys():
            if repeats(report_words(partial + lead)):
                banned.append(vocab.by_lead[lead])
        ids += [i for i, token in vocab.inner if repeats(_completed_words(partial + token))]
        if last:  # the report ends after this token: the word a token leaves open is complete too
            for piece in leads & vocab.pure.keys():
                if repeats(report_words(partial + piece)):
                    banned.append(vocab.pure[piece])
            # A repeat is made of words already written: only tokens ending in one of them can close it.
            for word in set(done) & vocab.tails.keys():
                ids += [i for i, token in vocab.tails[word] if repeats(report_words(partial + token))]
        if ids:
            banned.append(torch.tensor(ids, dtype=torch.long))
        return torch.cat(banned) if banned else None

    def _repeats(self, done: Sequence[str], seen: set, new: Sequence[str]) -> bool:
        """Whether appending the completed words ``new`` to ``done`` forms an n-gram seen before."""
        words, fresh = [*done, *new], set()  # fresh: the n-grams ``new`` itself adds
        for end in range(max(len(done) + 1, self.n), len(words) + 1):
            gram = tuple(words[end - self.n : end])
            if gram in seen or gram in fresh:
                return True
            fresh.add(gram)
        return False
