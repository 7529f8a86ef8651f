"""Image input: decoding by bit depth, refusing what cannot be interpreted, naming the file."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from faceptor_core.images import ImageDecodeError, decode_image, read_image, to_float_images


def _png16(arr: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", arr)
    assert ok
    return buf.tobytes()


def test_sixteen_bit_grey_png_is_scaled_not_clipped() -> None:
    grey = np.array([[0, 257 * 100, 65535, 32768]], dtype=np.uint16)
    out = decode_image(_png16(grey), "g16.png")
    assert out.dtype == np.uint8 and out.shape == (1, 4, 3)
    np.testing.assert_array_equal(out[0, :, 0], [0, 100, 255, 128])


def test_sixteen_bit_colour_png_keeps_channels() -> None:
    rgb = np.zeros((2, 2, 3), np.uint16)
    rgb[..., 0] = 65535  # red
    out = decode_image(_png16(rgb[..., ::-1].copy()), "c16.png")  # OpenCV writes BGR
    np.testing.assert_array_equal(out[0, 0], [255, 0, 0])


def test_decompression_bomb_is_refused_with_the_name(monkeypatch: pytest.MonkeyPatch) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buf, format="PNG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageDecodeError, match=r"^bomb\.png: image too large"):
        decode_image(buf.getvalue(), "bomb.png")


def test_corrupt_and_missing_files_name_the_file(tmp_path) -> None:
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(ImageDecodeError, match="bad.jpg: cannot decode"):
        read_image(tmp_path / "bad.jpg")
    with pytest.raises(ImageDecodeError, match="missing.png: no such file"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageDecodeError, match="empty.png: empty file"):
        read_image(tmp_path / "empty.png")


def test_palette_and_alpha_images_become_rgb() -> None:
    buf = io.BytesIO()
    Image.new("RGBA", (3, 2), (10, 20, 30, 40)).save(buf, format="PNG")
    np.testing.assert_array_equal(decode_image(buf.getvalue())[1, 2], [10, 20, 30])
    buf = io.BytesIO()
    Image.new("RGB", (3, 2), (255, 0, 51)).convert("P").save(buf, format="PNG")
    np.testing.assert_array_equal(decode_image(buf.getvalue())[0, 0], [255, 0, 51])


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 255))
def test_every_dtype_means_the_same_picture(v: int) -> None:
    ref = to_float_images(np.full((2, 2, 3), v, np.uint8))
    for arr in (
        np.full((2, 2, 3), v * 257, np.uint16),
        np.full((2, 2, 3), v, np.int64),
        np.full((2, 2, 3), v / 255.0, np.float32),
    ):
        torch.testing.assert_close(to_float_images(arr), ref, atol=1e-6, rtol=0)
    torch.testing.assert_close(to_float_images(torch.full((1, 3, 2, 2), v, dtype=torch.uint8)), ref)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.ones((2, 2, 3), bool), "boolean"),
        (np.full((2, 2, 3), 200.0, np.float32), r"must be in \[0, 1\].*divide by 255"),
        (np.full((2, 2, 3), np.nan, np.float32), "NaN"),
        (np.full((2, 2, 3), 300, np.int32), "0..255"),
        (np.full((2, 2, 3), -1, np.int16), "0..255"),
    ],
)
def test_uninterpretable_arrays_are_refused(array: np.ndarray, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        to_float_images(array)
