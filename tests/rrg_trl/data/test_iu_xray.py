import io
import json
import tarfile

import pytest
from PIL import Image

from rrg_trl.data.errors import DataError, ProblemLog
from rrg_trl.data.iu_xray import load_iu_xray, read_openi_archive, read_views_csv, view_key

from .conftest import write_image

N = 3  # studies per split taken from the real annotation (images are written for N + 2)


def _first_entries(annotation_path, n=N):
    """The first ``n`` entries per split, keyed by the entry's own split (the test key is four spaces)."""
    data = json.loads(annotation_path.read_text())
    return {items[0]["split"]: items[:n] for items in data.values()}


def _write_study_images(root, entries):
    for entries_of_split in entries.values():
        for entry in entries_of_split:
            for index, relative in enumerate(entry["image_path"]):
                write_image(root / relative, size=(48, 40), value=60 + 100 * index)


@pytest.fixture
def iu_images(iu_annotation, tmp_path):
    entries = _first_entries(iu_annotation, N + 2)
    _write_study_images(tmp_path / "images", entries)
    return tmp_path / "images", entries


def test_r2gen_annotation_real_text(iu_annotation, iu_images):
    root, entries = iu_images
    ds = load_iu_xray(root, iu_annotation, max_samples=N, image_size=32)
    assert set(ds) == {"train", "val", "test"}  # R2Gen's four-space test key comes back as "test"
    for split, rows in ds.items():
        assert rows["id"] == [e["id"] for e in entries[split][:N]]
        assert rows["report"] == [" ".join(e["report"].split()) for e in entries[split][:N]]
        assert set(rows["split"]) == {split} and set(rows["source"]) == {"iu_xray"}
        assert rows["synthetic"] == [False] * N
    row = ds["test"][0]
    assert row["image"].mode == "RGB" and row["image"].size == (32, 32)
    assert [m["role"] for m in row["prompt"]] == ["system", "user"]
    assert "FINDINGS" in row["prompt"][1]["content"]


def test_r2gen_cleaning_and_views_all(iu_annotation, iu_images):
    root, entries = iu_images
    ds = load_iu_xray(
        root, iu_annotation, splits=["test"], max_samples=2, cleaning="r2gen", views="all", image_size=24
    )
    assert list(ds) == ["test"]
    row = ds["test"][0]
    assert row["report"] == row["report"].lower() and row["report"].endswith(" .")
    assert "image" not in row and len(row["images"]) == 2
    assert all(im.size == (24, 24) for im in row["images"])


def test_missing_and_unreadable_images(iu_annotation, iu_images):
    root, entries = iu_images
    gone = entries["train"][1]
    (root / gone["image_path"][0]).unlink()
    with pytest.raises(DataError) as error:
        load_iu_xray(root, iu_annotation, splits=["train"], max_samples=N)
    assert gone["id"] in str(error.value) and gone["image_path"][0] in str(error.value)

    broken = entries["train"][2]
    (root / broken["image_path"][0]).write_bytes(b"this is not a png")
    log = ProblemLog("skip")
    ds = load_iu_xray(root, iu_annotation, splits=["train"], max_samples=N, on_error="skip", problems=log)
    assert log.counts == {"missing_image": 1, "unreadable_image": 1}
    assert gone["id"] not in ds["train"]["id"] and broken["id"] not in ds["train"]["id"]
    assert len(ds["train"]) == N  # skipped studies do not count towards max_samples
    assert any(broken["id"] in message for message in log.examples["unreadable_image"])


def test_malformed_annotation(tmp_path):
    write_image(tmp_path / "img" / "ok" / "0.png")
    write_image(tmp_path / "img" / "empty" / "0.png")
    annotation = tmp_path / "annotation.json"
    good = {"id": "ok", "report": "Lungs clear.", "image_path": ["ok/0.png"], "split": "train"}
    annotation.write_text(
        json.dumps(
            {
                "train": [
                    good,
                    {"id": "no_images", "report": "x", "split": "train"},
                    "not an object",
                    {"id": "wrong_split", "report": "x", "image_path": ["ok/0.png"], "split": "test"},
                    dict(good),
                    {"id": "empty", "report": "  ", "image_path": ["empty/0.png"], "split": "train"},
                ],
            }
        )
    )
    with pytest.raises(DataError, match=r"'no_images'.*image_path.*annotation\.json"):
        load_iu_xray(tmp_path / "img", annotation)
    log = ProblemLog("skip")
    ds = load_iu_xray(tmp_path / "img", annotation, on_error="skip", problems=log)
    assert ds["train"]["id"] == ["ok"]
    assert log.counts == {"malformed_annotation": 4, "empty_report": 1}
    text = " ".join(m for ms in log.examples.values() for m in ms)
    assert "duplicate id" in text and "'wrong_split'" in text and "entry 2 of split 'train'" in text

    annotation.write_text("{not json")
    with pytest.raises(DataError, match=r"not valid JSON.*annotation\.json"):
        load_iu_xray(tmp_path / "img", annotation)


