"""LM-RRG: the region queries read the image, start from the LM's encoding, weight regions; ablation; generate."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from rrg_trl.modeling import build_tiny_policy
from rrg_trl.modeling.lmrrg import DEFAULT_REGIONS, LMRRGForConditionalGeneration
from tests.rrg_trl.modeling._helpers import chat, xray


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_policy("lmrrg", seed=0)


def _inputs(processor, seeds=(1,)):
    return processor(
        images=[[xray(s)] for s in seeds], text=[chat(processor)] * len(seeds), return_tensors="pt"
    )


def test_region_queries_read_the_image(tiny):
    model, processor = tiny
    a, b = _inputs(processor, (1,)), _inputs(processor, (2,))
    assert torch.equal(a["input_ids"], b["input_ids"])
    with torch.no_grad():
        la, lb = model(**a).logits, model(**b).logits
        la_again = model(**a).logits
    assert torch.equal(la, la_again)
    assert not torch.allclose(la, lb, atol=1e-4)
    # The image reaches the decoder only through the region tokens: the text-only prefix is unaffected.
    first_image = int((a["input_ids"][0] == model.config.image_token_id).nonzero()[0])
    assert torch.allclose(la[:, :first_image], lb[:, :first_image], atol=1e-6)
    # Every region token depends on the pixels (gradient flows back to them).
    pixels = a["pixel_values"].clone().requires_grad_(True)
    tokens, weights = model.model.get_image_features(pixels)
    assert tokens.shape == (1, len(DEFAULT_REGIONS), model.config.text_config.hidden_size)
    for region in range(tokens.shape[1]):
        (grad,) = torch.autograd.grad(tokens[0, region].sum(), pixels, retain_graph=True)
        assert grad.abs().sum() > 0


def test_region_weighting_is_learned_and_image_conditioned(tiny):
    model, processor = tiny
    pixels = _inputs(processor, (1, 2))["pixel_values"]
    n = len(DEFAULT_REGIONS)
    extractor = model.model.region_extractor
    saved = {name: p.detach().clone() for name, p in extractor.named_parameters()}
    with torch.no_grad():
        try:
            _, uniform = model.model.get_image_features(pixels)
            extractor.region_logits[6] = 2.0  # a learned prior on the cardiac silhouette
            _, prior = model.model.get_image_features(pixels)
            torch.nn.init.normal_(extractor.region_scorer.weight, std=1.0)
            _, conditioned = model.model.get_image_features(pixels)
        finally:
            for name, p in extractor.named_parameters():
                p.copy_(saved[name])
    assert uniform.shape == (2, n) and torch.allclose(uniform, torch.ones_like(uniform))  # uniform at init
    expected = torch.tensor(2.0).exp() / (torch.tensor(2.0).exp() + n - 1) * n
    assert torch.allclose(prior[:, 6], expected.expand(2)) and (prior.argmax(-1) == 6).all()
    assert torch.allclose(conditioned.sum(-1), torch.full((2,), float(n)))
    assert not torch.allclose(conditioned[0], conditioned[1], atol=1e-4)  # depends on the image


@pytest.mark.parametrize("source", ["lm_hidden", "lm_embeddings"])
def test_queries_are_initialised_from_the_lm_encoding(tiny, source):
    model, processor = tiny
    tokenizer, lm = processor.tokenizer, model.model.language_model
    expected = []
    with torch.no_grad():
        for _, text in DEFAULT_REGIONS:  # one description at a time: no padding involved
            ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])
            states = (
                lm.get_input_embeddings()(ids)
                if source == "lm_embeddings"
                else lm(input_ids=ids).last_hidden_state
            )
            mean = states[0].mean(0)
            expected.append(mean / mean.pow(2).mean().sqrt())
    expected = torch.stack(expected)
    encoded = model.model.encode_region_descriptions(tokenizer, source)
    assert torch.allclose(encoded, expected, atol=1e-5)
    if source == "lm_hidden":  # what the builder wrote into the model (config default)
        scale = model.config.region_query_scale  # the tiny kit's: 0.02
        assert scale == 0.02
        assert torch.allclose(model.model.region_extractor.queries, expected * scale, atol=1e-6)
    # The two sources, and different regions, really differ.
    other = model.model.encode_region_descriptions(
        tokenizer, "lm_embeddings" if source == "lm_hidden" else "lm_hidden"
    )
    assert not torch.allclose(encoded, other, atol=1e-3)
    distances = torch.cdist(encoded, encoded) + torch.eye(len(DEFAULT_REGIONS)) * 1e3
    assert distances.min() > 0.1  # every region gets its own query


def test_random_query_init_is_not_the_lm_encoding():
    model, processor = build_tiny_policy("lmrrg", seed=0)
    from rrg_trl.modeling.lmrrg import build_lmrrg

    random_model, _ = build_lmrrg(
        processor.tokenizer,
        model.config.vision_config.to_dict(),
        model.config.text_config.to_dict(),
        image_size=32,
        region_query_init="random",
    )
    encoding = random_model.model.encode_region_descriptions(processor.tokenizer, "lm_hidden")
    assert not torch.allclose(random_model.model.region_extractor.queries, encoding, atol=1e-2)


def test_ablation_without_regions(tmp_path):
    model, processor = build_tiny_policy("lmrrg", seed=0)
    from rrg_trl.modeling.lmrrg import build_lmrrg

    ablated, ab_processor = build_lmrrg(
        processor.tokenizer,
        model.config.vision_config.to_dict(),
        model.config.text_config.to_dict(),
        image_size=32,
        use_regions=False,
        num_patch_tokens=8,
    )
    assert ablated.model.region_extractor is None and ab_processor.num_image_tokens == 8
    assert not any("region" in n for n, _ in ablated.named_parameters())
    a, b = _inputs(ab_processor, (1,)), _inputs(ab_processor, (2,))
    assert int((a["input_ids"] == ablated.config.image_token_id).sum()) == 8
    with torch.no_grad():
        out = ablated(**a)
        assert out.region_weights is None
        assert not torch.allclose(out.logits, ablated(**b).logits, atol=1e-4)
    ablated.save_pretrained(tmp_path)
    ab_processor.save_pretrained(tmp_path)
    reloaded = AutoModelForImageTextToText.from_pretrained(tmp_path)
    assert (
        reloaded.config.use_regions is False and AutoProcessor.from_pretrained(tmp_path).num_image_tokens == 8
    )
    with torch.no_grad():
        assert torch.allclose(reloaded(**a).logits, out.logits, atol=1e-6)


def test_save_load_round_trip_keeps_queries_and_logits(tiny, tmp_path):
    model, processor = tiny
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    reloaded = AutoModelForImageTextToText.from_pretrained(tmp_path)
    assert isinstance(reloaded, LMRRGForConditionalGeneration)
    assert torch.equal(reloaded.model.region_extractor.queries, model.model.region_extractor.queries)
    inputs = _inputs(AutoProcessor.from_pretrained(tmp_path), (3, 4))
    with torch.no_grad():
        assert torch.allclose(reloaded(**inputs).logits, model(**inputs).logits, atol=1e-6)


def test_generate_matches_greedy_forward(tiny):
    model, processor = tiny
    inputs = _inputs(processor, (5,))
    with torch.no_grad():
        generated = model.generate(**inputs, max_new_tokens=4, do_sample=False, eos_token_id=None)
        new = generated[:, inputs["input_ids"].shape[1] :]
        # Greedy decoding with the KV cache equals re-running the full forward at each step.
        ids = inputs["input_ids"]
        for step in range(new.shape[1]):
            logits = model(input_ids=ids, pixel_values=inputs["pixel_values"]).logits
            next_id = logits[:, -1].argmax(-1, keepdim=True)
            assert torch.equal(next_id, new[:, step : step + 1])
            ids = torch.cat([ids, next_id], dim=1)


def test_labels_give_a_loss_and_gradients_reach_the_regions(tiny):
    model, processor = tiny
    inputs = processor(
        images=[[xray(6)]], text=[chat(processor, "The lungs are clear.")], return_tensors="pt"
    )
    out = model(**inputs, labels=inputs["input_ids"])
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert model.model.region_extractor.queries.grad.abs().sum() > 0
    assert model.model.vision_tower.get_input_embeddings().weight.grad.abs().sum() > 0
    model.zero_grad()


def test_placeholder_errors(tiny):
    model, processor = tiny
    inputs = _inputs(processor, (1,))
    ids = inputs["input_ids"].clone()
    ids[0, int((ids[0] == model.config.image_token_id).nonzero()[0])] = processor.tokenizer.pad_token_id
    with pytest.raises(ValueError, match="hold 14 image placeholder tokens but 1 image"):
        model(input_ids=ids, pixel_values=inputs["pixel_values"])
    with pytest.raises(ValueError, match="contain image placeholder tokens but no pixel_values"):
        model(input_ids=inputs["input_ids"])
    with pytest.raises(ValueError, match="exactly one of input_ids or inputs_embeds"):
        model(pixel_values=inputs["pixel_values"])


def test_config_rejects_inconsistent_regions(tiny):
    from rrg_trl.modeling import LMRRGConfig

    text = tiny[0].config.text_config.to_dict()
    with pytest.raises(ValueError, match="2 region_names but 1 region_descriptions"):
        LMRRGConfig(text_config=text, region_names=["a", "b"], region_descriptions=["x"])
    with pytest.raises(ValueError, match=r"region_descriptions\[1\] \('b'\) is empty"):
        LMRRGConfig(text_config=text, region_names=["a", "b"], region_descriptions=["x", " "])
    with pytest.raises(ValueError, match="region_num_heads=3 does not divide the text hidden size 32"):
        LMRRGConfig(text_config=text, region_num_heads=3)


@pytest.mark.parametrize(
    ("vision_config", "extra"),
    [
        ({"model_type": "vit", "image_size": 32, "patch_size": 8}, {}),
        (
            {"model_type": "clip_vision_model", "image_size": 32, "patch_size": 8},
            {"vision_feature_layer": -2},
        ),
        ({"model_type": "resnet", "embedding_size": 16, "hidden_sizes": [16, 32], "depths": [1, 1]}, {}),
    ],
    ids=["vit", "clip-layer-2", "resnet"],
)
def test_any_vision_backbone_and_no_weighting(tiny, vision_config, extra):
    from rrg_trl.modeling.lmrrg import build_lmrrg

    if vision_config["model_type"] != "resnet":
        vision_config = {
            **vision_config,
            "hidden_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 64,
        }
    model, processor = build_lmrrg(
        tiny[1].tokenizer,
        vision_config,
        tiny[0].config.text_config.to_dict(),
        image_size=32,
        use_region_weighting=False,
        **extra,
    )
    assert not hasattr(model.model.region_extractor, "region_logits")
    with torch.no_grad():
        a, b = model(**_inputs(processor, (1,))), model(**_inputs(processor, (2,)))
    assert a.region_weights is None
    assert not torch.allclose(a.logits, b.logits, atol=1e-4)
