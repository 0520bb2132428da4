import numpy as np
import pytest

from reward_server.tinykit.corpus import DEVICES, FINDINGS, synthetic_reports
from rrg_trl.data.synthetic import Finding, load_synthetic, parse_findings, synthesize_xray


def _raw_images(dataset):
    return [value["bytes"] for value in dataset.data.column("image").to_pylist()]


def test_same_seed_same_reports_and_identical_images():
    first = load_synthetic(num_train=6, num_val=2, num_test=2, seed=3, image_size=48)
    second = load_synthetic(num_train=6, num_val=2, num_test=2, seed=3, image_size=48)
    other = load_synthetic(num_train=6, num_val=2, num_test=2, seed=4, image_size=48)
    for split in ("train", "val", "test"):
        assert first[split]["report"] == second[split]["report"]
        assert _raw_images(first[split]) == _raw_images(second[split])
        a, b = first[split][0]["image"], second[split][0]["image"]
        assert np.array_equal(np.asarray(a), np.asarray(b))
    assert first["train"]["report"] != other["train"]["report"]
    assert _raw_images(first["train"]) != _raw_images(other["train"])


def test_rows_are_labelled_synthetic_and_shaped():
    ds = load_synthetic(num_train=4, num_val=1, num_test=0, image_size=32)
    assert sorted(ds) == ["train", "val"]
    train = ds["train"]
    assert train["id"] == [f"synthetic-train-{i:05d}" for i in range(4)]
    assert set(train["source"]) == {"synthetic"} and all(train["synthetic"])
    assert train["report"] == synthetic_reports(4, seed=_split_seed(0, "train"))
    row = train[0]
    assert row["image"].mode == "RGB" and row["image"].size == (32, 32)
    assert row["view"] == "synthetic"


def _split_seed(seed, split):
    from rrg_trl.data.synthetic import _stable_seed

    return _stable_seed(seed, split)


def test_val_is_independent_of_train_size():
    small = load_synthetic(num_train=2, num_val=3, num_test=0, image_size=16)
    large = load_synthetic(num_train=9, num_val=3, num_test=0, image_size=16)
    assert small["val"]["report"] == large["val"]["report"]


def test_negation_uncertainty_side_zone_severity():
    assert parse_findings("No pleural effusion or pneumothorax. The heart is not enlarged.") == []
    assert parse_findings("There are no XXXX of a large pleural effusion.") == []
    assert parse_findings("Large right pleural effusion.") == [Finding("effusion", "right", "lower", 1.0)]
    (uncertain,) = parse_findings("Opacity at the left base, may represent pneumonia.")
    assert (uncertain.kind, uncertain.side, uncertain.zone) == ("consolidation", "left", "lower")
    assert uncertain.severity == pytest.approx(0.65 * 0.6)
    (percent,) = parse_findings("Left-sided pneumothorax, approximately 40% of the hemithorax.")
    assert percent == Finding("pneumothorax", "left", "upper", 0.8)
    kinds = {
        f.kind
        for f in parse_findings("Heart size is mildly enlarged. Sternotomy wires. Left-sided pacemaker.")
    }
    assert kinds == {"cardiomegaly", "sternotomy", "pacemaker"}
    assert [f.kind for f in parse_findings("pneumothorax , no effusion .")] == ["pneumothorax"]


@pytest.mark.parametrize("term", FINDINGS + DEVICES)
def test_every_corpus_finding_is_drawn(term):
    assert parse_findings(f"There is {term}."), term


def test_image_content_follows_the_report():
    size, seed = 96, 7
    clear = np.asarray(synthesize_xray("The lungs are clear.", size, seed), dtype=np.float32)
    negated = np.asarray(synthesize_xray("No pleural effusion.", size, seed), dtype=np.float32)
    assert np.array_equal(clear, negated)  # a negated finding draws nothing
    effusion = np.asarray(synthesize_xray("Large right pleural effusion.", size, seed), dtype=np.float32)
    right_base = (slice(int(0.6 * size), int(0.72 * size)), slice(int(0.22 * size), int(0.4 * size)))
    left_base = (slice(int(0.6 * size), int(0.72 * size)), slice(int(0.6 * size), int(0.78 * size)))
    assert effusion[right_base].mean() > clear[right_base].mean() + 40  # patient's right = image left
    assert abs(effusion[left_base].mean() - clear[left_base].mean()) < 2
    big_heart = np.asarray(synthesize_xray("Cardiomegaly.", size, seed), dtype=np.float32)
    heart_border = (slice(int(0.58 * size), int(0.68 * size)), slice(int(0.7 * size), int(0.76 * size)))
    assert big_heart[heart_border].mean() > clear[heart_border].mean() + 10