def test_empty_report_names_study_and_file(tmp_path):
    write_image(tmp_path / "img" / "a" / "0.png")
    annotation = tmp_path / "ann.json"
    annotation.write_text(json.dumps({"val": [{"id": "a", "report": "", "image_path": ["a/0.png"]}]}))
    with pytest.raises(DataError, match=r"iu_xray study 'a': empty findings text \[.*ann\.json\]"):
        load_iu_xray(tmp_path / "img", annotation)


def test_bad_arguments(iu_annotation, tmp_path):
    with pytest.raises(ValueError, match="openi_path"):
        load_iu_xray(tmp_path, iu_annotation, section="impression")
    with pytest.raises(ValueError, match="annotation_path"):
        load_iu_xray(tmp_path)
    with pytest.raises(ValueError, match="section"):
        load_iu_xray(tmp_path, iu_annotation, section="summary")


# --- Open-i XML -------------------------------------------------------------------------------------------


def _openi_xml(uid, findings, impression, indication, image_ids):
    images = "".join(f'<parentImage id="{i}"><figureId>F</figureId></parentImage>' for i in image_ids)
    return (
        f'<?xml version="1.0" encoding="utf-8"?><eCitation><uId id="{uid}"/><MedlineCitation><Article><Abstract>'
        f'<AbstractText Label="COMPARISON">None.</AbstractText>'
        f'<AbstractText Label="INDICATION">{indication}</AbstractText>'
        f'<AbstractText Label="FINDINGS">{findings}</AbstractText>'
        f'<AbstractText Label="IMPRESSION">{impression}</AbstractText>'
        f"</Abstract></Article></MedlineCitation>{images}</eCitation>"
    ).encode()


