"""MIMIC-CXR: the MIMIC-CXR-JPG layout with mimic-cxr-reports text, or R2Gen's MIMIC ``annotation.json``.

Official layout (PhysioNet, credentialed access; nothing of it ships here):

- images: ``<image_root>/files/pXX/pXXXXXXXX/sXXXXXXXX/<dicom_id>.jpg`` (``pXX`` = first two digits of
  the subject id), plus ``mimic-cxr-2.0.0-split.csv(.gz)`` (dicom_id, study_id, subject_id, split with
  ``validate``) and ``mimic-cxr-2.0.0-metadata.csv(.gz)`` (``ViewPosition`` per dicom) in ``image_root``;
- reports: ``<reports_root>/files/pXX/pXXXXXXXX/sXXXXXXXX.txt`` (``reports_root`` defaults to
  ``image_root``); sections are extracted with :mod:`rrg_trl.data.sections`.

One row per study. ``views="frontal"`` uses the PA image, else AP, else (counted and logged) whatever
the study has; ``views="all"`` keeps every image, frontal first. Many MIMIC reports have no FINDINGS
section: with ``section="findings"`` those are empty reports (an error by default; ``on_error="skip"``
counts them), as in R2Gen's preprocessing, which kept only studies with findings.

The second entry point, :func:`load_mimic_cxr_annotation`, reads R2Gen's MIMIC ``annotation.json``
(``id`` = dicom id, ``study_id``, ``subject_id``, ``report`` = findings, ``image_path`` relative to
``image_root`` or ``image_root/files``), one row per entry as R2Gen scores it (``one_per_study=True``
keeps the first entry of each study).
"""

from __future__ import annotations

import csv
import gzip
import logging
from collections import Counter
from pathlib import Path

from datasets import DatasetDict

from rrg_trl.data.builder import RecordCollector, StudyRecord, load_records, normalise_split
from rrg_trl.data.data_config import DataConfig
from rrg_trl.data.errors import DataError, ProblemLog
from rrg_trl.data.prompts import SECTIONS
from rrg_trl.data.r2gen_annotation import read_r2gen_annotation
from rrg_trl.data.sections import report_indication, report_section, split_sections

logger = logging.getLogger("rrg_trl.data")

SOURCE = "mimic_cxr"
SPLIT_CSV = "mimic-cxr-2.0.0-split.csv"
METADATA_CSV = "mimic-cxr-2.0.0-metadata.csv"
_VIEW_RANK = {"PA": 0, "AP": 1}