def test_a_simple_image_feature_predicts_a_finding():
    """The images carry report content: the right-base brightness separates right effusions from the rest."""
    reports = synthetic_reports(300, seed=11) + ["Moderate right pleural effusion."] * 20
    size = 48
    right_base = (slice(int(0.6 * size), int(0.72 * size)), slice(int(0.22 * size), int(0.4 * size)))
    scores, labels = [], []
    for index, report in enumerate(reports):
        image = np.asarray(synthesize_xray(report, size, seed=index), dtype=np.float32)
        scores.append(image[right_base].mean())
        labels.append(
            any(f.kind == "effusion" and f.side in ("right", "both") for f in parse_findings(report))
        )
    scores, labels = np.array(scores), np.array(labels)
    positives, negatives = scores[labels], scores[~labels]
    auc = (positives[:, None] > negatives[None, :]).mean()
    assert labels.sum() >= 20 and auc > 0.95


def test_real_iu_text_with_synthesized_images(iu_annotation):
    ds = load_synthetic(
        text_source="iu_xray", annotation_path=iu_annotation, max_samples=3, image_size=32, cleaning="r2gen"
    )
    assert set(ds) == {"train", "val", "test"}
    for rows in ds.values():
        assert set(rows["source"]) == {"iu_xray_text+synthetic_image"} and all(rows["synthetic"])
        assert all(r.endswith(" .") for r in rows["report"])
    assert ds["test"][0]["image"].size == (32, 32)
    with pytest.raises(ValueError, match="text_source"):
        load_synthetic(text_source="mimic")


def test_bad_sizes():
    with pytest.raises(ValueError, match="size >= 16"):
        synthesize_xray("x", size=8)
    with pytest.raises(ValueError, match=">= 0"):
        load_synthetic(num_train=-1)


def test_findings_reports_are_fully_shown_by_their_image():
    """The demo's default text: every sentence is normal (draws nothing) or one finding the image draws."""
    from rrg_trl.data.synthetic_findings import SLOTS, findings_reports
    from rrg_trl.metrics.degeneracy import repeated_trigram_fraction

    expected = {"enlarged": "cardiomegaly", "effusion": "effusion", "Pneumothorax on": "pneumothorax"}
    expected |= {"Consolidation": "consolidation", "Mass": "mass", "pacemaker": "pacemaker"}
    for normal, abnormal in SLOTS:
        assert parse_findings(normal) == []
        for template in abnormal:
            for side in ("right", "left"):
                (finding,) = parse_findings(template.format(side=side))
                assert finding.kind == next(v for k, v in expected.items() if k in template)
                if "{side}" in template:
                    assert finding.side == side
    reports = findings_reports(200, seed=1)
    assert reports == findings_reports(200, seed=1) and len(set(reports)) > 50
    assert all(repeated_trigram_fraction(r) == 0 for r in reports)  # survives trigram blocking
    ds = load_synthetic(text_source="findings", num_train=3, num_val=0, num_test=2, seed=1, image_size=32)
    assert ds["test"]["report"] == findings_reports(2, seed=_split_seed(1, "test"))
    assert set(ds["train"]["source"]) == {"synthetic"} and all(ds["train"]["synthetic"])


def test_keyword_loader_and_config_loader_are_one_path():
    """Issue 17: ``load_synthetic``'s keywords build the ``DataConfig`` that ``load_dataset_from_config`` reads;
    synthetic rows keep one ``image`` column even when the config asks for ``views="all"``."""
    from rrg_trl.data import DataConfig, load_dataset_from_config

    sizes = {"num_train": 3, "num_val": 1, "num_test": 0, "seed": 2}
    shared = {"image_size": 16, "max_report_words": 6, "views": "all"}
    by_keywords = load_synthetic(text_source="findings", **sizes, **shared)
    fields = {f"synthetic_{name}": value for name, value in sizes.items()}
    by_config = load_dataset_from_config(DataConfig(synthetic_text="findings", **fields, **shared))
    assert list(by_keywords) == list(by_config) == ["train", "val"]
    for split in by_config:
        assert by_keywords[split]["report"] == by_config[split]["report"]
        assert all(len(report.split()) <= 6 for report in by_config[split]["report"])
        assert "image" in by_config[split].column_names
        assert by_keywords[split][0]["image"].tobytes() == by_config[split][0]["image"].tobytes()
