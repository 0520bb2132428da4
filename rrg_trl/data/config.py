"""One entry point for the training stages: a flat ``DataConfig`` (YAML- and ``TrlParser``-friendly).

Field names never collide with ``GRPOConfig`` / ``SFTConfig`` / ``ModelConfig`` / ``ScriptArguments``,
so a stage may put ``DataConfig`` straight into its ``TrlParser((..., DataConfig))`` tuple, or read a
``data:`` mapping from its recipe and call ``load_dataset_from_config(mapping)``. Example recipe block::

    dataset: iu_xray                 # iu_xray | mimic_cxr | synthetic
    annotation_path: ../shared/data/iu_xray/r2gen_annotation.json
    image_root: /data/iu_xray/images
    section: findings                # findings | impression | both
    cleaning: r2gen                  # raw | r2gen (R2Gen-compatible references)
    image_size: 448
    max_samples: 1000                # per split
    on_error: skip                   # raise | skip (counted and logged)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from datasets import Dataset, DatasetDict

from rrg_trl.data.builder import normalise_split
from rrg_trl.data.errors import ProblemLog
from rrg_trl.data.images import DEFAULT_IMAGE_SIZE
from rrg_trl.data.iu_xray import load_iu_xray
from rrg_trl.data.mimic_cxr import load_mimic_cxr, load_mimic_cxr_annotation
from rrg_trl.data.prompts import DEFAULT_SYSTEM_PROMPT
from rrg_trl.data.r2gen_annotation import annotation_splits
from rrg_trl.data.synthetic import load_synthetic

DATASETS = ("iu_xray", "mimic_cxr", "synthetic")


def _help(text: str) -> dict:
    return {"help": text}


@dataclass
class DataConfig:
    """Which reports and images to train / evaluate on, and how to turn them into TRL rows."""

    dataset: str = field(default="synthetic", metadata=_help("iu_xray, mimic_cxr or synthetic."))
    annotation_path: str | None = field(
        default=None,
        metadata=_help("R2Gen annotation.json (IU X-ray or MIMIC-CXR); for synthetic: real IU text."),
    )
    openi_path: str | None = field(
        default=None, metadata=_help("IU X-ray Open-i archive NLMCXR_reports.tgz (impression, indication).")
    )
    image_root: str | None = field(
        default=None, metadata=_help("Image folder: R2Gen images/, NLMCXR_png/, or the MIMIC-CXR-JPG root.")
    )
    reports_root: str | None = field(
        default=None, metadata=_help("MIMIC-CXR: mimic-cxr-reports folder (default: image_root).")
    )
    split_csv: str | None = field(
        default=None, metadata=_help("MIMIC-CXR split CSV (default: in image_root).")
    )
    metadata_csv: str | None = field(
        default=None, metadata=_help("MIMIC-CXR metadata CSV with ViewPosition (default: in image_root).")
    )
    views_csv: str | None = field(
        default=None,
        metadata=_help("IU Open-i: indiana_projections.csv or DICOM metadata CSV (frontal first)."),
    )
    section: str = field(
        default="findings", metadata=_help("Reference section: findings, impression or both.")
    )
    cleaning: str = field(default="raw", metadata=_help("raw, or r2gen for R2Gen-compatible references."))
    deid: str = field(
        default="keep", metadata=_help("De-id tokens (XXXX, ___): keep, drop_token, drop_sentence.")
    )
    max_report_words: int | None = field(
        default=None, metadata=_help("Truncate references to N words (R2Gen: 59 IU / 99 MIMIC).")
    )
    views: str = field(default="frontal", metadata=_help("frontal (one image column) or all (images list)."))
    image_size: int | None = field(
        default=DEFAULT_IMAGE_SIZE, metadata=_help("Square side in pixels; None keeps size.")
    )
    resize_mode: str = field(
        default="pad", metadata=_help("pad (keep aspect, black border), stretch or none.")
    )
    splits: list[str] | None = field(
        default=None, metadata=_help("Splits to load (train, val, test); all if unset.")
    )
    max_samples: int | None = field(default=None, metadata=_help("At most N studies per split."))
    system_prompt: str | None = field(
        default=DEFAULT_SYSTEM_PROMPT, metadata=_help("System message; empty/None for templates without one.")
    )
    instruction: str | None = field(
        default=None, metadata=_help("User instruction; default asks for the chosen section.")
    )
    include_indication: bool = field(
        default=False, metadata=_help("Append the clinical indication to the prompt.")
    )
    on_error: str = field(default="raise", metadata=_help("Bad data: raise, or skip (counted and logged)."))
    check_images: str = field(
        default="open", metadata=_help("Image check at load: none, exists, open (header) or decode (full).")
    )
    one_per_study: bool = field(
        default=False, metadata=_help("MIMIC R2Gen annotation: keep one entry (image) per study.")
    )
    with_completion: bool = field(
        default=False, metadata=_help("Add a conversational 'completion' column (SFT prompt-completion).")
    )
    synthetic_text: str = field(
        default="corpus",
        metadata=_help(
            "synthetic: corpus, findings (structured reports the image fully shows), or iu_xray (real IU text, "
            "synthesized images)."
        ),
    )
    synthetic_num_train: int = field(default=256, metadata=_help("synthetic corpus: train studies."))
    synthetic_num_val: int = field(default=32, metadata=_help("synthetic corpus: val studies."))
    synthetic_num_test: int = field(default=32, metadata=_help("synthetic corpus: test studies."))
    synthetic_seed: int = field(default=0, metadata=_help("synthetic: seed for reports and images."))

    def __post_init__(self):
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        if isinstance(self.splits, str):
            self.splits = [self.splits]
        if self.system_prompt is not None and not self.system_prompt.strip():
            self.system_prompt = None

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> DataConfig:
        """Build from a recipe mapping; unknown keys raise (a typo must not silently use a default)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown data config field(s) {unknown}; known fields: {sorted(known)}")
        return cls(**dict(values))


