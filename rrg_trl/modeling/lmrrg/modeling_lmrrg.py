"""LM-RRG: a region-aware vision encoder feeding an LLM decoder that writes the radiology report.

After Zhou et al., "Large Model driven Radiology Report Generation with Clinical Quality Reinforcement
Learning" (arXiv:2403.06728). What the paper specifies (from its abstract; the full text was not available
offline while this was written, so the mechanisms below are our reading and our choices):

* an LLM-driven feature extractor that analyses different regions of the chest X-ray and emphasises the
  regions with medical significance;
* a multimodal report generator built on the large model's decoder, prompted with the visual features and a
  textual instruction, writing the report auto-regressively;
* clinical-quality reinforcement learning with RadCliQ as the reward (done by the trainers, not here).

Our implementation of those two model parts:

1. ``LMRRGRegionExtractor``: patch features of any Hugging Face vision backbone are projected into the LM's
   hidden size and read by one learned query per anatomical region (:data:`DEFAULT_REGIONS`) through
   pre-norm cross-attention blocks. The queries are *initialised from the language model's own encoding* of
   each region's text description (mean of the LM's final hidden states, or of its input embeddings, over
   the description tokens, rescaled to unit RMS) by :meth:`LMRRGModel.init_region_queries_from_text`, so the
   extractor starts from the LM's notion of "right lower lung zone" rather than from noise. A learned,
   image-conditioned weighting (a per-region prior logit plus a score of each region feature, softmax over
   regions, scaled so that the mean weight is 1) emphasises the regions that matter for this image; it
   starts uniform.
2. The weighted region tokens go through a two-layer projector and replace the image placeholder tokens in
   the prompt (the processor expands one ``<image>`` to ``num_image_tokens`` placeholders, as LLaVA does),
   so the instruction and the region tokens together form the prompt of the decoder (any HF causal LM).

Ablation (``use_regions=False``): the decoder reads ``num_patch_tokens`` average-pooled patch tokens instead.

The model is a regular ``transformers`` model: ``base_model_prefix = "model"`` and ``LMRRGModel.forward``
returns the decoder's ``last_hidden_state`` aligned with ``input_ids``, which is what TRL's fused LM head
(``model.model(...)`` + ``model.get_output_embeddings()``) relies on during GRPO.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.modeling_utils import slice_logits_to_keep

from rrg_trl.modeling.lmrrg.configuration_lmrrg import LMRRGConfig

# Inputs other VLM processors produce that TRL may forward generically; LM-RRG does not use them.
_IGNORED_MM_INPUTS = ("mm_token_type_ids", "token_type_ids")


@dataclass
class LMRRGModelOutputWithPast(BaseModelOutputWithPast):
    """Decoder outputs plus ``region_weights`` (batch_images, num_regions) when regions are used."""

    region_weights: torch.FloatTensor | None = None


@dataclass
class LMRRGCausalLMOutputWithPast(CausalLMOutputWithPast):
    region_weights: torch.FloatTensor | None = None


class LMRRGCrossAttentionBlock(nn.Module):
    """Pre-norm block: queries attend to the image tokens, then a feed-forward layer."""

    def __init__(self, hidden_size: int, num_heads: int, act: str):
        super().__init__()
        self.num_heads = num_heads
        self.query_norm = nn.LayerNorm(hidden_size)
        self.key_norm = nn.LayerNorm(hidden_size)
        self.q_proj = nn.Linear(hidden_size, hidden_size)
        self.k_proj = nn.Linear(hidden_size, hidden_size)
        self.v_proj = nn.Linear(hidden_size, hidden_size)
        self.o_proj = nn.Linear(hidden_size, hidden_size)
        self.ffn_norm = nn.LayerNorm(hidden_size)
        self.ffn = nn.Sequential(
            nn.Linear(hidden_size, 4 * hidden_size), ACT2FN[act], nn.Linear(4 * hidden_size, hidden_size)
        )

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, hidden = x.shape
        return x.view(batch, length, self.num_heads, hidden // self.num_heads).transpose(1, 2)

    def forward(self, queries: torch.Tensor, image_tokens: torch.Tensor) -> torch.Tensor:
        q = self._heads(self.q_proj(self.query_norm(queries)))
        kv = self.key_norm(image_tokens)
        k, v = self._heads(self.k_proj(kv)), self._heads(self.v_proj(kv))
        attended = F.scaled_dot_product_attention(q, k, v)
        attended = attended.transpose(1, 2).reshape(queries.shape)
        queries = queries + self.o_proj(attended)
        return queries + self.ffn(self.ffn_norm(queries))


class LMRRGRegionExtractor(nn.Module):
    """Anatomical region queries reading the projected patch features, with a learned region weighting."""

    def __init__(self, config: LMRRGConfig):
        super().__init__()
        hidden = config.text_config.hidden_size
        self.num_regions = len(config.region_names)
        self.use_weighting = config.use_region_weighting
        self.queries = nn.Parameter(torch.empty(self.num_regions, hidden))
        self.blocks = nn.ModuleList(
            LMRRGCrossAttentionBlock(hidden, config.region_num_heads, config.projector_hidden_act)
            for _ in range(config.region_num_layers)
        )
        self.output_norm = nn.LayerNorm(hidden)
        if self.use_weighting:
            self.region_logits = nn.Parameter(torch.zeros(self.num_regions))  # learned per-region prior
            self.region_scorer = nn.Linear(hidden, 1)  # image-conditioned significance

    def forward(self, image_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        regions = self.queries.unsqueeze(0).expand(image_tokens.size(0), -1, -1).to(image_tokens.dtype)
        for block in self.blocks:
            regions = block(regions, image_tokens)
        regions = self.output_norm(regions)
        if not self.use_weighting:
            return regions, None
        scores = self.region_logits.to(regions.dtype) + self.region_scorer(regions).squeeze(-1)
        weights = scores.softmax(dim=-1) * self.num_regions  # mean weight 1: uniform at initialisation
        return regions * weights.unsqueeze(-1), weights


class LMRRGVisionProjection(nn.Module):
    """LayerNorm + linear from the vision backbone's width into the decoder's hidden size."""

    def __init__(self, vision_hidden: int, hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(vision_hidden)
        self.linear = nn.Linear(vision_hidden, hidden)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(self.norm(features.to(self.linear.weight.dtype)))


class LMRRGProjector(nn.Module):
    """Two-layer MLP from region (or patch) tokens to the decoder's input embedding space."""

    def __init__(self, config: LMRRGConfig):
        super().__init__()
        hidden = config.text_config.hidden_size
        self.linear_1 = nn.Linear(hidden, hidden)
        self.act = ACT2FN[config.projector_hidden_act]
        self.linear_2 = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(x)))


