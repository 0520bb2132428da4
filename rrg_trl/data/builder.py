"""From loader records to Hugging Face datasets in the TRL VLM shape.

Every loader produces :class:`StudyRecord` objects; :func:`build_dataset_dict` turns them into one
``datasets.Dataset`` per split with the columns below and installs :class:`XrayImageTransform`:

================  ==========================================================================================
``id``            study id (IU: R2Gen id ``CXR2384_IM-0942``; MIMIC: ``s50414267`` or the R2Gen dicom id)
``prompt``        conversational messages (system + user), plain string content, no chat template
``image``         one image per study: a PIL RGB image on access (stored as a path or PNG bytes);
                  with ``views="all"`` the column is ``images`` (a list) instead
``report``        the reference text (chosen section, de-id policy, cleaning style applied)
``split``         ``train`` / ``val`` / ``test`` (source names normalised: ``validate`` -> ``val``), or ``all``
``source``        where the row comes from (``iu_xray``, ``mimic_cxr``, ``synthetic``,
                  ``iu_xray_text+synthetic_image``)
``synthetic``     ``True`` when the image or the text was generated rather than real
``indication``    clinical indication when the source has one (``None`` otherwise)
``view``          view of the single chosen image (``PA``, ``AP``, ``frontal``, ...; ``None`` when unknown)
``completion``    only with ``with_completion=True``: ``[{"role": "assistant", "content": report}]``
                  (SFTTrainer's prompt-completion format; leave it off for GRPO)
================  ==========================================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field

from datasets import Dataset, DatasetDict, Features, Image, List, Value

from rrg_trl.data.cleaning import clean_report, handle_deid, truncate_words
from rrg_trl.data.errors import ProblemLog
from rrg_trl.data.images import DEFAULT_IMAGE_SIZE, XrayImageTransform, check_image
from rrg_trl.data.prompts import DEFAULT_SYSTEM_PROMPT, build_prompt, completion_messages

VIEW_MODES = ("frontal", "all")

_SPLIT_ALIASES = {"validate": "val", "valid": "val", "validation": "val", "dev": "val", "eval": "val"}


def normalise_split(name: str) -> str:
    """``train`` / ``val`` / ``test`` for the spellings sources use (R2Gen's test key is four spaces)."""
    key = name.strip().lower()
    return _SPLIT_ALIASES.get(key, key)


@dataclass
class StudyRecord:
    """One study as a loader found it, before it becomes a dataset row.

    ``images`` holds the study's images, preferred view first: a path (str) or encoded bytes each.
    """

    id: str
    report: str
    images: list[str | bytes]
    split: str
    source: str
    indication: str | None = None
    views: list[str | None] = field(default_factory=list)
    synthetic: bool = False


class SplitQuota:
    """Which splits to keep and how many studies per split (``max_samples``), so loaders stop early."""

    def __init__(self, splits: list[str] | tuple[str, ...] | None = None, max_samples: int | None = None):
        if max_samples is not None and max_samples < 1:
            raise ValueError(f"max_samples must be >= 1 or None, got {max_samples}")
        self.splits = None if splits is None else {normalise_split(s) for s in splits}
        self.max_samples = max_samples
        self.taken: dict[str, int] = {}

    def wants(self, split: str) -> bool:
        if self.splits is not None and split not in self.splits:
            return False
        return self.max_samples is None or self.taken.get(split, 0) < self.max_samples

    def take(self, split: str) -> None:
        self.taken[split] = self.taken.get(split, 0) + 1

    def done(self) -> bool:
        """True once every requested split is full (only knowable when the splits were named)."""
        if self.max_samples is None or self.splits is None:
            return False
        return all(self.taken.get(s, 0) >= self.max_samples for s in self.splits)


def prepare_report(text: str | None, style: str, deid: str, max_words: int | None = None) -> str:
    """De-identification policy, cleaning style and optional word cap; ``""`` when nothing is left."""
    return truncate_words(clean_report(text or "", style, deid), max_words)


def prepare_indication(text: str | None, deid: str) -> str | None:
    """Indication text for the prompt: same de-id policy, whitespace squeezed, ``None`` when empty."""
    if not text:
        return None
    text = " ".join(handle_deid(text, deid).split())
    return text or None


def images_usable(
    source: str, study_id: str, images: list[str], views: str, level: str, problems: ProblemLog
) -> bool:
    """Check the image(s) the row will use (the first, or all with ``views="all"``); report problems."""
    if not images:
        problems.report(source, study_id, "no_image", "study lists no image")
        return False
    for path in images if views == "all" else images[:1]:
        detail = check_image(path, level)
        if detail is not None:
            reason = "missing_image" if detail == "image file not found" else "unreadable_image"
            problems.report(source, study_id, reason, detail, file=str(path))
            return False
    return True


def _image_value(item: str | bytes) -> dict:
    return {"path": None, "bytes": item} if isinstance(item, bytes) else {"path": str(item), "bytes": None}


def build_dataset(
    records: list[StudyRecord],
    *,
    instruction: str,
    system_prompt: str | None = DEFAULT_SYSTEM_PROMPT,
    include_indication: bool = False,
    views: str = "frontal",
    image_size: int | None = DEFAULT_IMAGE_SIZE,
    resize_mode: str = "pad",
    with_completion: bool = False,
) -> Dataset:
    """One split's records as a ``Dataset`` with lazily decoded images (see module docstring)."""
    if views not in VIEW_MODES:
        raise ValueError(f"views must be one of {VIEW_MODES}, got {views!r}")
    study_of = {str(item): r.id for r in records for item in r.images if not isinstance(item, bytes)}
    transform = XrayImageTransform(image_size, resize_mode, study_of)
    columns: dict[str, list] = {
        "id": [],
        "prompt": [],
        "report": [],
        "split": [],
        "source": [],
        "synthetic": [],
        "indication": [],
        "view": [],
    }
    images: list = []
    for record in records:
        if not record.images:
            raise ValueError(f"study {record.id!r} reached the dataset builder without an image")
        indication = record.indication if include_indication else None
        columns["id"].append(record.id)
        columns["prompt"].append(build_prompt(instruction, system_prompt, indication))
        columns["report"].append(record.report)
        columns["split"].append(record.split)
        columns["source"].append(record.source)
        columns["synthetic"].append(record.synthetic)
        columns["indication"].append(record.indication)
        columns["view"].append(record.views[0] if record.views else None)
        if views == "frontal":
            images.append(_image_value(record.images[0]))
        else:
            images.append([_image_value(item) for item in record.images])
    message = List({"role": Value("string"), "content": Value("string")})
    image_key = "image" if views == "frontal" else "images"
    features = {
        "id": Value("string"),
        "prompt": message,
        image_key: Image(decode=False) if views == "frontal" else List(Image(decode=False)),
        "report": Value("string"),
        "split": Value("string"),
        "source": Value("string"),
        "synthetic": Value("bool"),
        "indication": Value("string"),
        "view": Value("string"),
    }
    columns[image_key] = images
    if with_completion:
        columns["completion"] = [completion_messages(r) for r in columns["report"]]
        features["completion"] = message
    dataset = Dataset.from_dict({k: columns[k] for k in features}, features=Features(features))
    dataset.set_transform(transform)
    return dataset


def build_dataset_dict(records: list[StudyRecord], **kwargs) -> DatasetDict:
    """Group records by ``split`` and build one dataset per split (train, val, test first, then others)."""
    by_split: dict[str, list[StudyRecord]] = {}
    for record in records:
        by_split.setdefault(record.split, []).append(record)
    order = {"train": 0, "val": 1, "test": 2}
    names = sorted(by_split, key=lambda name: order.get(name, len(order)))
    return DatasetDict({name: build_dataset(by_split[name], **kwargs) for name in names})
