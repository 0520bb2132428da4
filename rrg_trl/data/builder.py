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

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from datasets import Dataset, DatasetDict, Features, Image, List, Value

from rrg_trl.data.cleaning import clean_report, handle_deid, resolve_cleaning, truncate_words
from rrg_trl.data.data_config import DataConfig
from rrg_trl.data.errors import ProblemLog
from rrg_trl.data.images import XrayImageTransform, check_image
from rrg_trl.data.prompts import build_prompt, completion_messages, default_instruction

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


class RecordCollector:
    """Every loader's last step for one study: clean its report, check its images, count it, keep it.

    Holds what ``config`` says about that (cleaning, de-id, word cap, views, image check, split quota) so the
    loaders only find studies; ``with_images=False`` keeps text only (images are synthesized later).
    """

    def __init__(
        self, config: DataConfig, problems: ProblemLog | None, source: str, with_images: bool = True
    ):
        self.config, self.source, self.with_images = config, source, with_images
        self.problems = problems or ProblemLog(config.on_error)
        self.style = resolve_cleaning(config.cleaning, source)
        self.quota = SplitQuota(config.splits, config.max_samples)
        self.records: list[StudyRecord] = []

    def add(
        self,
        study_id: str,
        split: str,
        text: str | None,
        *,
        text_file: str | None = None,
        images: list[str] | None = None,
        views: list[str | None] | None = None,
        indication: str | None = None,
        empty: str | None = None,
    ) -> bool:
        """Keep the study unless its report is empty (``empty`` says why) or its image fails the check."""
        config, images = self.config, images or []
        report = truncate_words(clean_report(text or "", self.style, config.deid), config.max_report_words)
        if not report:
            detail = empty or f"empty {config.section} text"
            self.problems.report(self.source, study_id, "empty_report", detail, file=text_file)
            return False
        if self.with_images and not self._images_usable(study_id, images):
            return False
        self.quota.take(split)
        self.problems.kept[split] += 1
        record = StudyRecord(study_id, report, [], split, self.source, _indication(indication, config.deid))
        if self.with_images:
            record.images, record.views = images, views or [None] * len(images)
        self.records.append(record)
        return True

    def _images_usable(self, study_id: str, images: list[str]) -> bool:
        """Check the image(s) the row will use (the first, or all with ``views="all"``); report problems."""
        if not images:
            self.problems.report(self.source, study_id, "no_image", "study lists no image")
            return False
        for path in images if self.config.views == "all" else images[:1]:
            detail = check_image(path, self.config.check_images)
            if detail is not None:
                reason = "missing_image" if detail == "image file not found" else "unreadable_image"
                self.problems.report(self.source, study_id, reason, detail, file=str(path))
                return False
        return True


def _indication(text: str | None, deid: str) -> str | None:
    """Indication text for the prompt: same de-id policy, whitespace squeezed, ``None`` when empty."""
    if not text:
        return None
    text = " ".join(handle_deid(text, deid).split())
    return text or None


def _image_value(item: str | bytes) -> dict:
    return {"path": None, "bytes": item} if isinstance(item, bytes) else {"path": str(item), "bytes": None}


def build_dataset(records: list[StudyRecord], config: DataConfig | None = None, **options) -> Dataset:
    """One split's records as a ``Dataset`` with lazily decoded images (see module docstring).

    Reads the prompt and image settings of ``config`` (``instruction``, ``system_prompt``, ``include_indication``,
    ``views``, ``image_size``, ``resize_mode``, ``with_completion``); ``options`` are ``DataConfig`` fields set
    on top of it (or of the defaults), so ``build_dataset(records, instruction="...")`` still works.
    """
    config = dataclasses.replace(config, **options) if config is not None else DataConfig(**options)
    views = config.views
    if views not in VIEW_MODES:
        raise ValueError(f"views must be one of {VIEW_MODES}, got {views!r}")
    instruction = config.instruction or default_instruction(config.section)
    study_of = {str(item): r.id for r in records for item in r.images if not isinstance(item, bytes)}
    transform = XrayImageTransform(config.image_size, config.resize_mode, study_of)
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
        indication = record.indication if config.include_indication else None
        columns["id"].append(record.id)
        columns["prompt"].append(build_prompt(instruction, config.system_prompt, indication))
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
    if config.with_completion:
        columns["completion"] = [completion_messages(r) for r in columns["report"]]
        features["completion"] = message
    dataset = Dataset.from_dict({k: columns[k] for k in features}, features=Features(features))
    dataset.set_transform(transform)
    return dataset


def build_dataset_dict(
    records: list[StudyRecord], config: DataConfig | None = None, **options
) -> DatasetDict:
    """Group records by ``split`` and build one dataset per split (train, val, test first, then others)."""
    by_split: dict[str, list[StudyRecord]] = {}
    for record in records:
        by_split.setdefault(record.split, []).append(record)
    order = {"train": 0, "val": 1, "test": 2}
    names = sorted(by_split, key=lambda name: order.get(name, len(order)))
    return DatasetDict({name: build_dataset(by_split[name], config, **options) for name in names})


def load_records(
    read: Callable[[DataConfig, ProblemLog], list[StudyRecord]],
    config: DataConfig,
    problems: ProblemLog | None,
    source: str,
) -> DatasetDict:
    """What every loader does with its ``read(config, problems)``: summarise the problems once, build by split."""
    problems = problems or ProblemLog(config.on_error)
    records = read(config, problems)
    problems.summarise(source)
    return build_dataset_dict(records, config)
