"""Synthetic data for the offline demo and tests: X-ray-like images drawn *from the report text*.

No real chest X-ray with a report can ship with the project, yet the demo must show a policy learning
to describe images. So each image is rendered from its report: a greyscale chest phantom (body, dark
lungs, mediastinum, heart, ribs, diaphragm) to which every *affirmed* finding adds its classic sign:
an effusion whitens the costophrenic base with a meniscus, a pneumothorax darkens the apex and removes
lung markings, consolidation adds a bright blob in the named zone, cardiomegaly widens the heart,
tubes and pacemakers appear as bright lines and boxes, and so on. Negated mentions ("No pleural
effusion") draw nothing; uncertain ones ("may represent pneumonia") are drawn fainter. Image content
therefore carries the report's findings, side and severity, which is what a policy can learn.

Two modes, both labelled: every row has ``synthetic=True`` and ``source`` says what is synthetic.

- ``text_source="corpus"``: reports from :mod:`reward_server.tinykit.corpus` (``source="synthetic"``);
- ``text_source="findings"``: structured reports whose every sentence the image shows
  (:mod:`rrg_trl.data.synthetic_findings`, ``source="synthetic"``; the demo's default);
- ``text_source="iu_xray"``: real IU X-ray report text from a user-given R2Gen annotation.json and/or
  Open-i archive, with synthesized images (``source="iu_xray_text+synthetic_image"``).

Everything is deterministic: the same seed gives the same reports and byte-identical images.
"""

from __future__ import annotations

import dataclasses
import re
import zlib
from dataclasses import dataclass

import numpy as np
from datasets import DatasetDict
from PIL import Image, ImageFilter

from reward_server.tinykit.corpus import synthetic_reports
from rrg_trl.data.builder import RecordCollector, StudyRecord, load_records
from rrg_trl.data.data_config import DataConfig
from rrg_trl.data.errors import ProblemLog
from rrg_trl.data.images import encode_png
from rrg_trl.data.iu_xray import iu_xray_records
from rrg_trl.data.sentence_code import CODE_BRIGHTNESS, code_mask
from rrg_trl.data.synthetic_findings import findings_reports

SOURCE = "synthetic"
IU_TEXT_SOURCE = "iu_xray_text+synthetic_image"
TEXT_SOURCES = ("corpus", "findings", "iu_xray")
SYNTHETIC_IMAGE_SIZE = 256  # used when image_size is None (no resizing requested)
# Every finding's sign is drawn this many times as strong as its textbook subtlety: a tiny random vision tower,
# trained for a minute on a CPU, must be able to see it in a 56-pixel image.
SIGN_GAIN = 2.5

# Finding kinds and the phrases that affirm them (matched on lower-cased sentences).
_KIND_PATTERNS = {
    "effusion": r"pleural effusions?|effusions?|pleural fluid",
    "pneumothorax": r"pneumothora(?:x|ces)",
    "consolidation": r"consolidations?|pneumonias?|airspace (?:disease|opacit(?:y|ies))|infiltrates?|opacit(?:y|ies)",
    "edema": r"(?:pulmonary )?edema|vascular congestion",
    "atelectasis": r"atelecta(?:sis|tic)",
    "nodule": r"nodules?|granulomas?|nodular",
    "mass": r"\bmass(?:es)?\b",
    "cardiomegaly": r"cardiomegaly|(?:heart|cardiac silhouette|cardiac)(?: size)?(?: is| are)?(?: \w+)? enlarged"
    r"|enlarged (?:heart|cardiac)",
    "hyperinflation": r"emphysema|hyperinflat\w*|hyperexpan\w*|copd",
    "interstitial": r"fibrosis|fibrotic|interstitial|scarring|bronchiectasis|reticular",
    "tube": r"(?:endotracheal|nasogastric|enteric|chest|feeding|et|ng) tube",
    "line": r"catheter|picc|central (?:venous )?line",
    "pacemaker": r"pacemaker|\bicd\b|defibrillator",
    "sternotomy": r"sternotomy",
}
_KIND_RES = {kind: re.compile(pattern) for kind, pattern in _KIND_PATTERNS.items()}
_NEGATION = re.compile(r"\b(?:no|not|without|negative for|free of|resolved|removed|clear of|absence of)\b")
_UNCERTAIN = re.compile(
    r"\b(?:possibl[ey]|likely|may|might|cannot exclude|suspicious|concerning|questionable|probable|suggest\w*)\b"
)
_SEVERITY = [
    (re.compile(r"\b(?:large|severe|extensive|marked|massive)\b"), 1.0),
    (re.compile(r"\b(?:moderate)\b"), 0.75),
    (re.compile(r"\b(?:small|mild|mildly)\b"), 0.55),
    (re.compile(r"\b(?:trace|minimal|tiny)\b"), 0.35),
]
_PERCENT = re.compile(r"(\d{1,3})\s*%")
_ZONES = [
    ("upper", re.compile(r"\b(?:upper|apical|apex|apices)\b")),
    ("lower", re.compile(r"\b(?:lower|base|bases|basilar|basal|bibasilar|costophrenic)\b")),
    ("middle", re.compile(r"\b(?:middle|mid|lingula|perihilar|hilar)\b")),
]
_SENTENCES = re.compile(r"(?<=[.!?;])\s+|\s+\.\s+")


