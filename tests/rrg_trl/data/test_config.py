import dataclasses
import json

import pytest
import yaml
from datasets import Dataset, DatasetDict

from rrg_trl.data.config import DataConfig, load_dataset_from_config
from rrg_trl.data.errors import DataError, ProblemLog


def test_field_names_do_not_collide_with_trl_dataclasses():
    from trl import GRPOConfig, ModelConfig, ScriptArguments, SFTConfig

    ours = {f.name for f in dataclasses.fields(DataConfig)}
    for other in (GRPOConfig, SFTConfig, ModelConfig, ScriptArguments):
        assert not ours & {f.name for f in dataclasses.fields(other)}, other.__name__


def test_parses_beside_grpo_config_on_the_command_line():
    from transformers import HfArgumentParser
    from trl import GRPOConfig

    parser = HfArgumentParser((DataConfig, GRPOConfig))
    data, grpo = parser.parse_args_into_dataclasses(
        args=[
            "--dataset",
            "iu_xray",
            "--splits",
            "train",
            "val",
            "--image_size",
            "64",
            "--include_indication",
            "true",
            "--output_dir",
            "out",
            "--max_samples",
            "5",
            "--bf16",
            "false",
            "--use_cpu",
            "true",
        ]
    )
    assert (data.dataset, data.splits, data.image_size, data.include_indication) == (
        "iu_xray",
        ["train", "val"],
        64,
        True,
    )
    assert data.max_samples == 5 and grpo.output_dir == "out"


def test_from_yaml_mapping_and_unknown_keys():
    config = DataConfig.from_dict(
        yaml.safe_load("dataset: synthetic\nsynthetic_num_train: 3\nsystem_prompt: ''\n")
    )
    assert config.synthetic_num_train == 3 and config.system_prompt is None
    with pytest.raises(ValueError, match=r"unknown data config field\(s\) \['image_szie'\]"):
        DataConfig.from_dict({"image_szie": 64})
    with pytest.raises(ValueError, match="dataset must be one of"):
        DataConfig(dataset="chexpert")


def test_synthetic_from_config_with_and_without_split():
    config = {
        "dataset": "synthetic",
        "synthetic_num_train": 3,
        "synthetic_num_val": 2,
        "synthetic_num_test": 1,
        "image_size": 24,
        "system_prompt": None,
        "with_completion": True,
    }
    ds = load_dataset_from_config(config)
    assert isinstance(ds, DatasetDict) and {k: len(v) for k, v in ds.items()} == {
        "train": 3,
        "val": 2,
        "test": 1,
    }
    val = load_dataset_from_config(config, split="validation")
    assert isinstance(val, Dataset) and len(val) == 2
    row = val[0]
    assert [m["role"] for m in row["prompt"]] == ["user"] and row["completion"][0]["role"] == "assistant"
    assert row["image"].size == (24, 24)
    with pytest.raises(ValueError, match="has no studies"):
        load_dataset_from_config({**config, "synthetic_num_test": 0}, split="test")


def test_iu_xray_from_config(iu_annotation, tmp_path):
    from .conftest import write_image

    entry = json.loads(iu_annotation.read_text())["val"][0]
    write_image(tmp_path / entry["image_path"][0])
    ds = load_dataset_from_config(
        {
            "dataset": "iu_xray",
            "annotation_path": str(iu_annotation),
            "image_root": str(tmp_path),
            "splits": ["val"],
            "max_samples": 1,
            "cleaning": "r2gen",
            "max_report_words": 4,
        }
    )
    assert ds["val"]["id"] == [entry["id"]] and len(ds["val"][0]["report"].split()) == 4
    with pytest.raises(DataError, match="image file not found"):
        load_dataset_from_config(
            {
                "dataset": "iu_xray",
                "annotation_path": str(iu_annotation),
                "image_root": str(tmp_path),
                "splits": ["test"],
                "max_samples": 1,
            }
        )


def test_mimic_from_config_both_entry_points(fake_mimic, tmp_path):
    base = {
        "dataset": "mimic_cxr",
        "image_root": str(fake_mimic["image_root"]),
        "reports_root": str(fake_mimic["reports_root"]),
        "on_error": "skip",
        "image_size": 16,
    }
    log = ProblemLog("skip")
    ds = load_dataset_from_config(base, problems=log)
    assert sorted(ds) == ["test", "train", "val"] and log.counts == {"empty_report": 1}
    annotation = tmp_path / "ann.json"
    annotation.write_text(
        json.dumps(
            {
                "test": [
                    {
                        "id": "d3-pa",
                        "report": "Synthetic.",
                        "split": "test",
                        "image_path": ["p11/p11000002/s50000003/d3-pa.jpg"],
                    }
                ]
            }
        )
    )
    without_reports = {k: v for k, v in base.items() if k != "reports_root"}
    test = load_dataset_from_config({**without_reports, "annotation_path": str(annotation)}, split="test")
    assert test["id"] == ["d3-pa"] and test["report"] == ["Synthetic."]
    # With reports_root the report file is read, which needs the entry's study and subject ids.
    log = ProblemLog("skip")
    ds = load_dataset_from_config({**base, "annotation_path": str(annotation)}, problems=log)
    assert len(ds) == 0 and log.counts == {"malformed_annotation": 1}