def _find_csv(root: Path, name: str, given: str | Path | None) -> Path:
    if given is not None:
        path = Path(given)
        if not path.is_file():
            raise FileNotFoundError(f"{SOURCE}: CSV not found: {path}")
        return path
    for candidate in (root / f"{name}.gz", root / name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{SOURCE}: {name}(.gz) not found in {root}; pass its path explicitly")


def _read_csv(path: Path, required: set[str]) -> list[dict[str, str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = required - set(reader.fieldnames or [])
        if missing:
            raise DataError(f"{SOURCE}: CSV [{path}] lacks columns {sorted(missing)}")
        return list(reader)


def files_dir(root: Path) -> Path:
    """``root/files`` when present (the official layout), else ``root`` itself."""
    return root / "files" if (root / "files").is_dir() else root


def study_dir(subject_id: str, study_id: str) -> Path:
    """``pXX/pXXXXXXXX/sXXXXXXXX`` for numeric ids (a leading ``p`` / ``s`` is accepted)."""
    subject = str(subject_id).lstrip("p")
    study = str(study_id).lstrip("s")
    return Path(f"p{subject[:2]}") / f"p{subject}" / f"s{study}"


def _read_report(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None


def mimic_cxr_records(
    config: DataConfig, problems: ProblemLog | None = None, *, with_images: bool = True
) -> list[StudyRecord]:
    """MIMIC-CXR-JPG studies with their report sections, as :class:`StudyRecord` (CSV order)."""
    if config.section not in SECTIONS:
        raise ValueError(f"section must be one of {SECTIONS}, got {config.section!r}")
    if config.image_root is None:
        raise ValueError("MIMIC-CXR needs image_root (the MIMIC-CXR-JPG folder with files/ and the CSVs)")
    collect = RecordCollector(config, problems, SOURCE, with_images)
    quota, problems = collect.quota, collect.problems
    root = Path(config.image_root)
    image_files = files_dir(root)
    report_files = files_dir(Path(config.reports_root) if config.reports_root is not None else root)
    split_path = _find_csv(root, SPLIT_CSV, config.split_csv)
    meta_path = _find_csv(root, METADATA_CSV, config.metadata_csv)
    view_of = {
        row["dicom_id"]: row["ViewPosition"].strip()
        for row in _read_csv(meta_path, {"dicom_id", "ViewPosition"})
    }
    fallback_views: Counter[str] = Counter()
    for study_id, study in _read_studies(split_path).items():
        if quota.done():
            break
        split, sid = study["split"], f"s{study_id}"
        if not quota.wants(split):
            continue
        if "conflict" in study:
            problems.report(SOURCE, sid, "malformed_annotation", study["conflict"], file=str(split_path))
            continue
        relative = study_dir(study["subject"], study_id)
        report_path = report_files / relative.with_suffix(".txt")
        text = _read_report(report_path)
        if text is None:
            problems.report(SOURCE, sid, "missing_report", "report file not found", file=str(report_path))
            continue
        sections = split_sections(text)
        dicoms = sorted(study["dicoms"], key=lambda d: _VIEW_RANK.get(view_of.get(d, ""), 2))
        view_names = [view_of.get(d) or None for d in dicoms]
        kept = collect.add(
            sid,
            split,
            report_section(sections, config.section),
            text_file=str(report_path),
            images=[str(image_files / relative / f"{d}.jpg") for d in dicoms],
            views=view_names,
            indication=report_indication(sections),
            empty=f"no {config.section} text in the report",
        )
        if kept and view_names and view_names[0] not in _VIEW_RANK:
            fallback_views[view_names[0] or "unknown"] += 1
    if fallback_views:
        logger.info(
            "%s: %d studies have no PA/AP image and use another view: %s",
            SOURCE,
            sum(fallback_views.values()),
            dict(fallback_views),
        )
    return collect.records


def _read_studies(split_path: Path) -> dict[str, dict]:
    """The split CSV grouped by study: subject, split, dicoms, and a ``conflict`` when its rows disagree."""
    studies: dict[str, dict] = {}
    for row in _read_csv(split_path, {"dicom_id", "study_id", "subject_id", "split"}):
        study = studies.setdefault(
            row["study_id"],
            {"subject": row["subject_id"], "split": normalise_split(row["split"]), "dicoms": []},
        )
        if normalise_split(row["split"]) != study["split"] or row["subject_id"] != study["subject"]:
            study["conflict"] = (
                f"dicom {row['dicom_id']} disagrees on split/subject with the study's first row"
            )
        study["dicoms"].append(row["dicom_id"])
    return studies


def mimic_cxr_annotation_records(
    config: DataConfig, problems: ProblemLog | None = None, *, with_images: bool = True
) -> list[StudyRecord]:
    """R2Gen MIMIC ``annotation.json`` entries as :class:`StudyRecord`.

    ``report`` is the annotation's findings text; with ``reports_root`` the report file is read instead
    (needed for ``section`` impression / both and for the indication).
    """
    annotation_path, section = config.annotation_path, config.section
    if section not in SECTIONS:
        raise ValueError(f"section must be one of {SECTIONS}, got {section!r}")
    if section != "findings" and config.reports_root is None:
        raise ValueError(
            f"section={section!r} needs reports_root: R2Gen's MIMIC annotation has findings only"
        )
    if with_images and config.image_root is None:
        raise ValueError("MIMIC-CXR needs image_root (the folder the annotation's image_path is relative to)")
    collect = RecordCollector(config, problems, SOURCE, with_images)
    quota, problems = collect.quota, collect.problems
    root = Path(config.image_root) if config.image_root is not None else None
    report_files = files_dir(Path(config.reports_root)) if config.reports_root is not None else None
    seen_studies: set[str] = set()
    for entry in read_r2gen_annotation(annotation_path, problems, source=SOURCE):
        if quota.done():
            break
        split, entry_id = entry["split"], entry["id"]
        if not quota.wants(split):
            continue
        study_key = str(entry.get("study_id", entry_id))
        if config.one_per_study and study_key in seen_studies:
            continue
        text, text_file, indication = entry["report"], str(annotation_path), None
        if report_files is not None:
            if "study_id" not in entry or "subject_id" not in entry:
                problems.report(
                    SOURCE,
                    entry_id,
                    "malformed_annotation",
                    "needs study_id and subject_id",
                    str(annotation_path),
                )
                continue
            report_path = report_files / study_dir(entry["subject_id"], entry["study_id"]).with_suffix(".txt")
            raw = _read_report(report_path)
            if raw is None:
                problems.report(
                    SOURCE, entry_id, "missing_report", "report file not found", file=str(report_path)
                )
                continue
            sections = split_sections(raw)
            text, text_file = report_section(sections, section), str(report_path)
            indication = report_indication(sections)
        images = [_annotation_image(root, relative) for relative in entry["image_path"]] if root else []
        kept = collect.add(entry_id, split, text, text_file=text_file, images=images, indication=indication)
        if kept:
            seen_studies.add(study_key)
    return collect.records


def _annotation_image(root: Path, relative: str) -> str:
    """R2Gen's ``image_path``: relative to ``image_root``, or to its ``files/`` folder."""
    direct = root / relative
    return str(direct if direct.is_file() else files_dir(root) / relative)


def mimic_cxr_dataset(config: DataConfig, problems: ProblemLog | None = None) -> DatasetDict:
    """MIMIC-CXR as a ``DatasetDict`` by split: from R2Gen's annotation when ``annotation_path`` is set, else
    from the MIMIC-CXR-JPG CSVs and report files."""
    read = mimic_cxr_records if config.annotation_path is None else mimic_cxr_annotation_records
    return load_records(read, config, problems, SOURCE)


def load_mimic_cxr(
    image_root: str | Path,
    reports_root: str | Path | None = None,
    *,
    problems: ProblemLog | None = None,
    **options,
) -> DatasetDict:
    """MIMIC-CXR-JPG + reports as a ``DatasetDict`` by split (``train`` / ``val`` / ``test``); ``options`` are
    :class:`DataConfig` fields (``split_csv``, ``metadata_csv``, ``section``, ``views``, ``max_report_words``, ...)."""
    config = DataConfig(dataset=SOURCE, image_root=image_root, reports_root=reports_root, **options)
    return mimic_cxr_dataset(config, problems)


def load_mimic_cxr_annotation(
    annotation_path: str | Path,
    image_root: str | Path,
    reports_root: str | Path | None = None,
    *,
    problems: ProblemLog | None = None,
    **options,
) -> DatasetDict:
    """R2Gen's MIMIC ``annotation.json`` as a ``DatasetDict`` by split; ``options`` are :class:`DataConfig`
    fields (``one_per_study``, ``section``, ``cleaning``, ``max_report_words``, ...)."""
    paths = dict(annotation_path=annotation_path, image_root=image_root, reports_root=reports_root)
    return mimic_cxr_dataset(DataConfig(dataset=SOURCE, **paths, **options), problems)