def load_dataset_from_config(
    config: DataConfig | Mapping[str, Any],
    split: str | None = None,
    problems: ProblemLog | None = None,
) -> DatasetDict | Dataset:
    """Load the configured dataset: a ``DatasetDict`` by split, or one ``Dataset`` when ``split`` is given."""
    if not isinstance(config, DataConfig):
        config = DataConfig.from_dict(config)
    splits = [split] if split is not None else config.splits
    problems = problems or ProblemLog(config.on_error)
    common = dict(
        section=config.section,
        cleaning=config.cleaning,
        deid=config.deid,
        max_report_words=config.max_report_words,
        splits=splits,
        max_samples=config.max_samples,
        system_prompt=config.system_prompt,
        instruction=config.instruction,
        include_indication=config.include_indication,
        image_size=config.image_size,
        resize_mode=config.resize_mode,
        problems=problems,
        with_completion=config.with_completion,
    )
    imaging = dict(views=config.views, check_images=config.check_images)
    if config.dataset == "iu_xray":
        result = load_iu_xray(
            config.image_root,
            config.annotation_path,
            config.openi_path,
            views_csv=config.views_csv,
            **imaging,
            **common,
        )
    elif config.dataset == "mimic_cxr" and config.annotation_path is not None:
        result = load_mimic_cxr_annotation(
            config.annotation_path,
            config.image_root,
            config.reports_root,
            one_per_study=config.one_per_study,
            **imaging,
            **common,
        )
    elif config.dataset == "mimic_cxr":
        result = load_mimic_cxr(
            config.image_root,
            config.reports_root,
            split_csv=config.split_csv,
            metadata_csv=config.metadata_csv,
            **imaging,
            **common,
        )
    else:
        result = load_synthetic(
            text_source=config.synthetic_text,
            num_train=config.synthetic_num_train,
            num_val=config.synthetic_num_val,
            num_test=config.synthetic_num_test,
            seed=config.synthetic_seed,
            annotation_path=config.annotation_path,
            openi_path=config.openi_path,
            **common,
        )
    if split is None:
        return result
    name = normalise_split(split)
    if name not in result:
        hint = (
            "; the Open-i archive alone gives the single split 'all'" if config.dataset == "iu_xray" else ""
        )
        raise ValueError(
            f"split {split!r} has no studies in {config.dataset} ({available_splits(config, result)}){hint}"
        )
    return result[name]


def available_splits(config: DataConfig, loaded: Mapping[str, Any]) -> str:
    """What a user can choose from when a split is missing: the annotation file's own keys when there is one
    (the loaded splits are only those asked for)."""
    if config.annotation_path and config.dataset != "synthetic":
        return f"{config.annotation_path} holds {annotation_splits(config.annotation_path)}"
    return f"it has {sorted(loaded)}"
