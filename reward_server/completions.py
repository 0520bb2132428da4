"""The completion inside an OpenRLHF query: the one place that finds it, for the HTTP route and file mode.

OpenRLHF builds each query as ``decode(prompt_ids + response_ids, skip_special_tokens=False)``, so a query
(1) ends with the policy's EOS / end-of-turn text (and any padding after it), and (2) for a vision-language
policy holds the processor's expansion of every image placeholder (Qwen's one ``<|image_pad|>`` becomes
many, Idefics3's ``<image>`` a grid of tiles, ...), so it does not start with the prompt string verbatim.

:class:`CompletionExtractor` strips trailing stop texts and locates the end of the prompt: the prompt is
split at its image placeholders into literal chunks, which must appear in the query in order (whitespace
ignored: tokenizer round trips may add or drop spaces around special tokens), the first at the start and
each one after a gap made only of special tokens and whitespace (the expansion). The completion is what
follows the last chunk. When that cannot be established, :class:`PromptNotFoundError` names the index:
never a reward on the wrong text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from reward_server.radcliq.texts import check_texts

# End-of-turn / EOS / padding texts of the common chat families, stripped from the end of every completion.
DEFAULT_STOP_TEXTS = (
    "</s>",
    "<|im_end|>",
    "<|endoftext|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|end_of_text|>",
    "<end_of_turn>",
    "<eos>",
    "<|end|>",
    "<pad>",
    "<end_of_utterance>",
    "<|end▁of▁sentence|>",
    "[PAD]",
    "[SEP]",
)
# Image placeholders that VLM processors expand (Qwen2/2.5-VL, LLaVA, Idefics3 / SmolVLM2, Gemma 3,
# Llama 3.2 Vision, InternVL, Pixtral); a policy tokenizer adds its own ``image_token`` / ``boi_token``.
DEFAULT_IMAGE_PLACEHOLDERS = (
    "<|image_pad|>",
    "<|video_pad|>",
    "<image>",
    "<video>",
    "<start_of_image>",
    "<|image|>",
    "<IMG_CONTEXT>",
    "[IMG]",
)
_PLACEHOLDER_ATTRS = ("image_token", "boi_token", "video_token")
# What an expansion is made of: special-token texts (``<...>``, ``[IMG_BREAK]``) and whitespace.
_EXPANSION = re.compile(r"(?:\s|<[^<>\s]{1,64}>|\[[A-Z_]{1,32}\])*")


class PromptNotFoundError(ValueError):
    """The end of the prompt could not be located in the query: there is no trustworthy completion."""


@dataclass(frozen=True)
class CompletionExtractor:
    """Finds the bare completion in OpenRLHF queries (trailing stop texts removed)."""

    stop_texts: tuple[str, ...] = DEFAULT_STOP_TEXTS
    image_placeholders: tuple[str, ...] = DEFAULT_IMAGE_PLACEHOLDERS

    @classmethod
    def build(cls, extra_stop_texts: Iterable[str] = (), policy_tokenizer: str | Path | None = None):
        """Defaults, plus ``extra_stop_texts``, plus every special token of ``policy_tokenizer`` (a dir)."""
        stops, placeholders = list(DEFAULT_STOP_TEXTS), list(DEFAULT_IMAGE_PLACEHOLDERS)
        stops += [s for s in extra_stop_texts if s]
        if policy_tokenizer is not None:
            specials, images = tokenizer_special_texts(policy_tokenizer)
            stops += specials
            placeholders += images
        return cls(tuple(dict.fromkeys(stops)), tuple(dict.fromkeys(placeholders)))

    def info(self) -> dict[str, list[str]]:
        return {"strip": list(self.stop_texts), "image_placeholders": list(self.image_placeholders)}

    def strip_stop_texts(self, text: str) -> str:
        """Drop trailing stop texts (repeated padding included), then surrounding whitespace."""
        text = text.rstrip()
        changed = True
        while changed:
            changed = False
            for s in self.stop_texts:
                if s and text.endswith(s):
                    text = text[: -len(s)].rstrip()
                    changed = True
        return text.strip()

    def completion(self, query: str, prompt: str, index: int = 0) -> str:
        """The completion of one query; raises PromptNotFoundError naming ``index``."""
        end = self.prompt_end(query, prompt)
        if end is None:
            raise PromptNotFoundError(
                f"query[{index}] does not contain prompts[{index}]: its text (split at image placeholders, "
                f"whitespace ignored) is not found in order from the start of the query, so the completion "
                f"cannot be located"
            )
        return self.strip_stop_texts(query[end:])

    def completions(self, queries: Sequence[str], prompts: Sequence[str]) -> list[str]:
        """Every completion of a batch; ValueError naming the index for a non-text item or a lost prompt."""
        queries, prompts = check_texts(queries, "queries"), check_texts(prompts, "prompts")
        if len(queries) != len(prompts):
            raise ValueError(
                f"queries and prompts must have the same length, got {len(queries)} and {len(prompts)}"
            )
        return [self.completion(q, p, i) for i, (q, p) in enumerate(zip(queries, prompts, strict=True))]

    def prompt_end(self, query: str, prompt: str) -> int | None:
        """Offset in ``query`` where the completion starts, or None when the prompt cannot be located."""
        chunks = self._split(prompt)
        if len(chunks) == 1 and query.startswith(prompt):
            return len(prompt)
        if not _compact(chunks[-1]):
            # only whitespace: the whole query is the completion; an image last: where its expansion stops
            # is unknowable from text
            return 0 if len(chunks) == 1 else None
        pos = 0
        for k, chunk in enumerate(chunks):
            found = _find_compact(query, _compact(chunk), pos, anchored=(k == 0))
            if found is None:
                return None
            pos = found
        return pos

    def _split(self, prompt: str) -> list[str]:
        present = [p for p in self.image_placeholders if p in prompt]
        if not present:
            return [prompt]
        pattern = "|".join(re.escape(p) for p in sorted(present, key=len, reverse=True))
        return re.split(f"(?:{pattern})+", prompt)


def _compact(text: str) -> str:
    return "".join(text.split())


def _find_compact(query: str, needle: str, start: int, anchored: bool) -> int | None:
    """End offset of ``needle`` (whitespace-free) matched in ``query`` from ``start``, ignoring whitespace,
    where the text between ``start`` and the match is only an expansion (or nothing, when ``anchored``)."""
    if not needle:
        return start
    gap = _EXPANSION.match(query, start).end()
    for begin in range(start, gap + 1):
        if anchored and query[start:begin].strip():
            return None
        end = _match_at(query, needle, begin)
        if end is not None:
            return end
    return None


def _match_at(query: str, needle: str, begin: int) -> int | None:
    """End offset when ``needle`` matches ``query`` at ``begin``, whitespace in the query skipped."""
    i = begin
    for ch in needle:
        while i < len(query) and query[i].isspace():
            i += 1
        if i >= len(query) or query[i] != ch:
            return None
        i += 1
    return i


def tokenizer_special_texts(path: str | Path) -> tuple[list[str], list[str]]:
    """(every special token, image placeholder tokens) of the tokenizer saved in ``path``."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot load the policy tokenizer from {path}: {e}") from None
    specials = list(tok.all_special_tokens)
    specials += [t.content for t in tok.added_tokens_decoder.values() if t.special]
    images = [getattr(tok, a, None) for a in _PLACEHOLDER_ATTRS]
    return list(dict.fromkeys(specials)), [t for t in images if isinstance(t, str) and t]
