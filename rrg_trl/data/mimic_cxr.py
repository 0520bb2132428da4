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

from rrg_trl.data.builder import (
    SplitQuota,
    StudyRecord,
    build_dataset_dict,
    images_usable,
    normalise_split,
    prepare_indication,
    prepare_report,
)
from rrg_trl.data.cleaning import resolve_cleaning
from rrg_trl.data.errors import DataError, ProblemLog
from rrg_trl.data.images import DEFAULT_IMAGE_SIZE
from rrg_trl.data.prompts import DEFAULT_SYSTEM_PROMPT, SECTIONS, default_instruction
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
    *,
    image_root: str | Path | None,
    reports_root: str | Path | None = None,
    split_csv: str | Path | None = None,
    metadata_csv: str | Path | None = None,
    section: str = "findings",
    views: str = "frontal",
    cleaning: str = "raw",
    deid: str = "keep",
    max_report_words: int | None = None,
    splits: list[str] | None = None,
    max_samples: int | None = None,
    check_images: str = "open",
    problems: ProblemLog | None = None,
    with_images: bool = True,
) -> list[StudyRecord]:
    """MIMIC-CXR-JPG studies with their report sections, as :class:`StudyRecord` (CSV order)."""
    if section not in SECTIONS:
        raise ValueError(f"section must be one of {SECTIONS}, got {section!r}")
    if image_root is None:
        raise ValueError("MIMIC-CXR needs image_root (the MIMIC-CXR-JPG folder with files/ and the CSVs)")
    style = resolve_cleaning(cleaning, SOURCE)
    problems = problems or ProblemLog("raise")
    quota = SplitQuota(splits, max_samples)
    root = Path(image_root)
    image_files = files_dir(root)
    report_files = files_dir(Path(reports_root) if reports_root is not None else root)
    split_path = _find_csv(root, SPLIT_CSV, split_csv)
    meta_path = _find_csv(root, METADATA_CSV, metadata_csv)

    view_of = {
        row["dicom_id"]: row["ViewPosition"].strip()
        for row in _read_csv(meta_path, {"dicom_id", "ViewPosition"})
    }
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

    fallback_views: Counter[str] = Counter()
    records: list[StudyRecord] = []
    for study_id, study in studies.items():
        if quota.done():
            break
        split = study["split"]
        if not quota.wants(split):
            continue
        sid = f"s{study_id}"
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
        report = prepare_report(report_section(sections, section), style, deid, max_report_words)
        if not report:
            problems.report(
                SOURCE, sid, "empty_report", f"no {section} text in the report", file=str(report_path)
            )
            continue
        dicoms = sorted(study["dicoms"], key=lambda d: _VIEW_RANK.get(view_of.get(d, ""), 2))
        view_names = [view_of.get(d) or None for d in dicoms]
        images = [str(image_files / relative / f"{d}.jpg") for d in dicoms]
        if with_images and not images_usable(SOURCE, sid, images, views, check_images, problems):
            continue
        if view_names and view_names[0] not in _VIEW_RANK:
            fallback_views[view_names[0] or "unknown"] += 1
        quota.take(split)
        problems.kept[split] += 1
        records.append(
            StudyRecord(
                id=sid,
                report=report,
                images=images if with_images else [],
                split=split,
                source=SOURCE,
                indication=prepare_indication(report_indication(sections), deid),
                views=view_names if with_images else [],
            )
        )
    if fallback_views:
        logger.info(
            "%s: %d studies have no PA/AP image and use another view: %s",
            SOURCE,
            sum(fallback_views.values()),
            dict(fallback_views),
        )
    return records