@pytest.fixture
def small_openi(tmp_path):
    """Three synthetic Open-i reports: a normal one (lateral listed first), no findings, no image."""
    archive = tmp_path / "reports.tgz"
    studies = {
        "1.xml": _openi_xml(
            "CXR1",
            "Synthetic lungs clear.",
            "Synthetic normal.",
            "Synthetic cough",
            ["CXR1_1_IM-0001-3001", "CXR1_1_IM-0001-4001"],
        ),
        "2.xml": _openi_xml("CXR2", "", "Synthetic impression only.", "", ["CXR2_IM-0652-1001"]),
        "3.xml": _openi_xml("CXR3", "Synthetic findings.", "Synthetic.", "XXXX-year-old", []),
    }
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in studies.items():
            info = tarfile.TarInfo(f"ecgen-radiology/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    images = tmp_path / "png"
    write_image(images / "CXR1_1_IM-0001-3001.png", size=(30, 40), value=10)  # lateral
    write_image(images / "CXR1_1_IM-0001-4001.png", size=(40, 30), value=250)  # frontal
    write_image(images / "CXR2_IM-0652-1001.png")
    views = tmp_path / "indiana_projections.csv"
    views.write_text(
        "uid,filename,projection\n1,1_IM-0001-4001.dcm.png,Frontal\n1,1_IM-0001-3001.dcm.png,Lateral\n"
    )
    return archive, images, views


def test_openi_archive_sections_views_and_skips(small_openi):
    archive, images, views = small_openi
    reports = read_openi_archive(archive)
    assert [r.uid for r in reports] == ["CXR1", "CXR2", "CXR3"]
    assert reports[0].study_ids == ["CXR1_1_IM-0001"] and reports[0].indication == "Synthetic cough"
    assert read_views_csv(views) == {"CXR1_IM-0001-4001": "Frontal", "CXR1_IM-0001-3001": "Lateral"}

    with pytest.raises(
        DataError, match=r"'CXR2_IM-0652': empty findings text \[.*reports\.tgz:ecgen-radiology/2\.xml\]"
    ):
        load_iu_xray(images, openi_path=archive)

    log = ProblemLog("skip")
    ds = load_iu_xray(
        images,
        openi_path=archive,
        views_csv=views,
        on_error="skip",
        problems=log,
        include_indication=True,
        image_size=None,
    )
    assert list(ds) == ["all"] and ds["all"]["id"] == ["CXR1_1_IM-0001"]
    assert log.counts == {"empty_report": 1, "no_image": 1}
    row = ds["all"][0]
    assert row["view"] == "Frontal" and row["image"].size == (40, 30)  # the frontal file, original size
    assert row["prompt"][-1]["content"].endswith("\nIndication: Synthetic cough")

    first_listed = load_iu_xray(images, openi_path=archive, section="both", on_error="skip", image_size=None)
    row = first_listed["all"][0]
    assert row["image"].size == (30, 40) and row["view"] is None  # no views CSV: the first listed image
    assert row["report"] == "Synthetic lungs clear. Synthetic normal."
    impression = load_iu_xray(images, openi_path=archive, section="impression", on_error="skip")
    assert impression["all"]["report"] == ["Synthetic normal.", "Synthetic impression only."]


def test_real_openi_archive_joined_with_r2gen(shared_data, iu_annotation, iu_images):
    archive = shared_data / "iu_xray" / "NLMCXR_reports.tgz"
    reports = read_openi_archive(archive)
    assert len(reports) == 3955
    root, entries = iu_images
    ds = load_iu_xray(
        root,
        iu_annotation,
        archive,
        section="impression",
        splits=["test", "val"],
        max_samples=N,
        include_indication=True,
    )
    rexrank = json.loads((shared_data / "iu_xray" / "ReXRank_IUXray_test.json").read_text())
    for row in ds["test"]:
        # ReXRank's independently extracted IMPRESSION of the same R2Gen study.
        assert row["report"] == " ".join(rexrank[row["id"]]["section_impression"].split())
        assert "Indication:" in row["prompt"][-1]["content"]
    findings = load_iu_xray(root, iu_annotation, archive, splits=["val"], max_samples=N)
    assert findings["val"]["report"] == [" ".join(e["report"].split()) for e in entries["val"][:N]]


def test_real_views_csvs_parse(shared_data):
    projections = read_views_csv(shared_data / "iu_xray" / "indiana_projections.csv")
    dicom = read_views_csv(shared_data / "iu_xray" / "nlmcxr_dicom_metadata.csv.gz")
    assert (
        projections[view_key("CXR1_1_IM-0001-4001")] == "Frontal"
    )  # Open-i spells it CXR1_1_..., Kaggle 1_...
    assert projections[view_key("CXR2384_IM-0942-1001")] in ("Frontal", "Lateral")
    assert dicom["CXR1000_IM-0003-2001"] == "PA"
    assert len(projections) > 7000 and len(dicom) > 4000
    with pytest.raises(DataError, match="unrecognised views CSV"):
        read_views_csv(shared_data / "negbio" / "openi_gld_std14.csv")


def test_images_are_rgb_even_for_colour_sources(tmp_path):
    Image.new("RGB", (20, 20), (200, 10, 10)).save(tmp_path / "c.png")
    (tmp_path / "ann.json").write_text(
        json.dumps(
            {"train": [{"id": "c", "report": "Synthetic.", "image_path": ["c.png"], "split": "train"}]}
        )
    )
    row = load_iu_xray(tmp_path, tmp_path / "ann.json", image_size=8)["train"][0]
    red, green, blue = row["image"].getpixel((4, 4))
    assert red == green == blue  # greyscale replicated to three channels


def _two_study_annotation(tmp_path, **splits):
    for sid in ("a", "b"):
        write_image(tmp_path / "img" / sid / "0.png", size=(64, 64))
    entries = {
        key: [{"id": sid, "report": f"Report {sid} \u00e9panchement.", "image_path": [f"{sid}/0.png"]}]
        for key, sid in splits.items()
    }
    path = tmp_path / "annotation.json"
    path.write_text(json.dumps(entries, ensure_ascii=False), encoding="utf-8")
    return path


def test_a_truncated_png_names_the_study_even_without_the_id_column(tmp_path):
    """Issue 18 case 3: check_images=open passes a cut PNG; the first batch failed with `study None` since
    TRL drops the id column. Now it names the study and says how to catch it at load (decode, or skip)."""
    annotation = _two_study_annotation(tmp_path, train="a", val="b")
    image = tmp_path / "img" / "a" / "0.png"
    image.write_bytes(image.read_bytes()[:-60])
    ds = load_iu_xray(tmp_path / "img", annotation, image_size=16)["train"]
    with pytest.raises(
        DataError, match=r"study 'a': cannot decode image \[.*a/0\.png\].*check_images: decode"
    ):
        ds.remove_columns(["id"])[0]["image"]
    log = ProblemLog("skip")
    kept = load_iu_xray(tmp_path / "img", annotation, check_images="decode", on_error="skip", problems=log)
    assert "train" not in kept and log.counts == {"unreadable_image": 1}


def test_a_latin1_annotation_names_the_file_and_a_bom_is_accepted(tmp_path):
    """Issue 18 case 4: a bare UnicodeDecodeError named no file."""
    annotation = _two_study_annotation(tmp_path, train="a")
    text = annotation.read_text(encoding="utf-8")
    annotation.write_bytes(text.encode("latin-1"))
    with pytest.raises(
        DataError, match=r"annotation is not UTF-8 \[.*annotation\.json\].*re-save it as UTF-8"
    ):
        load_iu_xray(tmp_path / "img", annotation)
    annotation.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert load_iu_xray(tmp_path / "img", annotation)["train"]["report"] == ["Report a \u00e9panchement."]


def test_a_missing_split_lists_what_the_annotation_holds(tmp_path):
    """Issue 18 case 5: "it has []" (only the requested splits were loaded) -> the file and its keys."""
    from rrg_trl.data import DataConfig, load_dataset_from_config

    annotation = _two_study_annotation(tmp_path, val="a", **{"    ": "b"})
    config = DataConfig(dataset="iu_xray", annotation_path=str(annotation), image_root=str(tmp_path / "img"))
    with pytest.raises(
        ValueError, match=rf"split 'train' has no studies in iu_xray \({annotation} holds \['test', 'val'\]\)"
    ):
        load_dataset_from_config(config, split="train")
