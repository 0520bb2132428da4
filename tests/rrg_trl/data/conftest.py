"""Fixtures for the data tests: images written by the tests, and a fake MIMIC-CXR tree in the official layout.

All MIMIC-CXR text here is written for the tests and is clearly synthetic (no MIMIC data exists here).
"""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_image(
    path: Path, size: tuple[int, int] = (40, 32), value: int = 128, fmt: str | None = None
) -> Path:
    """A small greyscale image with a gradient (so resizing is observable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :].repeat(height, 0)
    pixels = np.clip(ramp * 0.5 + value * 0.5, 0, 255).astype(np.uint8)
    Image.fromarray(pixels, mode="L").save(path, format=fmt)
    return path


# Synthetic MIMIC-style reports exercising the header variants the section parser must survive.
FAKE_REPORTS = {
    # study: (subject, split, report text)
    "50000001": (
        "10000001",
        "train",
        "                                 FINAL REPORT\n"
        " EXAMINATION:  CHEST (PA AND LAT)\n \n"
        " INDICATION:  ___F with synthetic cough  // synthetic test\n \n"
        " COMPARISON:  None.\n \n"
        " FINDINGS: \n \n"
        " SYNTHETIC TEST REPORT. Small right pleural effusion.  No pneumothorax.\n \n"
        " IMPRESSION: \n \n"
        " Synthetic impression: small effusion.\n",
    ),
    "50000002": (
        "10000001",
        "validate",
        " FINAL REPORT\n HISTORY:  synthetic history of fever.\n\n"
        " FINDINGS AND IMPRESSION:  SYNTHETIC TEST REPORT. Lungs are clear.\n",
    ),
    "50000003": (
        "11000002",
        "test",
        " FINAL REPORT\n REASON FOR EXAM:  synthetic chest pain\n\n"
        " FINDINGS:\n SYNTHETIC TEST REPORT.\n LUNGS: clear.\n HEART: normal size.\n\n"
        " IMPRESSON:  Synthetic normal chest.\n",
    ),
    "50000004": (
        "11000002",
        "train",
        " FINAL REPORT\n INDICATION:  synthetic dyspnea\n\n CONCLUSION:  SYNTHETIC TEST REPORT. No acute process.\n",
    ),
}
# dicom -> (study, ViewPosition): study 1 has LL listed before AP before PA; study 4 only a lateral.
FAKE_DICOMS = {
    "d1-ll": ("50000001", "LL"),
    "d1-ap": ("50000001", "AP"),
    "d1-pa": ("50000001", "PA"),
    "d2-ap": ("50000002", "AP"),
    "d3-pa": ("50000003", "PA"),
    "d3-lat": ("50000003", "LATERAL"),
    "d4-lat": ("50000004", "LATERAL"),
}


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with gzip.open(path, "wt", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


@pytest.fixture
def fake_mimic(tmp_path) -> dict[str, Path]:
    """MIMIC-CXR-JPG + mimic-cxr-reports in the official layout, with synthetic text and test images."""
    jpg_root, reports_root = tmp_path / "mimic-cxr-jpg", tmp_path / "mimic-cxr-reports"
    split_rows, meta_rows = [], []
    for dicom, (study, view) in FAKE_DICOMS.items():
        subject, split, _ = FAKE_REPORTS[study]
        split_rows.append([dicom, study, subject, split])
        meta_rows.append([dicom, subject, study, view, "2544", "3056"])
        folder = jpg_root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}"
        write_image(folder / f"{dicom}.jpg", size=(64, 80), value=40 * len(view), fmt="JPEG")
    for study, (subject, _, text) in FAKE_REPORTS.items():
        path = reports_root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    _write_csv(
        jpg_root / "mimic-cxr-2.0.0-split.csv.gz", ["dicom_id", "study_id", "subject_id", "split"], split_rows
    )
    _write_csv(
        jpg_root / "mimic-cxr-2.0.0-metadata.csv.gz",
        ["dicom_id", "subject_id", "study_id", "ViewPosition", "Rows", "Columns"],
        meta_rows,
    )
    return {"image_root": jpg_root, "reports_root": reports_root}
