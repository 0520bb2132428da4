"""The adapter-chain walk shared by the stages and evaluation: order, absolute paths and the errors."""

from __future__ import annotations

import json

import pytest

from rrg_trl.modeling.adapters import adapter_base, adapter_chain, is_adapter_dir, split_adapters


def _adapter_dir(path, base):
    """An adapter directory as PEFT writes its config (the walk reads nothing else)."""
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base}))
    return path


def test_chain_from_the_base_up_with_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sft = _adapter_dir(tmp_path / "sft", "org/full-model")
    rl = _adapter_dir(tmp_path / "rl", "sft")  # a relative base, as a stage run from tmp_path would record
    assert split_adapters("rl") == ("org/full-model", [sft.resolve(), rl.resolve()])
    assert adapter_chain(rl) == [sft.resolve(), rl.resolve()] and all(
        p.is_absolute() for p in adapter_chain(rl)
    )
    assert split_adapters("org/full-model") == ("org/full-model", []) and adapter_chain(tmp_path) == []
    assert is_adapter_dir(sft) and not is_adapter_dir(tmp_path) and adapter_base(rl) == "sft"


def test_missing_base_and_cycle_are_named(tmp_path):
    orphan = _adapter_dir(tmp_path / "orphan", None)
    with pytest.raises(ValueError, match="names no base_model_name_or_path.*adapter_path"):
        split_adapters(orphan)
    _adapter_dir(tmp_path / "a", str(tmp_path / "b"))
    _adapter_dir(tmp_path / "b", str(tmp_path / "a"))
    with pytest.raises(ValueError, match="longer than 8 directories: a cycle"):
        adapter_chain(tmp_path / "a")
