import io
import pickle

import numpy as np
import pytest
from PIL import Image

from rrg_trl.data.errors import DataError
from rrg_trl.data.images import (
    XrayImageTransform,
    check_image,
    encode_png,
    load_xray,
    resize_xray,
    to_greyscale,
)

from .conftest import write_image


def test_pad_keeps_aspect_on_black_square(tmp_path):
    path = write_image(tmp_path / "a.png", size=(80, 40), value=255)
    image = load_xray(path, image_size=32, resize_mode="pad")
    assert image.mode == "RGB" and image.size == (32, 32)
    pixels = np.asarray(image)
    assert (pixels[:7] == 0).all() and (pixels[-7:] == 0).all()  # 80x40 -> 32x16 centred: 8 black rows
    assert pixels[12:20].mean() > 100
    assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()


def test_stretch_and_none(tmp_path):
    path = write_image(tmp_path / "a.png", size=(80, 40))
    assert load_xray(path, 32, "stretch").size == (32, 32)
    assert load_xray(path, 32, "none").size == (80, 40)
    assert load_xray(path, None).size == (80, 40)
    with pytest.raises(ValueError, match="resize_mode"):
        resize_xray(Image.new("L", (4, 4)), 8, "crop")


def test_sixteen_bit_is_min_max_scaled():
    array = np.array([[1000, 2000], [3000, 4000]], dtype=np.uint16)
    grey = to_greyscale(Image.fromarray(array))
    assert grey.mode == "L"
    assert np.asarray(grey).tolist() == [[0, 85], [170, 255]]
    assert to_greyscale(Image.new("RGBA", (2, 2), (10, 10, 10, 255))).mode == "L"


def test_large_jpeg_is_drafted_and_still_right(tmp_path):
    path = write_image(tmp_path / "big.jpg", size=(1200, 1000), fmt="JPEG")
    image = load_xray(path, 64, "pad")
    assert image.size == (64, 64) and image.mode == "RGB"


def test_check_levels(tmp_path):
    good = write_image(tmp_path / "good.png")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image at all")
    truncated = tmp_path / "truncated.png"
    data = good.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    assert check_image(good, "open") is None
    assert check_image(tmp_path / "missing.png", "exists") == "image file not found"
    assert check_image(junk, "exists") is None
    assert "unreadable" in check_image(junk, "open")
    assert check_image(truncated, "open") is None  # the header is intact
    assert "unreadable" in check_image(truncated, "decode")
    assert check_image(tmp_path / "missing.png", "none") is None


def test_transform_decodes_paths_bytes_and_lists(tmp_path):
    path = write_image(tmp_path / "a.png")
    png = encode_png(Image.new("L", (10, 10), 200))
    transform = XrayImageTransform(16, "pad")
    batch = {
        "id": ["s1", "s2"],
        "image": [{"path": str(path), "bytes": None}, {"path": None, "bytes": png}],
        "images": [[{"path": str(path), "bytes": None}], None],
        "report": ["r1", "r2"],
    }
    out = transform(batch)
    assert [im.size for im in out["image"]] == [(16, 16), (16, 16)]
    assert out["images"][0][0].mode == "RGB" and out["images"][1] is None
    assert out["report"] == ["r1", "r2"]
    clone = pickle.loads(pickle.dumps(transform))
    assert clone(batch)["image"][1].tobytes() == out["image"][1].tobytes()


def test_transform_error_names_study_and_file(tmp_path):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"garbage")
    transform = XrayImageTransform(16)
    with pytest.raises(DataError, match=r"study 'CXR9_IM-1'.*junk\.png"):
        transform({"id": ["CXR9_IM-1"], "image": [{"path": str(junk), "bytes": None}]})
    with pytest.raises(DataError, match=r"study 'x'.*missing\.png"):
        transform({"id": ["x"], "image": [{"path": str(tmp_path / "missing.png"), "bytes": None}]})


def test_encode_png_round_trip():
    image = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8), mode="L")
    assert Image.open(io.BytesIO(encode_png(image))).tobytes() == image.tobytes()
