import json

import pytest

from rrg_trl.data.errors import DataError, ProblemLog
from rrg_trl.data.mimic_cxr import load_mimic_cxr, load_mimic_cxr_annotation, study_dir

from .conftest import write_image


def test_official_layout_views_sections_and_splits(fake_mimic):
    log = ProblemLog("skip")
    ds = load_mimic_cxr(
        fake_mimic["image_root"],
        fake_mimic["reports_root"],
        on_error="skip",
        problems=log,
        image_size=32,
        include_indication=True,
    )
    assert list(ds) == ["train", "val", "test"]  # "validate" is normalised to "val"; canonical order
    train = ds["train"]
    assert train["id"] == ["s50000001"]
    row = train[0]
    assert row["report"] == "SYNTHETIC TEST REPORT. Small right pleural effusion. No pneumothorax."
    assert row["view"] == "PA"  # PA preferred over the AP and LL listed before it
    assert row["image"].mode == "RGB" and row["image"].size == (32, 32)
    assert row["prompt"][-1]["content"].endswith("Indication: ___F with synthetic cough // synthetic test")
    assert (
        ds["val"][0]["view"] == "AP" and ds["val"][0]["report"] == "SYNTHETIC TEST REPORT. Lungs are clear."
    )
    assert ds["test"][0]["report"] == "SYNTHETIC TEST REPORT. LUNGS: clear. HEART: normal size."
    # Study 50000004 has a CONCLUSION but no FINDINGS: an empty findings report, counted.
    assert log.counts == {"empty_report": 1}
    assert "s50000004" in log.examples["empty_report"][0]


def test_no_findings_raises_by_default_naming_study_and_report_file(fake_mimic):
    with pytest.raises(DataError, match=r"mimic_cxr study 's50000004': no findings text.*s50000004\.txt"):
        load_mimic_cxr(fake_mimic["image_root"], fake_mimic["reports_root"])


def test_impression_section_and_lateral_only_fallback(fake_mimic, caplog):
    ds = load_mimic_cxr(
        fake_mimic["image_root"],
        fake_mimic["reports_root"],
        section="impression",
        cleaning="r2gen",
        image_size=16,
    )
    assert ds["train"]["id"] == ["s50000001", "s50000004"]
    assert ds["train"]["report"] == [
        "synthetic impression small effusion .",
        "synthetic test report . no acute process .",
    ]
    assert ds["train"][1]["view"] == "LATERAL"  # no PA/AP: the study's only image, logged
    assert ds["test"]["report"] == ["synthetic normal chest ."]  # "IMPRESSON:" typo header
    both = load_mimic_cxr(
        fake_mimic["image_root"],
        fake_mimic["reports_root"],
        section="both",
        splits=["train"],
        views="all",
        max_samples=1,
    )
    row = both["train"][0]
    assert row["report"].endswith("No pneumothorax. Synthetic impression: small effusion.")
    assert len(row["images"]) == 3


def test_missing_report_and_missing_image(fake_mimic):
    root, reports = fake_mimic["image_root"], fake_mimic["reports_root"]
    (reports / "files" / study_dir("11000002", "50000003").with_suffix(".txt")).unlink()
    (root / "files" / study_dir("10000001", "50000002") / "d2-ap.jpg").unlink()
    with pytest.raises(DataError, match=r"'s50000002': image file not found.*d2-ap\.jpg"):
        load_mimic_cxr(root, reports, splits=["val"])
    with pytest.raises(DataError, match=r"'s50000003': report file not found.*s50000003\.txt"):
        load_mimic_cxr(root, reports, splits=["test"])
    log = ProblemLog("skip")
    ds = load_mimic_cxr(root, reports, on_error="skip", problems=log, section="both")
    assert log.counts == {"missing_report": 1, "missing_image": 1}
    assert sorted(ds) == ["train"] and len(ds["train"]) == 2


