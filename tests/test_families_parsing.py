"""Parsing family: CelebAMask-HQ and LaPa fixtures, transforms, loss and F1."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from torch.utils.data import default_collate

from faceptor_tasks.builtin import builtin_tasks
from faceptor_tasks.families.common import DatasetFormatError
from faceptor_tasks.families.geometry import FACE_TEMPLATE_5, apply_affine, face_align_matrix, resize_matrix
from faceptor_tasks.families.parsing import ParsingF1, ParsingLoss, ParsingTransform, soft_dice_loss
from faceptor_tasks.families.readers.parsing import (
    CELEBAMASK_FLIP,
    CELEBAMASK_LABELS,
    CELEBAMASK_PARTS,
    LAPA_FLIP,
    LAPA_LABELS,
    read_celebamask_hq,
    read_lapa,
)

RNG = np.random.default_rng(1)


def save(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def write_celebamask(root: Path, groups: tuple[int, ...] = (0, 0, 1, 2), every_part: bool = False) -> None:
    """HQ faces 0, 1, ... -> CelebA 000001, 000002, ... in partition ``groups``; one more CelebA image
    (in the partition file only) has no HQ version. ``every_part`` adds a mask for each of the 18 parts (so
    every class is labelled: the reference's mean F1 is NaN when a class is absent from the whole set)."""
    lines = ["idx orig_idx orig_file"]
    for hq in range(len(groups)):
        save(root / "CelebA-HQ-img" / f"{hq}.jpg", RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8))
        lines.append(f"{hq} {hq + 10} {hq + 1:06d}.jpg")
        skin = np.zeros((32, 32), np.uint8)
        skin[4:28, 4:28] = 255
        hair = np.zeros((32, 32), np.uint8)
        hair[0:10] = 255
        eye = np.zeros((32, 32), np.uint8)
        eye[12:14, 8:12] = 255
        for part, mask in (("skin", skin), ("hair", hair), ("l_eye", eye)):
            save(root / "CelebAMask-HQ-mask-anno" / "0" / f"{hq:05d}_{part}.png", mask)
        for k, part in enumerate(CELEBAMASK_PARTS if every_part else ()):
            if part in ("skin", "hair", "l_eye"):
                continue
            mask = np.zeros((32, 32), np.uint8)
            mask[28:32, k + 6 : k + 8] = 255
            save(root / "CelebAMask-HQ-mask-anno" / "0" / f"{hq:05d}_{part}.png", mask)
    (root / "CelebA-HQ-to-CelebA-mapping.txt").write_text("\n".join(lines) + "\n")
    (root / "list_eval_partition.txt").write_text("".join(f"{i + 1:06d}.jpg {g}\n" for i, g in enumerate((*groups, 0))))


def test_celebamask_hq_paints_parts_in_order(tmp_path: Path) -> None:
    write_celebamask(tmp_path)
    train = read_celebamask_hq(str(tmp_path), "train")
    assert len(train) == 2 and len(read_celebamask_hq(str(tmp_path), "test")) == 1
    item = train[0]
    assert item["image"].shape == (32, 32, 3)  # resized to the mask size
    label = item["target"]
    skin, hair, l_eye = (CELEBAMASK_PARTS.index(p) + 1 for p in ("skin", "hair", "l_eye"))
    assert label.dtype == np.uint8 and label.shape == (32, 32)
    assert label[20, 20] == skin and label[5, 20] == hair and label[12, 9] == l_eye and label[31, 31] == 0
    assert label[2, 2] == hair  # hair is painted after skin


def test_celebamask_hq_missing_parts_and_bad_lines(tmp_path: Path) -> None:
    write_celebamask(tmp_path)
    for f in (tmp_path / "CelebAMask-HQ-mask-anno" / "0").glob("00001_*.png"):
        f.unlink()
    with pytest.raises(DatasetFormatError, match=r"mapping\.txt:3: no part masks"):
        read_celebamask_hq(str(tmp_path), "train")
    part = tmp_path / "list_eval_partition.txt"
    part.write_text(part.read_text().replace("000001.jpg 0", "000001.jpg"))
    ds = read_celebamask_hq(str(tmp_path), "train", skip_invalid=True)
    assert len(ds) == 0 and sorted(line for _, line, _ in ds.skipped) == [1, 3]


def write_lapa(root: Path, split: str = "train", n: int = 3) -> list[np.ndarray]:
    all_pts = []
    for i in range(n):
        save(root / split / "images" / f"f{i}.jpg", RNG.integers(0, 256, (50, 40, 3), dtype=np.uint8))
        save(root / split / "labels" / f"f{i}.png", RNG.integers(0, 11, (50, 40), dtype=np.uint8))
        pts = RNG.uniform(5, 35, (106, 2)).astype(np.float32)
        all_pts.append(pts)
        (root / split / "landmarks" / f"f{i}.txt").parent.mkdir(parents=True, exist_ok=True)
        (root / split / "landmarks" / f"f{i}.txt").write_text("106\n" + "\n".join(f"{x} {y}" for x, y in pts))
    return all_pts


