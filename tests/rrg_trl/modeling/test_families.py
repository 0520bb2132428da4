"""Family layout: decoder / vision tower paths for the LoRA targets, freezing and quantisation."""

from __future__ import annotations

import pytest
from transformers import AutoModelForImageTextToText

from rrg_trl.modeling import FAMILIES, family_spec, freeze_vision_tower
from rrg_trl.modeling.families import FAMILY_SPECS, FamilySpec


@pytest.mark.parametrize("family", FAMILIES)
def test_spec_paths_exist_and_freezing_covers_the_tower(tiny_policy, family):
    model = AutoModelForImageTextToText.from_pretrained(tiny_policy(family))
    spec = family_spec(model)
    assert spec is FAMILY_SPECS[model.config.model_type]
    for path in (spec.language_model, *spec.vision_modules, *spec.bridge_modules):
        model.get_submodule(path)
    assert model.get_submodule(spec.language_model) is model.get_decoder()
    frozen = freeze_vision_tower(model)
    tower_params = sum(
        p.numel() for path in spec.vision_modules for p in model.get_submodule(path).parameters()
    )
    assert frozen == tower_params > 0
    assert all(
        p.requires_grad != any(n.startswith(v + ".") for v in spec.vision_modules)
        for n, p in model.named_parameters()
    )


def test_unknown_family_is_inferred(tiny_policy, monkeypatch):
    model = AutoModelForImageTextToText.from_pretrained(tiny_policy("llava"))
    monkeypatch.delitem(FAMILY_SPECS, "llava")
    spec = family_spec(model)
    assert spec == FamilySpec("model.language_model", ("model.vision_tower",))


def test_freezing_a_model_without_tower_fails_clearly(tiny_policy):
    model = AutoModelForImageTextToText.from_pretrained(tiny_policy("llava"))
    with pytest.raises(ValueError, match="no vision-tower parameters found under"):
        freeze_vision_tower(model, FamilySpec("model.language_model", ("model.no_such_tower",)))
