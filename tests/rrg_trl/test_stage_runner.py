"""The data steps every stage shares (:func:`rrg_trl.stage_runner.load_splits`): skip counts are kept for
``run_info.json``, and a missing split names the annotation file and the splits it holds (issue 18)."""

from __future__ import annotations

import contextlib
import json
from types import SimpleNamespace

import pytest

from rrg_trl.data import DataConfig
from rrg_trl.data.errors import ProblemLog
from rrg_trl.stage_runner import load_splits
from tests.rrg_trl.data.conftest import write_image

SCRIPT = SimpleNamespace(dataset_train_split="train", dataset_test_split="val")
TRAINING = SimpleNamespace(eval_strategy="no", main_process_first=lambda desc: contextlib.nullcontext())


@pytest.fixture
def data(tmp_path):
    write_image(tmp_path / "img" / "a" / "0.png")
    entries = [
        {"id": sid, "report": "Lungs clear.", "image_path": [f"{sid}/0.png"], "split": split}
        for sid, split in (("a", "train"), ("b", "train"), ("c", "val"))
    ]
    annotation = tmp_path / "annotation.json"
    annotation.write_text(json.dumps({"train": entries[:2], "val": entries[2:]}))
    return DataConfig(dataset="iu_xray", annotation_path=str(annotation), image_root=str(tmp_path / "img"))


def test_skipped_studies_are_counted_for_run_info(data):
    data.on_error = "skip"
    problems = ProblemLog("skip")
    train, _ = load_splits(data, SCRIPT, TRAINING, with_completion=True, problems=problems)
    assert train["id"] == ["a"] and dict(problems.counts) == {"missing_image": 1}


def test_a_missing_split_names_the_file_and_what_it_holds(data):
    script = SimpleNamespace(dataset_train_split="training", dataset_test_split="val")
    with pytest.raises(
        ValueError,
        match=rf"\['training'\] not in the iu_xray dataset \({data.annotation_path} holds \['train', 'val'\]\)",
    ):
        load_splits(data, script, TRAINING, with_completion=True)