def test_lapa_reader_and_alignment(tmp_path: Path) -> None:
    pts = write_lapa(tmp_path)
    ds = read_lapa(str(tmp_path), "train")
    assert len(ds) == 3
    item = ds[1]
    assert item["target"].shape == (50, 40) and item["image"].shape == (50, 40, 3)
    expected = np.asarray(Image.open(tmp_path / "train" / "labels" / "f1.png"))
    np.testing.assert_array_equal(item["target"], expected)
    np.testing.assert_allclose(item["align_points"], pts[1][[104, 105, 54, 84, 90]], atol=1e-5)
    # eval crop: a similarity putting the five points as close as possible to the template
    out = ParsingTransform("test", 64)(item)
    mapped = apply_affine(item["align_points"], out["meta"]["affine"])
    assert out["target"].dtype == torch.int64 and out["target"].shape == (64, 64)
    assert np.isfinite(mapped).all() and mapped.shape == (5, 2)
    # the template lives in a 512-px frame (FaRL's: [-1, 1] onto the centres of pixels 0 and 511), resized to
    # the input as a whole image is
    template = apply_affine((FACE_TEMPLATE_5 + 1) * 511 / 2, resize_matrix(512, 512, 64))
    same = ParsingTransform("test", 64)({**item, "align_points": (template - 31.5) / 2 + 20})
    np.testing.assert_allclose(apply_affine((template - 31.5) / 2 + 20, same["meta"]["affine"]), template, atol=1e-6)
    # at FaRL's 512 px the crop is FaRL's alignment exactly
    at512 = ParsingTransform("test", 512)(item)["meta"]["affine"]
    np.testing.assert_allclose(at512, face_align_matrix(item["align_points"], 512), atol=1e-5)


def test_lapa_errors_name_files(tmp_path: Path) -> None:
    write_lapa(tmp_path)
    (tmp_path / "train" / "landmarks" / "f2.txt").write_text("106\n1 2 3")
    with pytest.raises(DatasetFormatError, match=r"f2\.txt:1: declares 106 points"):
        read_lapa(str(tmp_path), "train")
    (tmp_path / "train" / "labels" / "f0.png").unlink()
    ds = read_lapa(str(tmp_path), "train", skip_invalid=True)
    assert len(ds) == 1 and {Path(f).name for f, _, _ in ds.skipped} == {"f0.png", "f2.txt"}


def test_transform_and_collate(tmp_path: Path) -> None:
    write_celebamask(tmp_path)
    spec = next(s for s in builtin_tasks() if s.name == "parsing_celebamask_hq")
    ds = spec.dataset(str(tmp_path), "train", transform=spec.transforms("train", 64))
    batch = default_collate([ds[0], ds[1]])
    assert batch["image"].shape == (2, 3, 64, 64) and batch["target"].shape == (2, 64, 64)
    assert batch["target"].dtype == torch.int64 and int(batch["target"].max()) < 19
    assert batch["meta"]["affine"].shape == (2, 2, 3) and batch["meta"]["orig_size"].tolist() == [[32, 32]] * 2


def test_flip_permutes_classes() -> None:
    label = np.zeros((16, 16), np.uint8)
    label[:, :4] = 1  # "left" class on the left
    t = ParsingTransform("train", 16, label_flip=(0, 2, 1), shift=0, rotation=0, scale=0, photometric=False)
    item = {"image": np.zeros((16, 16, 3), np.uint8), "target": label, "meta": {}}
    seen = set()
    for seed in range(12):
        torch.manual_seed(seed)
        out = t(item)["target"].numpy()
        seen.add(int(out[0, 0]))
        assert out[0, 0] == 1 or (out[0, 0] == 0 and out[0, 15] == 2)
    assert seen == {0, 1}


@pytest.mark.parametrize(("names", "perm"), [(CELEBAMASK_LABELS, CELEBAMASK_FLIP), (LAPA_LABELS, LAPA_FLIP)])
def test_class_flip_permutations(names: tuple[str, ...], perm: tuple[int, ...]) -> None:
    assert sorted(perm) == list(range(len(names))) and all(perm[perm[i]] == i for i in perm)
    for i, name in enumerate(names):
        mirrored = names[perm[i]]
        if len(name) == 2 and name[0] in "lr" and name not in ("ll", "ul"):  # lb/rb, le/re, lr/rr
            assert mirrored == {"l": "r", "r": "l"}[name[0]] + name[1]
        else:
            assert mirrored == name


def test_parsing_loss_upsamples() -> None:
    target = torch.randint(0, 3, (2, 16, 16))
    perfect = torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).float() * 20
    low = ParsingLoss()(perfect, target)
    coarse = ParsingLoss()(torch.zeros(2, 3, 4, 4), target)
    assert low < 1e-6 and coarse.item() == pytest.approx(np.log(3), rel=1e-5)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(2, 6))