@dataclass(frozen=True)
class Finding:
    """One affirmed finding read from a report sentence."""

    kind: str
    side: str  # "right", "left" or "both" (patient's side)
    zone: str  # "upper", "middle" or "lower"
    severity: float  # 0..1, already scaled down for uncertain mentions


def parse_findings(report: str) -> list[Finding]:
    """Affirmed findings in ``report`` (sentence-level negation and uncertainty, NegEx-style)."""
    found = []
    for sentence in _SENTENCES.split(report.lower()):
        for kind, pattern in _KIND_RES.items():
            match = pattern.search(sentence)
            if match is None:
                continue
            negation = _NEGATION.search(sentence)
            if negation is not None and negation.start() < match.end():
                continue
            found.append(Finding(kind, _side(sentence), _zone(sentence, kind), _severity(sentence)))
    return found


def _side(sentence: str) -> str:
    if re.search(r"\b(?:bilateral|bilaterally|bibasilar|both)\b", sentence):
        return "both"
    right, left = "right" in sentence, "left" in sentence
    if right and left:
        return "both"
    if right:
        return "right"
    if left:
        return "left"
    return "both"


def _zone(sentence: str, kind: str) -> str:
    for zone, pattern in _ZONES:
        if pattern.search(sentence):
            return zone
    return {"effusion": "lower", "pneumothorax": "upper", "atelectasis": "lower"}.get(kind, "middle")


def _severity(sentence: str) -> float:
    value = 0.65
    percent = _PERCENT.search(sentence)
    if percent is not None:
        value = min(1.0, max(0.3, int(percent.group(1)) / 50))
    else:
        for pattern, level in _SEVERITY:
            if pattern.search(sentence):
                value = level
                break
    return value * 0.6 if _UNCERTAIN.search(sentence) else value


def _stable_seed(*parts) -> int:
    return zlib.crc32(":".join(str(p) for p in parts).encode("utf-8"))


