"""Shared pieces: image decoding, the dataset base, geometry and the image-level crop transform."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from faceptor_tasks.families.common import DatasetFormatError, FaceDataset, Sample, decode_image, load_image
from faceptor_tasks.families.crop import FaceCropTransform, long_target
from faceptor_tasks.families.geometry import (
    apply_affine,
    box_to_crop,
    compose,
    face_align_matrix,
    invert_affine,
    random_affine,
    resize_matrix,
    warp_image,
)


def png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("backend", ["pil", "cv2", "auto"])
def test_decode_backends_agree(backend: str) -> None:
    arr = np.random.default_rng(0).integers(0, 256, (9, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(decode_image(png_bytes(arr), backend=backend), arr)
    grey = decode_image(png_bytes(arr[..., 0]), backend=backend)
    assert grey.shape == (9, 7, 3) and (grey[..., 0] == arr[..., 0]).all()


def test_decode_errors_name_the_source(tmp_path: Path) -> None:
    with pytest.raises(DatasetFormatError, match=r"img\.png: cannot decode image"):
        decode_image(png_bytes(np.zeros((4, 4, 3), np.uint8))[:30], "img.png")
    with pytest.raises(DatasetFormatError, match=r"x\.jpg: cannot decode image"):
        decode_image(b"plain text", "x.jpg", backend="cv2")
    with pytest.raises(DatasetFormatError, match=r"missing\.jpg: cannot read image"):
        load_image(tmp_path / "missing.jpg")


def test_dataset_skips_and_counts_undecodable_images(tmp_path: Path) -> None:
    good = tmp_path / "good.png"
    good.write_bytes(png_bytes(np.full((5, 5, 3), 7, np.uint8)))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"garbage")
    samples = [Sample(str(bad), 0, ("list.txt", 1)), Sample(str(good), 1, ("list.txt", 2))]
    with pytest.raises(DatasetFormatError, match=r"list\.txt:1: .*bad\.png"):
        FaceDataset(samples)[0]
    ds = FaceDataset(samples, skip_invalid=True)
    assert ds[0]["target"] == 1 and ds.skipped == [("list.txt", 1, ds.skipped[0][2])]
    in_memory = FaceDataset([Sample(np.zeros((3, 4), np.uint8), 5, ("x.mat", 1))])
    assert in_memory[0]["image"].shape == (3, 4, 3)


@given(st.floats(0.3, 3.0), st.floats(-0.5, 0.5), st.integers(0, 2**31))
@settings(max_examples=30, deadline=None)
def test_affine_helpers_invert(scale: float, angle: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    m = compose(random_affine(64, rng, 0.1, angle, 0.2), box_to_crop((3, 5, 40, 30), 64, scale))
    pts = rng.uniform(0, 50, (10, 2))
    np.testing.assert_allclose(apply_affine(apply_affine(pts, m), invert_affine(m)), pts, atol=1e-9)


def test_box_and_resize_matrices() -> None:
    m = box_to_crop((10, 20, 30, 60), 40)  # squared to 40 x 40 about (20, 40)
    np.testing.assert_allclose(apply_affine(np.array([[0.0, 20.0], [40.0, 60.0]]), m), [[-0.5, -0.5], [39.5, 39.5]])
    r = resize_matrix(10, 20, 40)
    np.testing.assert_allclose(apply_affine(np.array([[-0.5, -0.5], [19.5, 9.5]]), r), [[-0.5, -0.5], [39.5, 39.5]])
    src = np.random.default_rng(0).uniform(0, 100, (5, 2))
    a = face_align_matrix(src, 64)
    assert np.isclose(a[0, 0], a[1, 1]) and np.isclose(a[0, 1], -a[1, 0])  # a similarity


def test_antialiased_warp_keeps_the_mapping() -> None:
    ys, xs = np.mgrid[0:400, 0:400]
    image = np.stack([xs * 255 // 399, ys * 255 // 399, np.zeros_like(xs)], -1).astype(np.uint8)
    m = box_to_crop((0, 0, 400, 400), 40)  # 10x shrink: area pre-resize then warp
    out = warp_image(image, m, 40).astype(float)
    centre = apply_affine(np.array([[20.0, 20.0]]), invert_affine(m))[0]
    assert abs(out[20, 20, 0] - centre[0] * 255 / 399) <= 3 and abs(out[20, 20, 1] - centre[1] * 255 / 399) <= 3
    sharp = warp_image(image, m, 40, antialias=False).astype(float)
    assert abs(sharp[20, 20, 0] - out[20, 20, 0]) <= 8


def test_crop_transform_box_flip_and_randaugment() -> None:
    image = np.random.default_rng(0).integers(0, 256, (60, 50, 3), dtype=np.uint8)
    item = {"image": image, "target": 3, "box": np.array([10, 10, 40, 40], np.float32), "meta": {"k": 1}}
    ev = FaceCropTransform("test", 16, long_target)(item)
    np.testing.assert_allclose(ev["meta"]["affine"], box_to_crop((10, 10, 40, 40), 16), atol=1e-6)
    assert ev["meta"]["orig_size"].tolist() == [60, 50] and ev["meta"]["k"] == 1 and ev["target"].item() == 3
    expected = cv2.warpAffine(image, box_to_crop((10, 10, 40, 40), 16), (16, 16), flags=cv2.INTER_LINEAR)
    np.testing.assert_allclose(ev["image"].numpy().transpose(1, 2, 0) * 255, expected, atol=1e-3)
    train = FaceCropTransform("train", 16, long_target)
    flips = set()
    for seed in range(60):  # RandAugment at every magnitude must not fail
        torch.manual_seed(seed)
        out = train(item)
        flips.add(bool(out["meta"]["affine"][0, 0] < 0))
        assert out["image"].shape == (3, 16, 16) and 0 <= float(out["image"].min()) <= float(out["image"].max()) <= 1
    assert flips == {True, False}


def test_whole_image_eval_resize_is_the_references() -> None:
    """The reference evaluates 112-px tasks with torchvision's Resize([S, S]) on a PIL image (antialiased
    bilinear); the family's evaluation crop of a whole image is that, pixel for pixel."""
    from PIL import Image
    from torchvision import transforms

    from faceptor_tasks.families.crop import FaceCropTransform, float_target

    image = np.random.default_rng(0).integers(0, 256, (218, 178, 3), dtype=np.uint8)  # CelebA's aligned size
    out = FaceCropTransform("test", 112, float_target)({"image": image, "target": 1.0})
    ref = transforms.Compose([transforms.Resize([112, 112]), transforms.ToTensor()])(Image.fromarray(image))
    torch.testing.assert_close(out["image"], ref, atol=1e-6, rtol=0)
