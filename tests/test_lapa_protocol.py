"""LaPa as the reference trains and scores it: five-point alignment, tanh warp (0.8), F1 in the original image."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from faceptor_core import get_task, load
from faceptor_core.cli import main
from faceptor_core.warp import tanh_compress, warp_points, warp_to_original
from faceptor_tasks.families.geometry import FACE_TEMPLATE_5
from faceptor_tasks.families.parsing import ParsingF1
from faceptor_tasks.families.readers.parsing import LAPA_ALIGN_POINTS

#: Colour of each LaPa class in the fixture images (so that images and labels can be checked against each other).
COLOURS = np.array(
    [
        [0, 0, 0],
        [220, 180, 150],
        [60, 40, 20],
        [70, 40, 20],
        [250, 250, 250],
        [240, 240, 240],
        [200, 120, 100],
        [180, 30, 40],
        [40, 0, 0],
        [160, 20, 30],
        [90, 60, 10],
    ],
    np.uint8,
)


def lapa_face(h: int, w: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An image, its 11-class label map and 106 landmarks of a drawn face (the five alignment points placed
    where LaPa puts eye centres, nose tip and mouth corners)."""
    r = 0.42 * min(h, w)
    c = np.array([w / 2, h / 2]) + rng.uniform(-2, 2, 2)
    five = FACE_TEMPLATE_5 * r + c  # left eye, right eye, nose tip, mouth corners
    label = np.zeros((h, w), np.uint8)

    def pt(p) -> tuple[int, int]:
        return int(round(p[0])), int(round(p[1]))

    def rad(k: float) -> int:
        return max(1, int(round(k * r)))

    cv2.ellipse(label, pt(c - [0, 0.55 * r]), (rad(0.7), rad(0.45)), 0, 0, 360, 10, -1)  # hair
    cv2.ellipse(label, pt(c + [0, 0.05 * r]), (rad(0.55), rad(0.75)), 0, 0, 360, 1, -1)  # face
    for k, (eye, brow) in enumerate(((4, 2), (5, 3))):
        cv2.circle(label, pt(five[k]), rad(0.08), eye, -1)
        cv2.rectangle(label, pt(five[k] + [-0.12 * r, -0.22 * r]), pt(five[k] + [0.12 * r, -0.16 * r]), brow, -1)
    cv2.circle(label, pt(five[2]), rad(0.07), 6, -1)  # nose
    mouth = (five[3] + five[4]) / 2
    half = (five[4][0] - five[3][0]) / 2
    cv2.ellipse(label, pt(mouth), (int(half), rad(0.07)), 0, 180, 360, 7, -1)  # upper lip
    cv2.ellipse(label, pt(mouth), (int(half), rad(0.08)), 0, 0, 180, 9, -1)  # lower lip
    cv2.line(label, pt(five[3]), pt(five[4]), 8, 1)  # inner mouth
    image = COLOURS[label] + rng.integers(0, 6, (h, w, 3), dtype=np.uint8)
    pts = (c + rng.uniform(-0.6, 0.6, (106, 2)) * r).astype(np.float32)
    pts[list(LAPA_ALIGN_POINTS)] = five
    return image, label, pts


def write_lapa_faces(root: Path, split: str, sizes: list[tuple[int, int]], seed: int = 0) -> None:
    """LaPa's release layout: ``{split}/images/<n>.jpg``, ``labels/<n>.png``, ``landmarks/<n>.txt`` ("106"
    then 106 "x y" lines)."""
    rng = np.random.default_rng(seed)
    for d in ("images", "labels", "landmarks"):
        (root / split / d).mkdir(parents=True, exist_ok=True)
    for i, (h, w) in enumerate(sizes):
        image, label, pts = lapa_face(h, w, rng)
        name = f"{split}_{i:04d}"
        Image.fromarray(image).save(root / split / "images" / f"{name}.jpg", quality=95)
        Image.fromarray(label).save(root / split / "labels" / f"{name}.png")
        (root / split / "landmarks" / f"{name}.txt").write_text("106\n" + "".join(f"{x:.2f} {y:.2f}\n" for x, y in pts))


@pytest.fixture
def lapa_root(tmp_path: Path) -> Path:
    root = tmp_path / "LaPa"
    write_lapa_faces(root, "train", [(96, 80), (80, 96), (100, 100)], seed=1)
    write_lapa_faces(root, "val", [(90, 90)], seed=2)
    write_lapa_faces(root, "test", [(96, 72), (70, 110)], seed=3)
    return root


def test_lapa_eval_crop_puts_the_five_points_on_the_warped_template(lapa_root: Path) -> None:
    spec = get_task("parsing_lapa")
    ds = spec.dataset(str(lapa_root), "test", transform=spec.transforms("test", 128))
    raw = spec.dataset(str(lapa_root), "test")
    for i in range(len(ds)):
        item, meta = ds[i], ds[i]["meta"]
        assert float(meta["warp_factor"]) == 0.8 and meta["label_orig"].shape == raw[i]["target"].shape
        got = warp_points(raw[i]["align_points"], meta["warp_affine"], 0.8, 128)
        template = (FACE_TEMPLATE_5 + 1) * 127 / 2  # FaRL's target points (S - 1), before the warp
        expected = (tanh_compress((template / 128 * 2 - 1).astype(np.float32), 0.8) + 1) / 2 * 128
        np.testing.assert_allclose(got, expected, atol=1.5)  # a least-squares fit of five drawn points
        # the crop shows the face: its labelled classes sit where the warped label map says
        image = item["image"].numpy().transpose(1, 2, 0)
        face = item["target"].numpy() == 1
        assert np.abs(image[face] * 255 - COLOURS[1]).max(axis=1).mean() < 40