class _Canvas:
    """Normalised coordinates (y down, x right, both 0..1) over a float image."""

    def __init__(self, size: int):
        self.size = size
        self.y, self.x = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
        self.pixels = np.zeros((size, size), dtype=np.float32)

    def ellipse(self, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
        return ((self.y - cy) / ry) ** 2 + ((self.x - cx) / rx) ** 2

    def soft_mask(self, distance: np.ndarray, edge: float = 0.08) -> np.ndarray:
        """1 inside (distance < 1), 0 outside, with a smooth rim (no hard synthetic edges)."""
        return np.clip((1.0 + edge - distance) / (2 * edge), 0.0, 1.0)

    def blob(self, cy: float, cx: float, sigma: float) -> np.ndarray:
        return np.exp(-(((self.y - cy) ** 2 + (self.x - cx) ** 2) / (2 * sigma**2)))


# Image left = patient's right (radiological convention).
_LUNG_X = {"right": 0.31, "left": 0.69}
_ZONE_Y = {"upper": 0.3, "middle": 0.47, "lower": 0.62}


def synthesize_xray(
    report: str, size: int = SYNTHETIC_IMAGE_SIZE, seed: int = 0, sentence_code: bool = False
) -> Image.Image:
    """A deterministic greyscale ``size`` x ``size`` chest phantom showing ``report``'s affirmed findings.

    ``sentence_code``: also draw the code of the report's sentences (:mod:`rrg_trl.data.sentence_code`).
    """
    if size < 16:
        raise ValueError(f"synthetic images need size >= 16, got {size}")
    rng = np.random.default_rng(seed)
    findings = parse_findings(report)
    kinds = {f.kind for f in findings}
    c = _Canvas(size)
    jitter = rng.normal(0.0, 0.01, size=4)

    body = c.soft_mask(c.ellipse(0.58 + jitter[0], 0.5, 0.55, 0.44), 0.04)
    c.pixels += 0.08 + 0.4 * body
    inflate = 1.12 if "hyperinflation" in kinds else 1.0
    diaphragm_y = 0.78 if "hyperinflation" in kinds else 0.72
    lungs = {}
    for side, cx in _LUNG_X.items():
        lung = c.soft_mask(c.ellipse(0.47 + jitter[1], cx + jitter[2], 0.29 * inflate, 0.145 * inflate), 0.06)
        dome = diaphragm_y - 0.06 + 0.1 * ((c.x - cx) / 0.15) ** 2  # hemidiaphragm: a dome under each lung
        lung = lung * np.clip((dome - c.y) / 0.02, 0, 1)
        lungs[side] = lung
        c.pixels -= (0.3 if "hyperinflation" in kinds else 0.26) * lung
    lung_any = np.maximum(lungs["right"], lungs["left"])

    # Lung markings: smoothed noise, stronger with interstitial disease, absent in a pneumothorax.
    texture = np.asarray(
        Image.fromarray((rng.random((size, size)) * 255).astype(np.uint8)).filter(
            ImageFilter.GaussianBlur(max(1.0, size / 128))
        ),
        dtype=np.float32,
    )
    texture = (texture - texture.mean()) / (texture.std() + 1e-6)
    markings = 0.025 * texture * lung_any
    if "interstitial" in kinds:
        markings += 0.06 * np.abs(texture) * lung_any * np.clip((c.y - 0.3) / 0.4, 0, 1)

    # Ribs: faint bright arcs across both lungs.
    for k in range(9):
        arc = 0.2 + 0.065 * k + 0.05 * (np.abs(c.x - 0.5) - 0.2) ** 2 * 8
        c.pixels += 0.07 * np.exp(-(((c.y - arc) / 0.008) ** 2)) * lung_any

    spine = np.exp(-(((c.x - 0.5) / 0.035) ** 2)) * body
    c.pixels += 0.28 * spine
    heart_scale = 1.0
    for finding in findings:
        if finding.kind == "cardiomegaly":
            heart_scale = max(heart_scale, 1.15 + 0.3 * finding.severity)
    heart = c.soft_mask(c.ellipse(0.63, 0.54 + 0.02 * (heart_scale - 1), 0.13, 0.13 * heart_scale), 0.1)
    c.pixels += 0.3 * heart * np.maximum(lung_any, 0.4)
    c.pixels += 0.1 * np.clip((c.y - diaphragm_y) / 0.04, 0, 1) * body

    before_signs = c.pixels.copy()
    for finding in findings:
        sides = ["right", "left"] if finding.side == "both" else [finding.side]
        s = finding.severity
        for side in sides:
            lung, cx = lungs[side], _LUNG_X[side]
            if finding.kind == "effusion":
                lateral = np.abs(c.x - cx) / 0.15
                level = 0.72 - 0.2 * s - 0.05 * lateral**2  # meniscus: higher at the chest wall
                c.pixels += 0.4 * lung * np.clip((c.y - level) / 0.03, 0, 1)
            elif finding.kind == "pneumothorax":
                # The lung collapses towards the hilum: air without markings between it and the chest wall.
                shrink = 1.0 - 0.4 * s
                hilum_x = cx + (0.5 - cx) * 0.35
                collapsed = c.soft_mask(c.ellipse(0.52, hilum_x, 0.24 * shrink, 0.12 * shrink), 0.05)
                gap = lung * (1 - collapsed)
                c.pixels -= 0.1 * gap
                markings *= 1 - gap
                pleural_line = np.exp(
                    -(((np.sqrt(c.ellipse(0.52, hilum_x, 0.24 * shrink, 0.12 * shrink)) - 1) / 0.03) ** 2)
                )
                c.pixels += 0.12 * pleural_line * lung
            elif finding.kind == "consolidation":
                c.pixels += 0.35 * s * lung * c.blob(_ZONE_Y[finding.zone], cx, 0.05 + 0.04 * s)
            elif finding.kind == "atelectasis":
                band = np.exp(-(((c.y - _ZONE_Y[finding.zone] - 0.06) / 0.012) ** 2))
                c.pixels += 0.25 * s * band * lung
            elif finding.kind == "nodule":
                c.pixels += 0.4 * c.soft_mask(c.ellipse(_ZONE_Y[finding.zone], cx + 0.03, 0.018, 0.018), 0.2)
            elif finding.kind == "mass":
                r = 0.035 + 0.03 * s
                c.pixels += 0.35 * c.soft_mask(c.ellipse(_ZONE_Y[finding.zone], cx, r, r), 0.15)
            elif finding.kind == "edema":
                c.pixels += 0.22 * s * lung * c.blob(0.47, 0.5 + (cx - 0.5) * 0.5, 0.12)
        if finding.kind == "tube":
            c.pixels += 0.5 * np.exp(-(((c.x - 0.505) / 0.006) ** 2)) * (c.y < 0.36)
        elif finding.kind == "line":
            x0 = 0.3 if finding.side != "left" else 0.7
            path = x0 + (0.49 - x0) * np.clip((c.y - 0.12) / 0.22, 0, 1)
            c.pixels += 0.45 * np.exp(-(((c.x - path) / 0.006) ** 2)) * (c.y > 0.1) * (c.y < 0.4)
        elif finding.kind == "pacemaker":
            bx = 0.78 if finding.side != "right" else 0.22
            c.pixels += 0.6 * c.soft_mask(c.ellipse(0.16, bx, 0.03, 0.045), 0.1)
            lead = bx + (0.56 - bx) * np.clip((c.y - 0.16) / 0.45, 0, 1)
            c.pixels += 0.4 * np.exp(-(((c.x - lead) / 0.005) ** 2)) * (c.y > 0.16) * (c.y < 0.61)
        elif finding.kind == "sternotomy":
            for wy in (0.3, 0.38, 0.46, 0.54, 0.62):
                ring = np.abs(np.sqrt(c.ellipse(wy, 0.5, 0.012, 0.02)) - 1.0)
                c.pixels += 0.5 * np.exp(-((ring / 0.25) ** 2))

    c.pixels = before_signs + SIGN_GAIN * (c.pixels - before_signs)  # the signs, at high contrast
    if sentence_code:
        c.pixels += CODE_BRIGHTNESS * code_mask(report, size)
    c.pixels += markings + rng.normal(0.0, 0.012, size=c.pixels.shape).astype(np.float32)
    array = np.clip(c.pixels, 0.0, 1.0) * 255.0
    image = Image.fromarray(np.round(array).astype(np.uint8), mode="L")
    return image.filter(ImageFilter.GaussianBlur(max(0.5, size / 512)))


def _with_synthetic_images(records: list[StudyRecord], config: DataConfig, source: str) -> list[StudyRecord]:
    size, seed = config.image_size or SYNTHETIC_IMAGE_SIZE, config.synthetic_seed
    for record in records:
        image = synthesize_xray(
            record.report,
            size=size,
            seed=_stable_seed(seed, record.id),
            sentence_code=config.synthetic_sentence_code,
        )
        record.images = [encode_png(image)]
        record.views = ["synthetic"]
        record.synthetic = True
        record.source = source
    return records


def synthetic_records(config: DataConfig, problems: ProblemLog | None = None) -> list[StudyRecord]:
    """Records with synthesized images; report text from the corpus or from real IU X-ray files."""
    text_source = config.synthetic_text
    if text_source not in TEXT_SOURCES:
        raise ValueError(f"text_source must be one of {TEXT_SOURCES}, got {text_source!r}")
    if text_source == "iu_xray":
        records = iu_xray_records(config, problems, with_images=False)
        return _with_synthetic_images(records, config, IU_TEXT_SOURCE)

    collect = RecordCollector(config, problems, SOURCE, with_images=False)
    generate = findings_reports if text_source == "findings" else synthetic_reports
    counts = {
        "train": config.synthetic_num_train,
        "val": config.synthetic_num_val,
        "test": config.synthetic_num_test,
    }
    for split, count in counts.items():
        if count < 0:
            raise ValueError(f"synthetic split sizes must be >= 0, got {split}={count}")
        for index, text in enumerate(generate(count, seed=_stable_seed(config.synthetic_seed, split))):
            if not collect.quota.wants(split):
                break
            empty = "generated report is empty after cleaning"
            collect.add(f"synthetic-{split}-{index:05d}", split, text, empty=empty)
    return _with_synthetic_images(collect.records, config, SOURCE)


def synthetic_dataset(config: DataConfig, problems: ProblemLog | None = None) -> DatasetDict:
    """The demo's dataset: synthesized images (and, with ``synthetic_text="corpus"``, synthesized text).

    One image per study, so always the ``image`` column (``views="frontal"``) whatever ``config.views`` says.
    """
    source = IU_TEXT_SOURCE if config.synthetic_text == "iu_xray" else SOURCE
    return load_records(synthetic_records, dataclasses.replace(config, views="frontal"), problems, source)


# load_synthetic's keyword names for the DataConfig fields they set.
_KEYWORDS = {
    "text_source": "synthetic_text",
    "num_train": "synthetic_num_train",
    "num_val": "synthetic_num_val",
    "num_test": "synthetic_num_test",
    "seed": "synthetic_seed",
}


def load_synthetic(*, problems: ProblemLog | None = None, **options) -> DatasetDict:
    """:func:`synthetic_dataset` for keyword callers: ``options`` are :class:`DataConfig` fields, with the
    ``synthetic_`` ones also spelt ``text_source``, ``num_train``, ``num_val``, ``num_test`` and ``seed``."""
    fields = {_KEYWORDS.get(name, name): value for name, value in options.items()}
    return synthetic_dataset(DataConfig(dataset=SOURCE, **fields), problems)