def mimic_cxr_annotation_records(
    *,
    annotation_path: str | Path,
    image_root: str | Path | None,
    reports_root: str | Path | None = None,
    section: str = "findings",
    views: str = "frontal",
    cleaning: str = "raw",
    deid: str = "keep",
    max_report_words: int | None = None,
    splits: list[str] | None = None,
    max_samples: int | None = None,
    one_per_study: bool = False,
    check_images: str = "open",
    problems: ProblemLog | None = None,
    with_images: bool = True,
) -> list[StudyRecord]:
    """R2Gen MIMIC ``annotation.json`` entries as :class:`StudyRecord`.

    ``report`` is the annotation's findings text; with ``reports_root`` the report file is read instead
    (needed for ``section`` impression / both and for the indication).
    """
    if section not in SECTIONS:
        raise ValueError(f"section must be one of {SECTIONS}, got {section!r}")
    if section != "findings" and reports_root is None:
        raise ValueError(
            f"section={section!r} needs reports_root: R2Gen's MIMIC annotation has findings only"
        )
    if with_images and image_root is None:
        raise ValueError("MIMIC-CXR needs image_root (the folder the annotation's image_path is relative to)")
    style = resolve_cleaning(cleaning, SOURCE)
    problems = problems or ProblemLog("raise")
    quota = SplitQuota(splits, max_samples)
    root = Path(image_root) if image_root is not None else None
    report_files = files_dir(Path(reports_root)) if reports_root is not None else None
    seen_studies: set[str] = set()
    records: list[StudyRecord] = []
    for entry in read_r2gen_annotation(annotation_path, problems, source=SOURCE):
        if quota.done():
            break
        split, entry_id = entry["split"], entry["id"]
        if not quota.wants(split):
            continue
        study_key = str(entry.get("study_id", entry_id))
        if one_per_study and study_key in seen_studies:
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
        report = prepare_report(text, style, deid, max_report_words)
        if not report:
            problems.report(SOURCE, entry_id, "empty_report", f"empty {section} text", file=text_file)
            continue
        images = []
        if root is not None:
            for relative in entry["image_path"]:
                direct = root / relative
                images.append(str(direct if direct.is_file() else files_dir(root) / relative))
        if with_images and not images_usable(SOURCE, entry_id, images, views, check_images, problems):
            continue
        seen_studies.add(study_key)
        quota.take(split)
        problems.kept[split] += 1
        records.append(
            StudyRecord(
                id=entry_id,
                report=report,
                images=images if with_images else [],
                split=split,
                source=SOURCE,
                indication=prepare_indication(indication, deid),
                views=[None] * len(images) if with_images else [],
            )
        )
    return records


def _build(records, problems, section, instruction, **kwargs) -> DatasetDict:
    problems.summarise(SOURCE)
    return build_dataset_dict(records, instruction=instruction or default_instruction(section), **kwargs)


def load_mimic_cxr(
    image_root: str | Path,
    reports_root: str | Path | None = None,
    *,
    split_csv: str | Path | None = None,
    metadata_csv: str | Path | None = None,
    section: str = "findings",
    views: str = "frontal",
    cleaning: str = "raw",
    deid: str = "keep",
    max_report_words: int | None = None,
    splits: list[str] | None = None,
    max_samples: int | None = None,
    system_prompt: str | None = DEFAULT_SYSTEM_PROMPT,
    instruction: str | None = None,
    include_indication: bool = False,
    image_size: int | None = DEFAULT_IMAGE_SIZE,
    resize_mode: str = "pad",
    check_images: str = "open",
    on_error: str = "raise",
    problems: ProblemLog | None = None,
    with_completion: bool = False,
) -> DatasetDict:
    """MIMIC-CXR-JPG + reports as a ``DatasetDict`` by split (``train`` / ``val`` / ``test``)."""
    problems = problems or ProblemLog(on_error)
    records = mimic_cxr_records(
        image_root=image_root,
        reports_root=reports_root,
        split_csv=split_csv,
        metadata_csv=metadata_csv,
        section=section,
        views=views,
        cleaning=cleaning,
        deid=deid,
        max_report_words=max_report_words,
        splits=splits,
        max_samples=max_samples,
        check_images=check_images,
        problems=problems,
    )
    return _build(
        records,
        problems,
        section,
        instruction,
        system_prompt=system_prompt,
        include_indication=include_indication,
        views=views,
        image_size=image_size,
        resize_mode=resize_mode,
        with_completion=with_completion,
    )


def load_mimic_cxr_annotation(
    annotation_path: str | Path,
    image_root: str | Path,
    reports_root: str | Path | None = None,
    *,
    section: str = "findings",
    views: str = "frontal",
    cleaning: str = "raw",
    deid: str = "keep",
    max_report_words: int | None = None,
    splits: list[str] | None = None,
    max_samples: int | None = None,
    one_per_study: bool = False,
    system_prompt: str | None = DEFAULT_SYSTEM_PROMPT,
    instruction: str | None = None,
    include_indication: bool = False,
    image_size: int | None = DEFAULT_IMAGE_SIZE,
    resize_mode: str = "pad",
    check_images: str = "open",
    on_error: str = "raise",
    problems: ProblemLog | None = None,
    with_completion: bool = False,
) -> DatasetDict:
    """R2Gen's MIMIC ``annotation.json`` as a ``DatasetDict`` by split."""
    problems = problems or ProblemLog(on_error)
    records = mimic_cxr_annotation_records(
        annotation_path=annotation_path,
        image_root=image_root,
        reports_root=reports_root,
        section=section,
        views=views,
        cleaning=cleaning,
        deid=deid,
        max_report_words=max_report_words,
        splits=splits,
        max_samples=max_samples,
        one_per_study=one_per_study,
        check_images=check_images,
        problems=problems,
    )
    return _build(
        records,
        problems,
        section,
        instruction,
        system_prompt=system_prompt,
        include_indication=include_indication,
        views=views,
        image_size=image_size,
        resize_mode=resize_mode,
        with_completion=with_completion,
    )