def test_soft_dice_is_zero_for_the_answer_and_ignores_ignored_pixels(seed: int, k: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    target = torch.randint(0, k, (2, 6, 6), generator=gen)
    perfect = 50.0 * torch.nn.functional.one_hot(target, k).permute(0, 3, 1, 2).float()
    assert float(soft_dice_loss(perfect, target)) < 1e-6
    noise = torch.randn(2, k, 6, 6, generator=gen)
    loss = float(soft_dice_loss(noise, target))
    assert 0.0 < loss <= 1.0
    ignored = target.clone()
    ignored[:, :3] = 255
    masked = noise.clone()
    masked[:, :, :3] = torch.randn(2, k, 3, 6, generator=gen)  # what ignored pixels predict does not count
    torch.testing.assert_close(soft_dice_loss(masked, ignored), soft_dice_loss(noise, ignored))


def test_dice_weight_adds_dice_to_cross_entropy() -> None:
    target = torch.randint(0, 3, (2, 8, 8), generator=torch.Generator().manual_seed(0))
    logits = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1), requires_grad=True)
    both = ParsingLoss(dice_weight=0.5)(logits, target)
    torch.testing.assert_close(both, ParsingLoss()(logits, target) + 0.5 * soft_dice_loss(logits, target))
    both.backward()
    assert torch.isfinite(logits.grad).all()


def test_f1_hand_computed() -> None:
    m = ParsingF1(("background", "a", "b"))
    m.update(torch.tensor([[0, 1, 1, 1, 2, 0]]), torch.tensor([[0, 0, 1, 1, 2, 2]]))
    out = m.compute()
    assert out["f1_a"] == pytest.approx(0.8) and out["f1_b"] == pytest.approx(2 / 3)
    assert out["f1"] == pytest.approx((0.8 + 2 / 3) / 2)


def test_class_absent_from_the_whole_set_makes_f1_nan_as_the_reference() -> None:
    m = ParsingF1(("background", "a", "b"))
    m.update(torch.tensor([[0, 1]]), torch.tensor([[0, 1]]))  # class b: neither predicted nor labelled
    out = m.compute()
    assert math.isnan(out["f1"]) and math.isnan(out["f1_b"]) and out["f1_a"] == 1.0
    skip = ParsingF1(("background", "a", "b"), absent="skip")
    skip.update(torch.tensor([[0, 1]]), torch.tensor([[0, 1]]))
    assert skip.compute()["f1"] == 1.0 and "f1_b" not in skip.compute()
    with pytest.raises(ValueError, match="absent"):
        ParsingF1(("background", "a"), absent="drop")


def test_scores_in_the_original_image() -> None:
    """A 16 px label map upscaled to a 32 px crop: every original pixel centre falls between two crop pixels of
    its own class, so the crop labels warped back reproduce the original exactly, pixel for pixel."""
    label = RNG.integers(0, 4, (16, 16)).astype(np.uint8)
    out = ParsingTransform("test", 32)({"image": np.zeros((16, 16, 3), np.uint8), "target": label, "meta": {}})
    assert out["meta"]["label_orig"] is label and out["meta"]["warp_factor"] == 0.0
    batch = default_collate([out, out])
    m = ParsingF1(("bg", "a", "b", "c"))
    m.update(batch["target"], batch["target"], batch["meta"])
    assert m.compute()["f1"] == 1.0 and int(m.confusion.sum()) == 2 * 256  # counted on the original grid
    logits = torch.nn.functional.one_hot(batch["target"], 4).permute(0, 3, 1, 2).float()[:, :, ::2, ::2]
    m.reset()
    m.update(logits, batch["target"], batch["meta"])  # 16 px logits, upsampled to the crop, then warped back
    assert int(m.confusion.sum()) == 2 * 256
    crop = ParsingF1(("bg", "a", "b", "c"), space="crop")
    crop.update(batch["target"], batch["target"], batch["meta"])
    assert int(crop.confusion.sum()) == 2 * 32 * 32


@given(st.integers(1, 8), st.lists(st.integers(1, 4), min_size=1, max_size=4), st.integers(0, 2**31))
@settings(max_examples=30, deadline=None)
def test_f1_accumulation_is_batch_independent(n: int, cuts: list[int], seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    gt, pred = torch.randint(0, 5, (n, 6, 6), generator=g), torch.randint(0, 5, (n, 6, 6), generator=g)
    one, many = ParsingF1(tuple("bcdef")), ParsingF1(tuple("bcdef"))
    one.update(pred, gt)
    start = 0
    for c in [*cuts, n]:
        many.update(pred[start : start + c], gt[start : start + c])
        start = min(n, start + c)
    assert one.compute() == many.compute()
    assert all(0 <= v <= 1 for v in one.compute().values() if v == v)
