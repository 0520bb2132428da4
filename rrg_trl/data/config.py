"""One entry point for the training stages: ``load_dataset_from_config`` (``DataConfig`` lives in
:mod:`rrg_trl.data.data_config` and is re-exported here)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from datasets import Dataset, DatasetDict

from rrg_trl.data.builder import normalise_split
from rrg_trl.data.data_config import DATASETS, DataConfig
from rrg_trl.data.errors import ProblemLog
from rrg_trl.data.iu_xray import iu_xray_dataset
from rrg_trl.data.mimic_cxr import mimic_cxr_dataset
from rrg_trl.data.r2gen_annotation import annotation_splits
from rrg_trl.data.synthetic import synthetic_dataset

__all__ = ["DATASETS", "DataConfig", "available_splits", "load_dataset_from_config"]

_LOADERS = {"iu_xray": iu_xray_dataset, "mimic_cxr": mimic_cxr_dataset, "synthetic": synthetic_dataset}


def load_dataset_from_config(
    config: DataConfig | Mapping[str, Any],
    split: str | None = None,
    problems: ProblemLog | None = None,
) -> DatasetDict | Dataset:
    """Load the configured dataset: a ``DatasetDict`` by split, or one ``Dataset`` when ``split`` is given."""
    if not isinstance(config, DataConfig):
        config = DataConfig.from_dict(config)
    if split is not None:
        config = dataclasses.replace(config, splits=[split])
    result = _LOADERS[config.dataset](config, problems)
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
