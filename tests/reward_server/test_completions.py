"""The completion extractor on hand-written queries (OpenRLHF-built ones: tests/reward_server/integrations)."""

from __future__ import annotations

import pytest

from reward_server.completions import CompletionExtractor, PromptNotFoundError

EX = CompletionExtractor.build()


@pytest.mark.parametrize(
    "tail",
    ["</s>", "<|im_end|>", "<|im_end|><|endoftext|><|endoftext|>", "<|eot_id|>", "<|end_of_text|>",
     "<end_of_turn>\n<eos>", "<|end|>", "<pad><pad><pad>", "<end_of_utterance>", " \n"],
)  # fmt: skip
def test_trailing_stop_texts_are_stripped_by_default(tail):
    assert EX.completion("Report: The lungs are clear." + tail, "Report:") == "The lungs are clear."


def test_stop_texts_inside_the_report_stay():
    assert EX.strip_stop_texts("a <pad> b</s>") == "a <pad> b"


def test_extra_and_policy_stop_texts(tiny_policy):
    assert EX.strip_stop_texts("clear.<|stop|>") == "clear.<|stop|>"
    assert CompletionExtractor.build(["<|stop|>"]).strip_stop_texts("clear.<|stop|>") == "clear."
    policy = CompletionExtractor.build(policy_tokenizer=tiny_policy("gemma3"))
    assert {"<start_of_image>", "<image_soft_token>", "<|im_start|>"} <= set(policy.stop_texts)
    assert "<image_soft_token>" in policy.image_placeholders
    with pytest.raises(ValueError, match="cannot load the policy tokenizer"):
        CompletionExtractor.build(policy_tokenizer="/nonexistent/policy")


@pytest.mark.parametrize(
    ("query", "prompt"),
    [
        # Qwen2-VL: one <|image_pad|> expanded to many
        ("<|im_start|>user\n<|vision_start|>" + "<|image_pad|>" * 9 + "<|vision_end|>Q<|im_end|>\n"
         "<|im_start|>assistant\nThe lungs are clear.<|im_end|>",
         "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Q<|im_end|>\n<|im_start|>assistant\n"),
        # Idefics3: tiles with row markers, two images
        ("User:<fake_token_around_image><row_1_col_1><image><image><fake_token_around_image><global-img><image>"
         "<fake_token_around_image>\nx2:<fake_token_around_image><image><fake_token_around_image>Q<end_of_utterance>"
         "\nAssistant: The lungs are clear.<end_of_utterance>",
         "User:<image>\nx2:<image>Q<end_of_utterance>\nAssistant:"),
        # Gemma 3: newlines around the expansion
        ("<bos><start_of_turn>user\n\n\n<start_of_image>" + "<image_soft_token>" * 5 + "<end_of_image>\n\nQ"
         "<end_of_turn>\n<start_of_turn>model\nThe lungs are clear.<end_of_turn>",
         "<bos><start_of_turn>user\n<start_of_image>Q<end_of_turn>\n<start_of_turn>model\n"),
        # sentencepiece round trip: spaces added around special tokens
        ("<s> [INST] Q [/INST] The lungs are clear.</s>", "<s>[INST] Q [/INST]"),
        # the completion repeats the prompt's tail: the first occurrence after the image is the prompt's
        ("A: <image><image>Assistant: The lungs are clear. Assistant: x", "A: <image>Assistant:"),
    ],
)  # fmt: skip
def test_prompt_end_is_found_past_expansions(query, prompt):
    expected = "The lungs are clear." + (" Assistant: x" if query.endswith(" x") else "")
    assert EX.completion(query, prompt) == expected


@pytest.mark.parametrize(
    ("query", "prompt"),
    [
        ("Q: x A: y", "Q: z"),  # another prompt
        ("USER: <image><image>The lungs", "USER: <image>"),  # ends in an image: its expansion end is unknown
        ("X <image><image>Q A: y", "<image>Q A:"),  # text before the first chunk that is not an expansion
        ("A: <image> lungs Q: y", "A: <image>Q:"),  # words between the image and the next chunk
        ("A: <image>Q", "A: <image>Q: more"),  # query shorter than the prompt
    ],
)
def test_unlocatable_prompt_is_an_error_naming_the_index(query, prompt):
    with pytest.raises(PromptNotFoundError, match=r"query\[3\] does not contain prompts\[3\]"):
        EX.completion(query, prompt, index=3)


def test_batch_checks_items_and_lengths():
    assert EX.completions(["Q: a</s>", "b", "c"], ["Q:", "", " \n"]) == ["a", "b", "c"]
    with pytest.raises(ValueError, match=r"queries\[1\] must be a string"):
        EX.completions(["a", None], ["", ""])
    with pytest.raises(ValueError, match="same length"):
        EX.completions(["a"], ["", ""])
