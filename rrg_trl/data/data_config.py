"""The data settings: one flat ``DataConfig`` (YAML- and ``TrlParser``-friendly), passed down whole to
every loader (``*_records(config, problems)``) and to ``build_dataset_dict(records, config)``.

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

from rrg_trl.data.images import DEFAULT_IMAGE_SIZE
from rrg_trl.data.prompts import DEFAULT_SYSTEM_PROMPT

DATASETS = ("iu_xray", "mimic_cxr", "synthetic")


def field_help(text: str) -> dict:
    """A dataclass field's metadata for TrlParser / argparse help."""
    return {"help": text}


def arg(default: Any, help: str) -> Any:
    """A dataclass field with its TrlParser / argparse help; a list default is copied for each instance."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=field_help(help))
    return field(default=default, metadata=field_help(help))


@dataclass
class DataConfig:
    """Which reports and images to train / evaluate on, and how to turn them into TRL rows."""

    dataset: str = arg("synthetic", "iu_xray, mimic_cxr or synthetic.")
    annotation_path: str | None = arg(
        None, "R2Gen annotation.json (IU X-ray or MIMIC-CXR); for synthetic: real IU text."
    )
    openi_path: str | None = arg(None, "IU X-ray Open-i archive NLMCXR_reports.tgz (impression, indication).")
    image_root: str | None = arg(None, "Image folder: R2Gen images/, NLMCXR_png/, or the MIMIC-CXR-JPG root.")
    reports_root: str | None = arg(None, "MIMIC-CXR: mimic-cxr-reports folder (default: image_root).")
    split_csv: str | None = arg(None, "MIMIC-CXR split CSV (default: in image_root).")
    metadata_csv: str | None = arg(None, "MIMIC-CXR metadata CSV with ViewPosition (default: in image_root).")
    views_csv: str | None = arg(
        None, "IU Open-i: indiana_projections.csv or DICOM metadata CSV (frontal first)."
    )
    section: str = arg("findings", "Reference section: findings, impression or both.")
    cleaning: str = arg("raw", "raw, or r2gen for R2Gen-compatible references.")
    deid: str = arg("keep", "De-id tokens (XXXX, ___): keep, drop_token, drop_sentence.")
    max_report_words: int | None = arg(None, "Truncate references to N words (R2Gen: 59 IU / 99 MIMIC).")
    views: str = arg("frontal", "frontal (one image column) or all (images list).")
    image_size: int | None = arg(DEFAULT_IMAGE_SIZE, "Square side in pixels; None keeps size.")
    resize_mode: str = arg("pad", "pad (keep aspect, black border), stretch or none.")
    splits: list[str] | None = arg(None, "Splits to load (train, val, test); all if unset.")
    max_samples: int | None = arg(None, "At most N studies per split.")
    system_prompt: str | None = arg(
        DEFAULT_SYSTEM_PROMPT, "System message; empty/None for templates without one."
    )
    instruction: str | None = arg(None, "User instruction; default asks for the chosen section.")
    include_indication: bool = arg(False, "Append the clinical indication to the prompt.")
    on_error: str = arg("raise", "Bad data: raise, or skip (counted and logged).")
    check_images: str = arg("open", "Image check at load: none, exists, open (header) or decode (full).")
    one_per_study: bool = arg(False, "MIMIC R2Gen annotation: keep one entry (image) per study.")
    with_completion: bool = arg(False, "Add a conversational 'completion' column (SFT prompt-completion).")
    synthetic_text: str = arg(
        "corpus",
        "synthetic: corpus, findings (structured reports the image fully shows), or iu_xray (real IU text, "
        "synthesized images).",
    )
    synthetic_num_train: int = arg(256, "synthetic corpus: train studies.")
    synthetic_num_val: int = arg(32, "synthetic corpus: val studies.")
    synthetic_num_test: int = arg(32, "synthetic corpus: test studies.")
    synthetic_seed: int = arg(0, "synthetic: seed for reports and images.")
    synthetic_sentence_code: bool = arg(
        False,
        "synthetic: also draw a code of the report's sentences into its image (rrg_trl.data.sentence_code).",
    )

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
