"""Configuration of LM-RRG (see :mod:`rrg_trl.modeling.lmrrg.modeling_lmrrg` for the model)."""

from __future__ import annotations

from typing import ClassVar, Literal

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

# Anatomical regions of a frontal chest radiograph and the text the language model encodes to initialise
# each region's query. The list follows the structure radiologists report in (lung zones, heart,
# mediastinum, hila, pleura, diaphragm, bones, devices); the wording is ours.
DEFAULT_REGIONS: tuple[tuple[str, str], ...] = (
    (
        "right upper lung zone",
        "the right upper lung zone, the apex and upper third of the right lung above the second anterior rib",
    ),
    (
        "right middle lung zone",
        "the right middle lung zone, the middle third of the right lung between the second "
        "and fourth anterior ribs",
    ),
    (
        "right lower lung zone",
        "the right lower lung zone, the lower third of the right lung above the right "
        "hemidiaphragm, the right lung base",
    ),
    (
        "left upper lung zone",
        "the left upper lung zone, the apex and upper third of the left lung above the second anterior rib",
    ),
    (
        "left middle lung zone",
        "the left middle lung zone, the middle third of the left lung including the lingula",
    ),
    (
        "left lower lung zone",
        "the left lower lung zone, the lower third of the left lung behind the heart, the left lung base",
    ),
    (
        "cardiac silhouette",
        "the cardiac silhouette, the outline and size of the heart, cardiomegaly or a normal heart size",
    ),
    (
        "mediastinum",
        "the mediastinum, the central chest between the lungs with the aorta and the superior "
        "mediastinal contour",
    ),
    (
        "right hilum",
        "the right hilum, the right pulmonary artery and main bronchus at the root of the right lung",
    ),
    (
        "left hilum",
        "the left hilum, the left pulmonary artery and main bronchus at the root of the left lung",
    ),
    (
        "pleura and costophrenic angles",
        "the pleura and the costophrenic angles, where a pleural effusion, "
        "pneumothorax or pleural thickening is seen",
    ),
    ("diaphragm", "the hemidiaphragms and the region under the diaphragm, where free air may be seen"),
    (
        "bones",
        "the bones of the thorax, the ribs, clavicles, shoulders and thoracic spine, fractures and "
        "degenerative changes",
    ),
    (
        "support devices",
        "support devices and lines, endotracheal and nasogastric tubes, central venous "
        "catheters, pacemakers and sternotomy wires",
    ),
    ("trachea", "the trachea and the carina, the midline airway above the bifurcation of the main bronchi"),
)


@strict
class LMRRGConfig(PreTrainedConfig):
    r"""
    vision_config (`dict` or `PreTrainedConfig`): any Hugging Face vision backbone config (built with ``AutoModel``).
    text_config (`dict` or `PreTrainedConfig`): any Hugging Face decoder config (the base model is built with
        ``AutoModel``; LM-RRG adds the LM head).
    image_token_id (`int`): id of the image placeholder; the processor expands it to ``num_image_tokens`` tokens.
    region_names, region_descriptions (`list[str]`): one query per region; the descriptions are what the language
        model encodes to initialise the queries. Default: :data:`DEFAULT_REGIONS`.
    use_regions (`bool`): ``False`` is the ablation: the LM reads ``num_patch_tokens`` average-pooled patch tokens
        instead of the region tokens.
    use_region_weighting (`bool`): the learned, image-conditioned weighting of the region tokens.
    region_query_init (`str`): what the builders initialise the queries from: the LM's final hidden states
        (``"lm_hidden"``), its input embeddings (``"lm_embeddings"``) or nothing (``"random"``).
    region_query_scale (`float`): the RMS at which the builders write the LM's encoding into the queries. At 1 the
        queries swamp the cross-attention's small random first read of the image, and a briefly trained model
        (the tiny CPU kit) learns the region tokens as fixed prompts that ignore the X-ray; the tiny kit uses 0.02.
    region_num_layers, region_num_heads: depth and heads of the region cross-attention.
    vision_feature_layer (`int`): which vision hidden state the regions read (-1: the last one).
    """

    model_type = "lmrrg"
    # Not remote code: an empty map (not saved) so that TRL's create_model_from_path, which reads
    # `config.auto_map` for every architecture outside `transformers`, falls back to AutoModelForCausalLM.
    auto_map: ClassVar[dict] = {}
    sub_configs_defaults = {
        "vision_config": SubConfigSpec(config_class=AutoConfig, model_type="siglip_vision_model"),
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama"),
    }

    vision_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    image_token_id: int = 0
    region_names: list[str] | None = None
    region_descriptions: list[str] | None = None
    use_regions: bool = True
    use_region_weighting: bool = True
    region_query_init: Literal["lm_hidden", "lm_embeddings", "random"] = "lm_hidden"
    region_query_scale: float = 1.0
    region_num_layers: int = 1
    region_num_heads: int = 4
    num_patch_tokens: int = 16
    vision_feature_layer: int = -1
    projector_hidden_act: str = "gelu"
    initializer_range: float = 0.02
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        if self.region_names is None and self.region_descriptions is None:
            self.region_names = [name for name, _ in DEFAULT_REGIONS]
            self.region_descriptions = [text for _, text in DEFAULT_REGIONS]
        super().__post_init__(**kwargs)
        # Checked here rather than in a strict validator so that bad values raise a plain ValueError.
        names, texts = self.region_names or [], self.region_descriptions or []
        if len(names) != len(texts):
            raise ValueError(
                f"LMRRGConfig: {len(names)} region_names but {len(texts)} region_descriptions; give one description "
                "per region"
            )
        if self.use_regions and not names:
            raise ValueError("LMRRGConfig: use_regions=True needs at least one region")
        for i, text in enumerate(texts):
            if not text or not text.strip():
                raise ValueError(f"LMRRGConfig: region_descriptions[{i}] ({names[i]!r}) is empty")
        hidden = self.text_config.hidden_size
        if hidden % self.region_num_heads:
            raise ValueError(
                f"LMRRGConfig: region_num_heads={self.region_num_heads} does not divide the text hidden size {hidden}"
            )
        if not self.region_query_scale > 0:
            raise ValueError(f"LMRRGConfig: region_query_scale must be > 0, got {self.region_query_scale}")
        if self.num_patch_tokens < 1 or self.region_num_layers < 1:
            raise ValueError("LMRRGConfig: num_patch_tokens and region_num_layers must be >= 1")

    @property
    def num_image_tokens(self) -> int:
        """How many placeholder tokens one image occupies in the LM prompt."""
        return len(self.region_names) if self.use_regions else self.num_patch_tokens
