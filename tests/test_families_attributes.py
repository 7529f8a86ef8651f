"""Attribute family: CelebA reader, masked BCE, mAcc."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from torch.utils.data import default_collate

from faceptor_tasks.builtin import builtin_tasks
from faceptor_tasks.families.attributes import AttributeAccuracy, MaskedBCELoss
from faceptor_tasks.families.common import DatasetFormatError
from faceptor_tasks.families.readers.attributes import CELEBA_ATTRIBUTES, read_celeba_attributes


def write_celeba(root: Path, n: int = 5) -> np.ndarray:
    rng = np.random.default_rng(3)
    values = rng.choice([-1, 1], (n, 40))
    (root / "Anno").mkdir(parents=True)
    (root / "Eval").mkdir()
    lines = [str(n), " ".join(CELEBA_ATTRIBUTES)]
    lines += [f"{i + 1:06d}.jpg " + " ".join(f"{v:2d}" for v in values[i]) for i in range(n)]
    (root / "Anno" / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    groups = [0, 0, 1, 2, 0][:n]
    part = "".join(f"{i + 1:06d}.jpg {g}\n" for i, g in enumerate(groups))
    (root / "Eval" / "list_eval_partition.txt").write_text(part)
    for i in range(n):
        p = root / "Img" / "img_align_celeba" / f"{i + 1:06d}.jpg"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)).save(p)
    return values


def test_celeba_reader(tmp_path: Path) -> None:
    values = write_celeba(tmp_path)
    train = read_celeba_attributes(str(tmp_path), "train")
    assert len(train) == 3 and len(read_celeba_attributes(str(tmp_path), "test")) == 1
    assert len(read_celeba_attributes(str(tmp_path), "trainval")) == 4
    item = train[2]  # image 000005
    assert item["image"].shape == (218, 178, 3)
    assert item["target"].dtype == np.int64 and item["target"].tolist() == (values[4] > 0).astype(int).tolist()


def test_celeba_errors(tmp_path: Path) -> None:
    write_celeba(tmp_path)
    attr = tmp_path / "Anno" / "list_attr_celeba.txt"
    lines = attr.read_text().splitlines()
    lines[3] = lines[3].replace(" 1", " 2", 1) if " 1" in lines[3] else lines[3].replace("-1", " 2", 1)
    attr.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetFormatError, match=r"list_attr_celeba\.txt:4: .*-1, 0 or 1"):
        read_celeba_attributes(str(tmp_path), "train")
    ds = read_celeba_attributes(str(tmp_path), "train", skip_invalid=True)
    assert len(ds) == 2 and [line for _, line, _ in ds.skipped] == [4]
    lines[0] = "7"
    attr.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetFormatError, match=r"list_attr_celeba\.txt:(1|4)"):
        read_celeba_attributes(str(tmp_path), "all")


def test_transform_collates(tmp_path: Path) -> None:
    write_celeba(tmp_path)
    spec = next(s for s in builtin_tasks() if s.name == "attributes_celeba")
    assert spec.label_names == CELEBA_ATTRIBUTES and spec.num_queries == 40
    ds = spec.dataset(str(tmp_path), "train", transform=spec.transforms("train", 32))
    batch = default_collate([ds[i] for i in range(3)])
    assert batch["image"].shape == (3, 3, 32, 32) and batch["target"].shape == (3, 40)
    assert batch["target"].dtype == torch.float32 and set(batch["target"].unique().tolist()) <= {0.0, 1.0}


def test_masked_bce_hand_computed() -> None:
    logits = torch.tensor([[0.0, 2.0, -1.0], [1.0, 0.0, 0.0]])
    target = torch.tensor([[1.0, -1.0, 0.0], [-1.0, 0.0, 1.0]])
    loss = MaskedBCELoss()(logits, target)
    ln2 = np.log(2)
    expected = (ln2 + np.log1p(np.exp(-1.0)) + ln2 + ln2) / 2  # masked entries contribute nothing
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_macc_hand_computed() -> None:
    m = AttributeAccuracy(("a", "b"))
    m.update(torch.tensor([[0.9, 0.2], [0.4, 0.6], [0.5, 0.1]]), torch.tensor([[1, 0], [1, -1], [0, 0]]))
    out = m.compute()
    # a: right, wrong, right (0.5 is negative, as the reference's rounding) -> 2/3; b: right, unknown, right -> 1
    assert out["acc_a"] == pytest.approx(2 / 3) and out["acc_b"] == 1.0 and out["macc"] == pytest.approx(5 / 6)


@given(st.integers(1, 20), st.integers(1, 6), st.integers(0, 2**31))
@settings(max_examples=40, deadline=None)
def test_macc_accumulation_is_batch_independent(n: int, step: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    prob, gt = torch.rand(n, 40, generator=g), torch.randint(-1, 2, (n, 40), generator=g)
    one, many = AttributeAccuracy(CELEBA_ATTRIBUTES), AttributeAccuracy(CELEBA_ATTRIBUTES)
    one.update(prob, gt)
    for i in range(0, n, step):
        many.update(prob[i : i + step], gt[i : i + step])
    assert one.compute() == many.compute()
    assert all(0 <= v <= 1 for v in one.compute().values())


def test_probability_exactly_half_is_negative_as_the_reference(monkeypatch) -> None:
    """The reference predicts ``round(sigmoid(logit))``: 0.5 rounds to 0. A logit of 1e-9 has a float32 sigmoid
    of exactly 0.5, so it is negative too; 1e-3 is positive."""
    from faceptor_core import get_task
    from faceptor_core.evaluate import evaluate_task
    from tests.conftest import tiny_build

    assert torch.sigmoid(torch.tensor(1e-9)) == 0.5 and torch.round(torch.tensor(0.5)) == 0
    m = AttributeAccuracy(("a", "b"))
    m.update(torch.tensor([[0.5, 0.5]]), torch.tensor([[0, 1]]))
    assert m.compute()["acc_a"] == 1.0 and m.compute()["acc_b"] == 0.0
    spec = get_task("synth_attributes")
    model = tiny_build([spec.name])
    logits = torch.full((4, spec.num_queries), 1e-9)
    logits[:, 0] = 1e-3
    monkeypatch.setattr(model, "forward", lambda images, tasks=None: {spec.name: logits[: len(images[32])]})
    out = evaluate_task(model, spec, None, "test", batch_size=4, limit=4)
    ds = spec.dataset(None, "test")
    truth = np.stack([np.asarray(ds[i]["target"]) for i in range(4)])
    expected = [(truth[:, 0] == 1).mean(), *((truth[:, k] == 0).mean() for k in range(1, spec.num_queries))]
    assert out["macc"] == pytest.approx(float(np.mean(expected)))
