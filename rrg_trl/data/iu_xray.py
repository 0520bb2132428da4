"""IU X-ray (Open-i, Indiana University) from the R2Gen ``annotation.json`` and/or the Open-i XML archive.

Two entry points, usable together:

- ``annotation_path``: R2Gen's split file (``{"train": [...], "val": [...], "    ": [...]}``, the test key
  being four spaces; every entry has ``id``, ``report`` = FINDINGS, ``image_path`` (e.g.
  ``CXR2384_IM-0942/0.png``) and ``split``). Images are ``image_root / image_path``. R2Gen lists the
  frontal image first in ~90% of studies (ReXRank's view labels), so ``views="frontal"`` takes the first.
- ``openi_path``: ``NLMCXR_reports.tgz`` (``ecgen-radiology/N.xml``), read straight from the archive:
  ``AbstractText`` FINDINGS / IMPRESSION / INDICATION and the ``parentImage`` ids. Alone, it yields every
  report (split ``all``) with images ``image_root / <parentImage id>.png`` (the ``NLMCXR_png`` layout; the
  Kaggle export's ``<id without CXR>.dcm.png`` and ``.jpg`` are found too). The first listed image is a
  lateral in ~14% of reports, so give ``views_csv`` (``indiana_projections.csv`` or the Open-i DICOM
  metadata CSV) to put the frontal view first.
- Both: R2Gen's studies and splits with the Open-i text (impression, indication) joined on the R2Gen id
  (the ``parentImage`` id without its last ``-NNNN``); images from the annotation.
"""

from __future__ import annotations

import csv
import functools
import gzip
import logging
import re
import tarfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from datasets import DatasetDict

from rrg_trl.data.builder import RecordCollector, StudyRecord, load_records
from rrg_trl.data.data_config import DataConfig
from rrg_trl.data.errors import DataError, ProblemLog
from rrg_trl.data.prompts import SECTIONS
from rrg_trl.data.r2gen_annotation import read_r2gen_annotation

logger = logging.getLogger("rrg_trl.data")

SOURCE = "iu_xray"
_VIEW_RANK = {"pa": 0, "frontal": 0, "ap": 1, "ll": 2, "lateral": 2, "rl": 2, "large lateral": 2}


@dataclass(frozen=True)
class OpeniReport:
    """The parts of one ``ecgen-radiology/N.xml`` file the loaders use."""

    uid: str
    file: str
    findings: str = ""
    impression: str = ""
    indication: str = ""
    comparison: str = ""
    image_ids: tuple[str, ...] = ()

    @property
    def study_ids(self) -> list[str]:
        """R2Gen-style ids: the parentImage ids without their trailing ``-NNNN`` (first-seen order)."""
        return list(dict.fromkeys(re.sub(r"-\d+$", "", i) for i in self.image_ids))