class LMRRGPreTrainedModel(PreTrainedModel):
    config: LMRRGConfig
    config_class = LMRRGConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    input_modalities = ("image", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _no_split_modules = ["LMRRGCrossAttentionBlock"]

    def _init_weights(self, module):
        super()._init_weights(module)  # Linear / LayerNorm / Embedding
        if isinstance(module, LMRRGRegionExtractor):
            # Random start; the builders overwrite it with the LM's encoding of the region descriptions.
            init.normal_(module.queries, mean=0.0, std=1.0)
            if module.use_weighting:
                init.zeros_(module.region_logits)
                init.zeros_(module.region_scorer.weight)
                init.zeros_(module.region_scorer.bias)


class LMRRGModel(LMRRGPreTrainedModel):
    """Vision backbone + region extractor + decoder base model (no LM head)."""

    def __init__(self, config: LMRRGConfig):
        super().__init__(config)
        self.vision_tower = AutoModel.from_config(config.vision_config)
        vision_hidden = _vision_hidden_size(config.vision_config)
        self.vision_projection = LMRRGVisionProjection(vision_hidden, config.text_config.hidden_size)
        self.region_extractor = LMRRGRegionExtractor(config) if config.use_regions else None
        self.multi_modal_projector = LMRRGProjector(config)
        self.language_model = AutoModel.from_config(config.text_config)
        self.post_init()

    def get_input_embeddings(self):
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.language_model.set_input_embeddings(value)

    def get_decoder(self):
        return self.language_model

    def get_image_features(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Image tokens for the decoder, ``(num_images, num_image_tokens, hidden)``, and the region weights."""
        if pixel_values.ndim != 4:
            raise ValueError(
                f"pixel_values must be (num_images, channels, height, width), got {tuple(pixel_values.shape)}"
            )
        layer = self.config.vision_feature_layer
        vision_dtype = next(self.vision_tower.parameters()).dtype
        outputs = self.vision_tower(
            pixel_values=pixel_values.to(vision_dtype), output_hidden_states=layer != -1, return_dict=True
        )
        features = outputs.last_hidden_state if layer == -1 else outputs.hidden_states[layer]
        if features.ndim == 4:  # convolutional backbones: (B, C, H, W) feature maps -> (B, H*W, C)
            features = features.flatten(2).transpose(1, 2)
        tokens = self.vision_projection(features)
        weights = None
        if self.region_extractor is not None:
            tokens, weights = self.region_extractor(tokens)
        else:
            tokens = F.adaptive_avg_pool1d(tokens.transpose(1, 2), self.config.num_patch_tokens).transpose(
                1, 2
            )
        return self.multi_modal_projector(tokens), weights

    def _merge_image_tokens(self, input_ids, inputs_embeds, image_features):
        if input_ids is None:
            image_embed = self.get_input_embeddings()(
                torch.tensor(self.config.image_token_id, device=inputs_embeds.device)
            )
            mask = (inputs_embeds == image_embed).all(-1)
        else:
            mask = input_ids == self.config.image_token_id
        n_tokens, n_features = int(mask.sum()), image_features.shape[0] * image_features.shape[1]
        if n_tokens != n_features:
            raise ValueError(
                f"LM-RRG: the prompts hold {n_tokens} image placeholder tokens but {image_features.shape[0]} image(s) "
                f"give {n_features} tokens ({image_features.shape[1]} per image); build the prompts with "
                "LMRRGProcessor, which expands each image placeholder, and do not truncate them"
            )
        mask = mask.unsqueeze(-1).expand_as(inputs_embeds)
        return inputs_embeds.masked_scatter(mask, image_features.to(inputs_embeds.dtype).reshape(-1))

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.FloatTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        cache=None,
        **kwargs,
    ) -> LMRRGModelOutputWithPast:
        """The decoder's output on the prompt with the image tokens merged in; ``attention_mask``,
        ``position_ids`` and the other ``kwargs`` go to the decoder as they are."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("LM-RRG: pass exactly one of input_ids or inputs_embeds")
        for key in _IGNORED_MM_INPUTS:
            kwargs.pop(key, None)
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)
        region_weights = None
        if pixel_values is not None:
            image_features, region_weights = self.get_image_features(pixel_values)
            inputs_embeds = self._merge_image_tokens(input_ids, inputs_embeds, image_features)
        elif input_ids is not None and cache is None and (input_ids == self.config.image_token_id).any():
            raise ValueError(
                "LM-RRG: the prompts contain image placeholder tokens but no pixel_values were given"
            )
        outputs = self.language_model(
            cache=cache,
            inputs_embeds=inputs_embeds,
            **{**kwargs, "return_dict": True},
        )
        return LMRRGModelOutputWithPast(
            last_hidden_state=outputs.last_hidden_state,
            cache=getattr(outputs, "cache", None),
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            region_weights=region_weights,
        )

    @torch.no_grad()
    def encode_region_descriptions(self, tokenizer, source: str | None = None) -> torch.Tensor:
        """The LM's encoding of each region description: ``(num_regions, hidden)``, rows at unit RMS.

        ``source="lm_hidden"`` averages the decoder's final hidden states over the description tokens,
        ``"lm_embeddings"`` its input embeddings.
        """
        source = source or self.config.region_query_init
        if source not in ("lm_hidden", "lm_embeddings"):
            raise ValueError(f"region query source must be 'lm_hidden' or 'lm_embeddings', got {source!r}")
        texts = list(self.config.region_descriptions)
        ids = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
        for i, seq in enumerate(ids):
            if not seq:
                raise ValueError(f"region description {i} ({texts[i]!r}) tokenizes to nothing")
        device = self.get_input_embeddings().weight.device
        length = max(len(seq) for seq in ids)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        input_ids = torch.tensor([seq + [pad] * (length - len(seq)) for seq in ids], device=device)
        mask = torch.tensor([[1] * len(seq) + [0] * (length - len(seq)) for seq in ids], device=device)
        if source == "lm_embeddings":
            states = self.get_input_embeddings()(input_ids)
        else:
            states = self.language_model(
                input_ids=input_ids, attention_mask=mask, use_cache=False
            ).last_hidden_state
        weights = mask.unsqueeze(-1).to(states.dtype)
        mean = (states * weights).sum(1) / weights.sum(1)
        return mean / mean.float().pow(2).mean(-1, keepdim=True).sqrt().clamp_min(1e-6).to(mean.dtype)

    @torch.no_grad()
    def init_region_queries_from_text(self, tokenizer, source: str | None = None) -> torch.Tensor:
        """Overwrite the region queries with the LM's encoding of the region descriptions, at RMS
        ``config.region_query_scale`` (and return the unit-RMS encoding)."""
        if self.region_extractor is None:
            raise ValueError("LM-RRG: use_regions=False has no region queries to initialise")
        encoded = self.encode_region_descriptions(tokenizer, source)
        scaled = encoded * self.config.region_query_scale
        self.region_extractor.queries.copy_(scaled.to(self.region_extractor.queries.dtype))
        return encoded


class LMRRGForConditionalGeneration(LMRRGPreTrainedModel, GenerationMixin):
    """LM-RRG with the decoder's LM head: ``forward`` (loss with ``labels``) and ``generate``."""

    _tied_weights_keys = None

    def __init__(self, config: LMRRGConfig):
        super().__init__(config)
        self.model = LMRRGModel(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self):
        return self.model.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def set_output_embeddings(self, new_embeddings):
        self.lm_head = new_embeddings

    def get_decoder(self):
        return self.model.get_decoder()

    def get_image_features(self, pixel_values: torch.Tensor):
        return self.model.get_image_features(pixel_values)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.FloatTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache=None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> LMRRGCausalLMOutputWithPast:
        outputs = self.model(
            input_ids=input_ids,
            pixel_values=pixel_values,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            **kwargs,
        )
        hidden_states = slice_logits_to_keep(outputs.last_hidden_state, logits_to_keep)
        logits = self.lm_head(hidden_states)
        loss = None
        if labels is not None:
            loss = self.loss_function(
                logits=logits, labels=labels, vocab_size=self.config.text_config.vocab_size, **kwargs
            )
        return LMRRGCausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            region_weights=outputs.region_weights,
        )


def _vision_hidden_size(vision_config) -> int:
    """Feature width of a vision backbone config (transformers' ViTs say hidden_size; CNNs hidden_sizes)."""
    if getattr(vision_config, "hidden_size", None):
        return vision_config.hidden_size
    if getattr(vision_config, "hidden_sizes", None):
        return vision_config.hidden_sizes[-1]
    raise ValueError(f"cannot tell the feature width of vision config {type(vision_config).__name__}")