def test_unreadable_image_and_missing_csv(fake_mimic, tmp_path):
    root = fake_mimic["image_root"]
    (root / "files" / study_dir("10000001", "50000001") / "d1-pa.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(DataError, match=r"'s50000001': unreadable image.*d1-pa\.jpg"):
        load_mimic_cxr(root, fake_mimic["reports_root"], splits=["train"], max_samples=1)
    with pytest.raises(FileNotFoundError, match="mimic-cxr-2.0.0-split.csv"):
        load_mimic_cxr(tmp_path / "empty", fake_mimic["reports_root"])


def test_max_samples_and_splits(fake_mimic):
    ds = load_mimic_cxr(
        fake_mimic["image_root"],
        fake_mimic["reports_root"],
        section="impression",
        splits=["train"],
        max_samples=1,
    )
    assert list(ds) == ["train"] and ds["train"]["id"] == ["s50000001"]


def _r2gen_annotation(path, entries):
    path.write_text(json.dumps(entries))
    return path


def test_r2gen_mimic_annotation_entry_point(fake_mimic, tmp_path):
    # R2Gen's MIMIC file: one entry per image, id = dicom id, image_path relative to the images folder.
    entries = {
        "train": [
            {
                "id": "d1-pa",
                "study_id": 50000001,
                "subject_id": 10000001,
                "split": "train",
                "report": "Synthetic findings one.\n  Second line.",
                "image_path": ["p10/p10000001/s50000001/d1-pa.jpg"],
            },
            {
                "id": "d1-ap",
                "study_id": 50000001,
                "subject_id": 10000001,
                "split": "train",
                "report": "Synthetic findings one.\n  Second line.",
                "image_path": ["p10/p10000001/s50000001/d1-ap.jpg"],
            },
        ],
        "val": [],
        "test": [
            {
                "id": "d3-pa",
                "study_id": 50000003,
                "subject_id": 11000002,
                "split": "test",
                "report": "Synthetic test findings.",
                "image_path": ["p11/p11000002/s50000003/d3-pa.jpg"],
            },
        ],
    }
    annotation = _r2gen_annotation(tmp_path / "mimic_annotation.json", entries)
    root = fake_mimic["image_root"]  # paths resolve under root/files/
    ds = load_mimic_cxr_annotation(annotation, root, cleaning="r2gen", image_size=16)
    assert ds["train"]["id"] == ["d1-pa", "d1-ap"]
    assert ds["train"]["report"] == ["synthetic findings one . second line ."] * 2
    assert ds["test"][0]["image"].size == (16, 16)
    assert load_mimic_cxr_annotation(annotation, root, one_per_study=True)["train"]["id"] == ["d1-pa"]

    with_reports = load_mimic_cxr_annotation(
        annotation, root, fake_mimic["reports_root"], section="impression", include_indication=True
    )
    assert with_reports["test"]["report"] == ["Synthetic normal chest."]
    assert with_reports["test"][0]["prompt"][-1]["content"].endswith("Indication: synthetic chest pain")
    with pytest.raises(ValueError, match="reports_root"):
        load_mimic_cxr_annotation(annotation, root, section="both")


def test_r2gen_mimic_annotation_bad_entries(fake_mimic, tmp_path):
    images = tmp_path / "images"
    write_image(images / "p10/p10000001/s50000001/ok.jpg", fmt="JPEG")
    entries = {
        "train": [
            {
                "id": "ok",
                "report": "Synthetic.",
                "image_path": ["p10/p10000001/s50000001/ok.jpg"],
                "split": "train",
            },
            {
                "id": "gone",
                "report": "Synthetic.",
                "image_path": ["p10/p10000001/s50000001/gone.jpg"],
                "split": "train",
            },
            {"id": "bad", "report": 3, "image_path": ["x.jpg"], "split": "train"},
        ]
    }
    annotation = _r2gen_annotation(tmp_path / "ann.json", entries)
    # The whole file is validated before any image is looked at.
    with pytest.raises(
        DataError, match=r"mimic_cxr study 'bad': entry 2 of split 'train': missing 'report'.*ann\.json"
    ):
        load_mimic_cxr_annotation(annotation, images)
    log = ProblemLog("skip")
    ds = load_mimic_cxr_annotation(annotation, images, on_error="skip", problems=log)
    assert ds["train"]["id"] == ["ok"]
    assert log.counts == {"missing_image": 1, "malformed_annotation": 1}
    entries["train"].pop()
    with pytest.raises(DataError, match=r"mimic_cxr study 'gone': image file not found.*gone\.jpg"):
        load_mimic_cxr_annotation(_r2gen_annotation(tmp_path / "ann.json", entries), images)