def read_openi_archive(path: str | Path) -> list[OpeniReport]:
    """Every report in the Open-i ``.tgz`` (or a directory of the extracted ``*.xml`` files).

    Parsed once per process and file version (cached on path, size and mtime): the demo and the
    stages read the same archive for several splits.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Open-i archive not found: {path}")
    stat = path.stat()
    return list(_read_openi_cached(str(path.resolve()), stat.st_size, stat.st_mtime_ns))


@functools.lru_cache(maxsize=4)
def _read_openi_cached(resolved: str, size: int, mtime_ns: int) -> tuple[OpeniReport, ...]:
    path = Path(resolved)
    reports = []
    if path.is_dir():
        for xml_file in sorted(path.rglob("*.xml")):
            reports.append(_parse_openi_xml(xml_file.read_bytes(), str(xml_file)))
        return tuple(reports)
    try:
        with tarfile.open(path) as archive:
            for member in archive:
                if member.isfile() and member.name.endswith(".xml"):
                    data = archive.extractfile(member).read()
                    reports.append(_parse_openi_xml(data, f"{path}:{member.name}"))
    except tarfile.TarError as error:
        raise DataError(f"{SOURCE}: cannot read the Open-i archive [{path}] ({error})") from error
    return tuple(reports)


def _parse_openi_xml(data: bytes, file: str) -> OpeniReport:
    try:
        root = ET.fromstring(data)
    except ET.ParseError as error:
        raise DataError(f"{SOURCE}: malformed Open-i XML [{file}] ({error})") from error
    uid_node = root.find("uId")
    uid = uid_node.get("id") if uid_node is not None else Path(file.split(":")[-1]).stem
    texts = {}
    for node in root.iter("AbstractText"):
        label = (node.get("Label") or "").strip().lower()
        if label in ("findings", "impression", "indication", "comparison"):
            texts[label] = " ".join("".join(node.itertext()).split())
    image_ids = tuple(n.get("id") for n in root.iter("parentImage") if n.get("id"))
    return OpeniReport(uid=uid, file=file, image_ids=image_ids, **texts)


def view_key(image_id: str) -> str:
    """Spelling-independent image key: ``CXR1_1_IM-0001-4001`` (Open-i) and ``CXR1_IM-0001-4001``
    (Kaggle export, DICOM CSV) both become ``CXR1_IM-0001-4001`` (report uid + image part)."""
    parts = image_id.split("_")
    return f"{parts[0]}_{parts[-1]}"


def read_views_csv(path: str | Path) -> dict[str, str]:
    """:func:`view_key` -> view, from ``indiana_projections.csv`` (uid, filename, projection) or the Open-i
    DICOM metadata CSV (``imageid``, ``View Position``); ``.gz`` is fine."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    views: dict[str, str] = {}
    with opener(path, "rt", newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        fields = set(reader.fieldnames or [])
        if {"filename", "projection"} <= fields:
            for row in reader:
                name = row["filename"].removesuffix(".dcm.png").removesuffix(".png")
                views[view_key("CXR" + name)] = row["projection"].strip()
        elif {"imageid", "View Position"} <= fields:
            for row in reader:
                if row["View Position"].strip():
                    views[view_key(row["imageid"])] = row["View Position"].strip()
        else:
            raise DataError(
                f"{SOURCE}: unrecognised views CSV [{path}]: expected columns (filename, projection) or "
                f"(imageid, View Position), got {sorted(fields)}"
            )
    return views


def _openi_image_file(image_root: Path, image_id: str) -> Path:
    names = [f"{image_id}.png", f"{image_id}.jpg", f"{image_id}.jpeg"]
    if image_id.startswith("CXR"):
        names.append(f"{image_id[3:]}.dcm.png")
    for name in names:
        if (image_root / name).is_file():
            return image_root / name
    return image_root / names[0]


def _section_text(section: str, findings: str, impression: str) -> str:
    if section == "findings":
        return findings
    if section == "impression":
        return impression
    return " ".join(part for part in (findings.strip(), impression.strip()) if part)


def iu_xray_records(
    config: DataConfig, problems: ProblemLog | None = None, *, with_images: bool = True
) -> list[StudyRecord]:
    """IU X-ray studies as :class:`StudyRecord` (``with_images=False``: text only, image list left empty)."""
    _check_paths(config, with_images)
    collect = RecordCollector(config, problems, SOURCE, with_images)
    root = Path(config.image_root) if with_images else None
    openi = read_openi_archive(config.openi_path) if config.openi_path is not None else None
    if config.annotation_path is not None:
        _collect_annotation(config, collect, root, openi)
    else:
        _collect_openi(config, collect, root, openi)
    return collect.records


def _check_paths(config: DataConfig, with_images: bool) -> None:
    section = config.section
    if section not in SECTIONS:
        raise ValueError(f"section must be one of {SECTIONS}, got {section!r}")
    if config.annotation_path is None and config.openi_path is None:
        raise ValueError(
            "IU X-ray needs annotation_path (R2Gen annotation.json) and/or openi_path (Open-i .tgz)"
        )
    if config.annotation_path is not None and config.openi_path is None and section != "findings":
        raise ValueError(
            f"section={section!r} needs the Open-i archive (openi_path): R2Gen's annotation has FINDINGS only"
        )
    if with_images and config.image_root is None:
        raise ValueError(
            "IU X-ray needs image_root (the folder holding the images) unless images are synthesized"
        )


def _collect_annotation(
    config: DataConfig, collect: RecordCollector, root: Path | None, openi: list[OpeniReport] | None
) -> None:
    """R2Gen's studies and splits; with the Open-i archive, its text joined on the study id."""
    quota, section = collect.quota, config.section
    by_id = {sid: rep for rep in openi for sid in rep.study_ids} if openi is not None else {}
    for entry in read_r2gen_annotation(config.annotation_path, collect.problems, source=SOURCE):
        if quota.done():
            break
        if not quota.wants(entry["split"]):
            continue
        study_id, text, text_file, indication = (
            entry["id"],
            entry["report"],
            str(config.annotation_path),
            None,
        )
        if openi is not None:
            match = by_id.get(study_id)
            if match is None:
                collect.problems.report(
                    SOURCE, study_id, "missing_report", "not in the Open-i archive", str(config.openi_path)
                )
                continue
            indication, text_file = match.indication, match.file
            if section != "findings":
                text = _section_text(section, match.findings, match.impression)
        images = [str(root / p) for p in entry["image_path"]] if root is not None else []
        collect.add(study_id, entry["split"], text, text_file=text_file, images=images, indication=indication)


def _collect_openi(
    config: DataConfig, collect: RecordCollector, root: Path | None, openi: list[OpeniReport]
) -> None:
    """Every Open-i report (split ``all``), frontal image first when ``views_csv`` names the views."""
    view_map = read_views_csv(config.views_csv) if config.views_csv is not None and root is not None else None
    if view_map is None and root is not None:
        logger.warning(
            "%s: no views_csv given; using each Open-i report's first listed image, which is a lateral "
            "view in ~14%% of reports (pass views_csv=indiana_projections.csv to prefer frontal)",
            SOURCE,
        )
    for report in openi:
        if collect.quota.done() or not collect.quota.wants("all"):
            break
        study_id = report.study_ids[0] if report.study_ids else report.uid
        image_ids = list(report.image_ids)
        view_names: list[str | None] = [None] * len(image_ids)
        if view_map is not None:
            image_ids.sort(key=lambda i: _VIEW_RANK.get(view_map.get(view_key(i), "").lower(), 3))
            view_names = [view_map.get(view_key(i)) for i in image_ids]
        images = [str(_openi_image_file(root, i)) for i in image_ids] if root is not None else []
        text = _section_text(config.section, report.findings, report.impression)
        collect.add(
            study_id,
            "all",
            text,
            text_file=report.file,
            images=images,
            views=view_names,
            indication=report.indication,
        )


def iu_xray_dataset(config: DataConfig, problems: ProblemLog | None = None) -> DatasetDict:
    """IU X-ray as a ``DatasetDict`` by split (see :mod:`rrg_trl.data.builder` for the columns)."""
    return load_records(iu_xray_records, config, problems, SOURCE)


def load_iu_xray(
    image_root: str | Path | None = None,
    annotation_path: str | Path | None = None,
    openi_path: str | Path | None = None,
    *,
    problems: ProblemLog | None = None,
    **options,
) -> DatasetDict:
    """:func:`iu_xray_dataset` for keyword callers: ``options`` are :class:`DataConfig` fields (``section``,
    ``views``, ``views_csv``, ``cleaning``, ``max_report_words``, ``splits``, ``on_error``, ...)."""
    paths = dict(image_root=image_root, annotation_path=annotation_path, openi_path=openi_path)
    return iu_xray_dataset(DataConfig(dataset=SOURCE, **paths, **options), problems)
