"""Chest X-ray image loading: greyscale in, model-ready RGB out, decoded lazily.

Datasets store only a reference to each image (an ``Image(decode=False)`` value: a file path, or PNG
bytes for synthesized images); :class:`XrayImageTransform` is installed with ``Dataset.set_transform``
and decodes on access, so building a dataset over 100k+ studies costs no pixel decoding and the
trainers (which read ``example["image"]`` as a PIL image) get ready images. The transform survives
``select`` / ``shuffle`` / ``remove_columns`` / ``train_test_split`` / pickling to dataloader workers.

Output: mode ``RGB`` (X-rays are greyscale; the grey value is replicated to the three channels because
VLM image processors expect RGB), sized by ``resize_mode``:

- ``"pad"`` (default): keep the aspect ratio, longer side = ``image_size``, centred on a black square
  (black is the X-ray background, so nothing anatomical is distorted or cropped);
- ``"stretch"``: resize to ``image_size`` x ``image_size`` ignoring the aspect ratio;
- ``"none"`` (or ``image_size=None``): original size (for processors with dynamic resolution).

16-bit images (``I;16``/``I``/``F``) are min-max scaled to 8 bit per image. JPEGs are decoded at a
reduced DCT scale when much larger than the target (``Image.draft``), which makes MIMIC-CXR-JPG's
~2500 px files cheap to read.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from rrg_trl.data.errors import DataError

RESIZE_MODES = ("pad", "stretch", "none")
CHECK_LEVELS = ("none", "exists", "open", "decode")
DEFAULT_IMAGE_SIZE = 448


def to_greyscale(image: Image.Image) -> Image.Image:
    """8-bit single-channel version of any PIL mode (16-bit and float are min-max scaled)."""
    if image.mode == "L":
        return image
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        array = np.asarray(image, dtype=np.float64)
        low, high = float(array.min()), float(array.max())
        scaled = (array - low) / (high - low) * 255.0 if high > low else np.zeros_like(array)
        return Image.fromarray(np.round(scaled).astype(np.uint8), mode="L")
    return image.convert("L")


def resize_xray(image: Image.Image, size: int | None, mode: str = "pad") -> Image.Image:
    """Resize a greyscale image per ``mode`` (see module docstring)."""
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize_mode must be one of {RESIZE_MODES}, got {mode!r}")
    if size is None or mode == "none":
        return image
    if size < 1:
        raise ValueError(f"image_size must be a positive integer or None, got {size}")
    if mode == "stretch":
        return image.resize((size, size), Image.Resampling.BICUBIC)
    width, height = image.size
    scale = size / max(width, height)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    resized = image.resize((new_w, new_h), Image.Resampling.BICUBIC)
    canvas = Image.new(image.mode, (size, size), 0)
    canvas.paste(resized, ((size - new_w) // 2, (size - new_h) // 2))
    return canvas


def _open(source: str | bytes) -> Image.Image:
    return Image.open(io.BytesIO(source)) if isinstance(source, bytes) else Image.open(source)


def load_xray(
    source: str | Path | bytes, image_size: int | None = DEFAULT_IMAGE_SIZE, resize_mode: str = "pad"
):
    """Decode one X-ray (path or encoded bytes) into a resized RGB PIL image."""
    image = _open(str(source) if isinstance(source, Path) else source)
    with image:
        if image.format == "JPEG" and image_size is not None and resize_mode != "none":
            image.draft("L", (image_size, image_size))
        image.load()
        grey = to_greyscale(image)
        out = resize_xray(grey, image_size, resize_mode)
        return out.convert("RGB")


def check_image(path: str | Path, level: str = "open") -> str | None:
    """``None`` when the file passes ``level``, else a short description of what is wrong.

    ``exists``: a regular file; ``open``: PIL recognises the header (cheap: no pixel decoding);
    ``decode``: the whole image decodes (catches truncated files; costs a full read per image).
    """
    if level not in CHECK_LEVELS:
        raise ValueError(f"check_images must be one of {CHECK_LEVELS}, got {level!r}")
    if level == "none":
        return None
    path = Path(path)
    if not path.is_file():
        return "image file not found"
    if level == "exists":
        return None
    try:
        with Image.open(path) as image:
            if level == "decode":
                image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        return f"unreadable image ({type(error).__name__}: {error})"
    return None


def encode_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


class XrayImageTransform:
    """``Dataset.set_transform`` callable: turns ``image`` / ``images`` references into PIL RGB images.

    Picklable (a plain class), so it travels to dataloader worker processes. A file that fails to decode
    at training time raises :class:`DataError` naming the study and the file: the id comes from the ``id``
    column, or from ``study_of`` (image path -> study id) when a trainer dropped that column.
    """

    def __init__(
        self,
        image_size: int | None = DEFAULT_IMAGE_SIZE,
        resize_mode: str = "pad",
        study_of: dict[str, str] | None = None,
    ):
        resize_xray(Image.new("L", (2, 2)), image_size, resize_mode)  # validates both arguments early
        self.image_size = image_size
        self.resize_mode = resize_mode
        self.study_of = study_of or {}

    def __repr__(self) -> str:
        return f"XrayImageTransform(image_size={self.image_size}, resize_mode={self.resize_mode!r})"

    def decode(self, value: Any, study_id: str | None) -> Image.Image:
        if isinstance(value, Image.Image):
            return resize_xray(to_greyscale(value), self.image_size, self.resize_mode).convert("RGB")
        if isinstance(value, str):
            value = {"path": value, "bytes": None}
        source = value.get("bytes") or value.get("path")
        label = value.get("path") or "<embedded bytes>"
        study_id = study_id or self.study_of.get(value.get("path") or "")
        if source is None:
            raise DataError(f"study {study_id!r}: image reference has neither bytes nor path")
        try:
            return load_xray(source, self.image_size, self.resize_mode)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
            raise DataError(
                f"study {study_id!r}: cannot decode image [{label}] ({type(error).__name__}: {error}); "
                "check_images='open' reads only headers: set check_images: decode to find such files when "
                "the data loads (with on_error: skip to leave them out)"
            ) from error

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        out = dict(batch)
        n = len(next(iter(batch.values()))) if batch else 0
        ids = batch.get("id", [None] * n)
        if "image" in batch:
            out["image"] = [
                self.decode(v, i) if v is not None else None for v, i in zip(batch["image"], ids, strict=True)
            ]
        if "images" in batch:
            out["images"] = [
                [self.decode(v, i) for v in values] if values is not None else None
                for values, i in zip(batch["images"], ids, strict=True)
            ]
        return out
