"""Age family: MORPH II and UTKFace readers, DLDL-v2 loss, MAE."""

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

from faceptor_core.outputs import expected_age
from faceptor_tasks.builtin import builtin_tasks
from faceptor_tasks.families.age import AgeMAE, DLDLv2Loss, gaussian_label_distribution
from faceptor_tasks.families.common import DatasetFormatError
from faceptor_tasks.families.readers.age import read_morph2, read_utkface, utkface_split_of


def write_image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 26, 3), dtype=np.uint8)).save(path)


def test_morph2_lists(tmp_path: Path) -> None:
    lst = tmp_path / "label" / "RANDOM_80_20" / "train.txt"
    lst.parent.mkdir(parents=True)
    for name in ("a/001_16M.jpg", "a/002_30F.jpg"):
        write_image(tmp_path / "data" / name)
    lst.write_text("a/001_16M.jpg 16\n\na/002_30F.jpg 30\n")
    ds = read_morph2(str(tmp_path), "train")
    assert [ds[i]["target"] for i in range(2)] == [16.0, 30.0]
    assert ds[0]["image"].shape == (30, 26, 3)
    lst.write_text("a/001_16M.jpg 16\na/002_30F.jpg thirty\n")
    with pytest.raises(DatasetFormatError, match=r"train\.txt:2"):
        read_morph2(str(tmp_path), "train")
    assert len(read_morph2(str(tmp_path), "train", skip_invalid=True)) == 1


def test_utkface_original_names_and_prepared_csv(tmp_path: Path) -> None:
    names = ["1_0_0_20161219140623097.jpg.chip.jpg", "45_1_2_20170104.jpg", "100_0_0_x.jpg", "x_1_1_y.jpg"]
    for n in names:
        write_image(tmp_path / "UTKFace" / n)
    with pytest.raises(DatasetFormatError, match=r"x_1_1_y\.jpg: .*does not start with 'age_'"):
        read_utkface(str(tmp_path), "all")
    ds = read_utkface(str(tmp_path), "all", skip_invalid=True)
    assert sorted(ds[i]["target"] for i in range(len(ds))) == [1.0, 45.0, 100.0] and len(ds.skipped) == 1
    train = read_utkface(str(tmp_path), "train", skip_invalid=True)
    test = read_utkface(str(tmp_path), "test", skip_invalid=True)
    assert len(train) + len(test) == 3
    assert all(utkface_split_of(Path(s.image).name) == "test" for s in test.samples)
    # the reference's prepared layout
    (tmp_path / "label").mkdir()
    write_image(tmp_path / "data" / "9_0_1_2.jpg")
    (tmp_path / "label" / "test.csv").write_text(",filename,age\n0,9_0_1_2.jpg,9\n")
    prepared = read_utkface(str(tmp_path), "test")
    assert len(prepared) == 1 and prepared[0]["target"] == 9.0


def test_transform_collates(tmp_path: Path) -> None:
    for i in range(3):
        write_image(tmp_path / "data" / f"{i}.jpg")
    (tmp_path / "train.txt").write_text("".join(f"{i}.jpg {20 + i}\n" for i in range(3)))
    spec = next(s for s in builtin_tasks() if s.name == "age_morph2")
    for split in ("train", "test"):
        ds = spec.dataset(str(tmp_path), split if split == "train" else "train", transform=spec.transforms(split, 32))
        batch = default_collate([ds[i] for i in range(3)])
        assert batch["image"].shape == (3, 3, 32, 32) and batch["target"].dtype == torch.float32
        assert batch["target"].tolist() == [20.0, 21.0, 22.0]
        assert 0 <= float(batch["image"].min()) <= float(batch["image"].max()) <= 1


def test_label_distribution() -> None:
    d = gaussian_label_distribution(torch.tensor([30.0, 0.0, 130.0]))
    assert torch.allclose(d.sum(1), torch.ones(3))
    assert int(d[0].argmax()) == 30 and int(d[1].argmax()) == 0 and int(d[2].argmax()) == 100
    assert float(d[0, 31] / d[0, 30]) == pytest.approx(math.exp(-1 / 8))


def test_dldl_loss_hand_computed() -> None:
    age = torch.tensor([40.0])
    target = gaussian_label_distribution(age)
    # logits whose normalised sigmoid is exactly the target: KL 0, expected age = 40 (symmetric Gaussian)
    s = target * 0.5 / target.max()
    logits = torch.log(s / (1 - s))
    loss = DLDLv2Loss()(logits, age)
    assert float(loss) == pytest.approx(0.0, abs=1e-4)
    flat = DLDLv2Loss()(torch.zeros(1, 101), age)  # uniform p: KL = sum t log(101 t), E[age] = 50
    kl = float(torch.xlogy(target, target * 101).sum())
    assert float(flat) == pytest.approx(kl + 10.0, rel=1e-5)


def test_mae() -> None:
    m = AgeMAE()
    m.update(torch.tensor([20.0, 30.0]), torch.tensor([22.0, 30.0]))
    m.update(expected_age(torch.zeros(1, 101)), torch.tensor([44.0]))  # uniform -> 50
    assert m.compute()["mae"] == pytest.approx((2 + 0 + 6) / 3, rel=1e-5)


@given(st.lists(st.floats(0, 100), min_size=1, max_size=20), st.integers(1, 5), st.integers(0, 2**31))
@settings(max_examples=40, deadline=None)
def test_mae_accumulation_is_batch_independent(ages: list[float], step: int, seed: int) -> None:
    gt = torch.tensor(ages, dtype=torch.float64)
    pred = gt + torch.randn(len(ages), generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 5
    one, many = AgeMAE(), AgeMAE()
    one.update(pred, gt)
    for i in range(0, len(ages), step):
        many.update(pred[i : i + step], gt[i : i + step])
    assert one.compute()["mae"] == pytest.approx(many.compute()["mae"], rel=1e-12)
    assert one.compute()["mae"] >= 0
