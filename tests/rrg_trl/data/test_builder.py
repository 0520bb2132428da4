"""The dataset shape TRL 1.16's VLM trainers read, checked with TRL's own preprocessing functions."""

import pickle

import pytest
import torch
from PIL import Image
from trl.data_utils import is_conversational, prepare_multimodal_messages

from rrg_trl.data.builder import SplitQuota, StudyRecord, build_dataset, build_dataset_dict, normalise_split
from rrg_trl.data.images import encode_png

from .conftest import write_image


@pytest.fixture
def records(tmp_path):
    png = encode_png(Image.new("L", (20, 30), 90))
    return [
        StudyRecord(
            "a",
            "Lungs clear.",
            [str(write_image(tmp_path / "a.png", (50, 40)))],
            "train",
            "iu_xray",
            indication="Cough",
            views=["PA"],
        ),
        StudyRecord(
            "b", "Small effusion.", [png, png], "train", "synthetic", synthetic=True, views=["synthetic"]
        ),
        StudyRecord("c", "Normal.", [str(write_image(tmp_path / "c.png"))], "test", "iu_xray"),
    ]


def _build(records, **kwargs):
    return build_dataset_dict(records, instruction="Write the findings.", image_size=28, **kwargs)


def test_columns_and_types(records):
    ds = _build(records, include_indication=True)
    assert list(ds) == ["train", "test"]
    train = ds["train"]
    assert train.column_names == [
        "id",
        "prompt",
        "image",
        "report",
        "split",
        "source",
        "synthetic",
        "indication",
        "view",
    ]
    row = train[0]
    assert row["id"] == "a" and row["report"] == "Lungs clear." and row["split"] == "train"
    assert row["synthetic"] is False and train[1]["synthetic"] is True
    assert row["view"] == "PA" and row["indication"] == "Cough" and ds["test"][0]["indication"] is None
    assert (
        isinstance(row["image"], Image.Image) and row["image"].mode == "RGB" and row["image"].size == (28, 28)
    )


def test_prompt_is_conversational_without_a_chat_template(records):
    row = _build(records)["train"][0]
    assert is_conversational(row)
    assert [m["role"] for m in row["prompt"]] == ["system", "user"]
    assert all(isinstance(m["content"], str) for m in row["prompt"])
    text = " ".join(m["content"] for m in row["prompt"])
    for marker in ("<|im_start|>", "<image>", "<start_of_turn>", "[INST]", "<|image_pad|>"):
        assert marker not in text


def test_grpo_input_path(records):
    """What GRPOTrainer does with a batch of rows (trl/trainer/grpo_trainer.py, _generate_and_score_completions)."""
    batch = [row for row in _build(records)["train"]]
    images = [[example.get("image")] if example.get("image") is not None else None for example in batch]
    assert is_conversational(batch[0])
    prompts = [
        prepare_multimodal_messages(ex["prompt"], images=imgs) for ex, imgs in zip(batch, images, strict=True)
    ]
    user = prompts[0][1]["content"]
    assert user[0]["type"] == "image" and isinstance(user[0]["image"], Image.Image)
    assert user[1] == {"type": "text", "text": "Write the findings."}
    assert prompts[0][0]["role"] == "system" and prompts[0][0]["content"][0]["type"] == "text"
    reward_kwargs = {
        key: [ex[key] for ex in batch] for key in batch[0] if key not in ("prompt", "completion")
    }
    assert reward_kwargs["report"] == ["Lungs clear.", "Small effusion."]  # the reference reaches the reward


def test_sft_prompt_completion_path(records):
    """DataCollatorForVisionLanguageModeling._collate_prompt_completion's conversions."""
    row = _build(records, with_completion=True)["train"][0]
    assert row["completion"] == [{"role": "assistant", "content": "Lungs clear."}]
    prompt = prepare_multimodal_messages(row["prompt"], images=[row["image"]])
    completion = prepare_multimodal_messages(row["completion"])
    assert prompt[1]["content"][0]["type"] == "image"
    assert completion == [{"role": "assistant", "content": [{"type": "text", "text": "Lungs clear."}]}]


def test_views_all_gives_an_images_list(records):
    train = _build(records, views="all")["train"]
    assert "image" not in train.column_names and "images" in train.column_names
    row = train[1]
    assert len(row["images"]) == 2 and all(im.size == (28, 28) for im in row["images"])
    prompt = prepare_multimodal_messages(row["prompt"], images=row["images"])
    assert [part["type"] for part in prompt[1]["content"]] == ["image", "image", "text"]


def test_lazy_images_survive_trainer_dataset_operations(records):
    train = _build(records)["train"]
    raw = train.data.column("image").to_pylist()
    assert raw[0]["path"].endswith("a.png") and raw[0]["bytes"] is None  # a reference, not pixels
    kept = train.remove_columns([c for c in train.column_names if c not in ("prompt", "image")])
    assert isinstance(kept[0]["image"], Image.Image)  # Trainer._remove_unused_columns (SFT)
    assert isinstance(train.shuffle(seed=0).select([0])[0]["image"], Image.Image)
    assert isinstance(pickle.loads(pickle.dumps(train))[1]["image"], Image.Image)  # dataloader workers
    loader = torch.utils.data.DataLoader(train, batch_size=2, collate_fn=lambda rows: rows)  # GRPO's identity
    (batch,) = list(loader)
    assert [type(row["image"]) for row in batch] == [Image.Image, Image.Image]
    split = train.train_test_split(test_size=1, seed=0)
    assert isinstance(split["test"][0]["image"], Image.Image)


def test_builder_errors(records):
    with pytest.raises(ValueError, match="views"):
        build_dataset(records, instruction="x", views="lateral")
    with pytest.raises(ValueError, match="without an image"):
        build_dataset([StudyRecord("z", "r", [], "train", "iu_xray")], instruction="x")
    with pytest.raises(ValueError, match="image_size"):
        build_dataset(records, instruction="x", image_size=0)


def test_split_helpers():
    assert [normalise_split(s) for s in ("    ", "validate", "Valid", "TRAIN", "test")] == [
        "",
        "val",
        "val",
        "train",
        "test",
    ]
    quota = SplitQuota(["train", "validate"], max_samples=1)
    assert quota.wants("val") and not quota.wants("test")
    quota.take("train")
    assert not quota.wants("train") and not quota.done()
    quota.take("val")
    assert quota.done()
    with pytest.raises(ValueError, match="max_samples"):
        SplitQuota(max_samples=0)


def test_splits_come_out_in_canonical_order(records):
    shuffled = [
        StudyRecord("x", "r", records[1].images, "all", "iu_xray"),
        StudyRecord("t", "r", records[1].images, "test", "iu_xray"),
        StudyRecord("v", "r", records[1].images, "val", "iu_xray"),
        StudyRecord("n", "r", records[1].images, "train", "iu_xray"),
    ]
    assert list(_build(shuffled)) == ["train", "val", "test", "all"]
