"""Chest X-ray report datasets in the shape TRL's VLM trainers want.

Rows: ``prompt`` (conversational system + user messages, no chat template), ``image`` (PIL RGB, resized,
decoded lazily), ``report`` (reference text), ``id``, plus ``split`` / ``source`` / ``synthetic`` /
``indication`` / ``view`` (see :mod:`rrg_trl.data.builder`). Sources: IU X-ray (R2Gen annotation.json,
Open-i XML), MIMIC-CXR (MIMIC-CXR-JPG + reports, or R2Gen's annotation.json) and synthetic data for the
offline demo. Training stages call :func:`load_dataset_from_config`.
"""

from rrg_trl.data.builder import StudyRecord, build_dataset, build_dataset_dict, normalise_split
from rrg_trl.data.cleaning import (
    clean_report,
    clean_report_iu_xray,
    clean_report_mimic_cxr,
    handle_deid,
)
from rrg_trl.data.config import DATASETS, DataConfig, load_dataset_from_config
from rrg_trl.data.errors import DataError, ProblemLog
from rrg_trl.data.images import XrayImageTransform, load_xray
from rrg_trl.data.iu_xray import load_iu_xray, read_openi_archive
from rrg_trl.data.mimic_cxr import load_mimic_cxr, load_mimic_cxr_annotation
from rrg_trl.data.prompts import DEFAULT_SYSTEM_PROMPT, build_prompt
from rrg_trl.data.r2gen_annotation import read_r2gen_annotation
from rrg_trl.data.sections import split_sections
from rrg_trl.data.synthetic import load_synthetic, parse_findings, synthesize_xray

__all__ = [
    "DATASETS",
    "DEFAULT_SYSTEM_PROMPT",
    "DataConfig",
    "DataError",
    "ProblemLog",
    "StudyRecord",
    "XrayImageTransform",
    "build_dataset",
    "build_dataset_dict",
    "build_prompt",
    "clean_report",
    "clean_report_iu_xray",
    "clean_report_mimic_cxr",
    "handle_deid",
    "load_dataset_from_config",
    "load_iu_xray",
    "load_mimic_cxr",
    "load_mimic_cxr_annotation",
    "load_synthetic",
    "load_xray",
    "normalise_split",
    "parse_findings",
    "read_openi_archive",
    "read_r2gen_annotation",
    "split_sections",
    "synthesize_xray",
]