def test_lapa_train_crop_keeps_image_and_labels_together(lapa_root: Path) -> None:
    spec = get_task("parsing_lapa")
    transform = spec.transforms("train", 128).__class__("train", 128, warp_factor=0.8, photometric=False)
    raw = spec.dataset(str(lapa_root), "train")[0]
    torch.manual_seed(3)
    out = transform(raw)
    assert "label_orig" not in out["meta"]
    image = (out["image"].numpy().transpose(1, 2, 0) * 255).astype(np.float32)
    label = out["target"].numpy()
    nearest_colour = np.abs(image[:, :, None, :] - COLOURS[None, None].astype(np.float32)).sum(-1).argmin(-1)
    assert (nearest_colour == label).mean() > 0.9  # bilinear image vs nearest labels differ on edges only
    assert len(np.unique(label)) >= 8


def _reference_f1(preds: list[np.ndarray], labels: list[np.ndarray], k: int) -> tuple[float, np.ndarray]:
    """F1 from one confusion matrix, as the reference's F1Score (numpy, no shared code)."""
    hist = np.zeros((k, k), np.int64)
    for p, t in zip(preds, labels, strict=True):
        hist += np.bincount(k * t.reshape(-1).astype(np.int64) + p.reshape(-1), minlength=k * k).reshape(k, k)
    f1 = 2 * np.diag(hist) / (hist.sum(0) + hist.sum(1))
    return float(np.mean(f1[1:])), hist


def converted_checkpoint(tmp_path: Path) -> Path:
    """A tiny, randomly initialised Faceptor-Full written in the authors' release layout and converted with
    ``faceptor convert official`` (the path the released weights take)."""
    import argparse

    from tests.test_interop_official import _source, release_layout

    ckpt = tmp_path / "checkpoint_rank0_iter_50000.pth.tar"
    torch.save(
        {"step": 50000, "state_dict": release_layout(_source("full"), "full"), "args": argparse.Namespace(seed=2048)},
        ckpt,
    )
    assert main(["convert", "official", str(ckpt), str(tmp_path / "converted"), "--variant", "full", "--strict"]) == 0
    return tmp_path / "converted"


def test_lapa_converted_checkpoint_evaluates_in_the_original_image_end_to_end(lapa_root: Path, tmp_path: Path) -> None:
    """A converted (tiny, random) checkpoint through ``faceptor eval`` on the real LaPa layout: F1 over the
    original images' pixels, after warping the 512-px logits back through the inverse tanh warp."""
    ckpt = converted_checkpoint(tmp_path)
    out = tmp_path / "metrics.json"
    assert (
        main(
            [
                "eval",
                str(ckpt),
                "--tasks",
                "parsing_lapa",
                "--root",
                f"parsing_lapa={lapa_root}",
                "--batch-size",
                "2",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    reported = json.loads(out.read_text())["parsing_lapa"]

    loaded = load(ckpt).eval()
    spec = get_task("parsing_lapa")
    size = loaded.tasks["parsing_lapa"].input_size
    assert size == 512  # the reference's input size, as converted
    ds = spec.dataset(str(lapa_root), "test", transform=spec.transforms("test", size))
    preds, labels, raw = [], [], []
    for i in range(len(ds)):  # one image at a time, as the reference's LaPa evaluator
        item = ds[i]
        with torch.no_grad():
            raw.append(loaded({size: item["image"][None]}, ["parsing_lapa"])["parsing_lapa"])
        logits = torch.nn.functional.interpolate(raw[-1], size=(size, size), mode="bilinear", align_corners=False)
        hwk = np.ascontiguousarray(logits[0].permute(1, 2, 0).numpy())
        h, w = item["meta"]["label_orig"].shape
        back = warp_to_original(hwk, item["meta"]["warp_affine"], 0.8, size, h, w)
        preds.append(back.argmax(-1))
        labels.append(item["meta"]["label_orig"])
    f1, hist = _reference_f1(preds, labels, 11)
    assert int(hist.sum()) == sum(lab.size for lab in labels)  # every original pixel, once
    assert reported["f1"] == pytest.approx(f1, abs=1e-9)
    assert "baseline/f1" in reported and np.isfinite(reported["baseline/f1"])

    crop = ParsingF1(spec.label_names, space="crop")  # the same predictions scored in the crop differ
    crop.update(torch.cat(raw), torch.stack([ds[i]["target"] for i in range(len(ds))]))
    assert int(crop.confusion.sum()) == len(ds) * size * size and crop.compute()["f1"] != pytest.approx(f1)
