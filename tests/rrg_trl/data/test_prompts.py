import pytest

from rrg_trl.data.prompts import DEFAULT_SYSTEM_PROMPT, build_prompt, completion_messages, default_instruction


def test_system_user_messages_with_optional_indication():
    messages = build_prompt("Describe.", indication="  Cough,\n fever ")
    assert messages == [
        {"role": "system", "content": DEFAULT_SYSTEM_PROMPT},
        {"role": "user", "content": "Describe.\nIndication: Cough, fever"},
    ]
    assert build_prompt("Describe.", system_prompt=None, indication="") == [
        {"role": "user", "content": "Describe."}
    ]


def test_defaults_and_errors():
    assert "IMPRESSION" in default_instruction("impression")
    assert "FINDINGS and IMPRESSION" in default_instruction("both")
    assert completion_messages("Clear.") == [{"role": "assistant", "content": "Clear."}]
    with pytest.raises(ValueError, match="section"):
        default_instruction("history")
    with pytest.raises(ValueError, match="instruction"):
        build_prompt("  ")
