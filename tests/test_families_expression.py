"""Expression family: RAF-DB, AffectNet and FERPlus readers (one class order), loss and accuracy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from torch.utils.data import default_collate

from faceptor_tasks.builtin import EXPRESSIONS, builtin_tasks
from faceptor_tasks.families.common import DatasetFormatError
from faceptor_tasks.families.expression import AccuracyMetric, ClassificationLoss
from faceptor_tasks.families.readers.expression import ferplus_majority, read_affectnet, read_ferplus, read_rafdb


def write_image(path: Path, size: tuple[int, int] = (24, 24)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)


def test_shared_order() -> None:
    assert EXPRESSIONS == ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")
    names = {t.name: t.label_names for t in builtin_tasks() if t.family == "expression"}
    assert set(names) == {"expression_rafdb", "expression_affectnet", "expression_ferplus"}
    assert all(v == EXPRESSIONS for v in names.values())


def test_rafdb_original_layout(tmp_path: Path) -> None:
    base = tmp_path / "basic"
    (base / "EmoLabel").mkdir(parents=True)
    lines = ["train_00001.jpg 1", "train_00002.jpg 7", "test_0001.jpg 4", "train_00003.jpg 5"]
    (base / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    for name in ("train_00001", "train_00002", "test_0001", "train_00003"):
        write_image(base / "Image" / "aligned" / f"{name}_aligned.jpg")
    train = read_rafdb(str(tmp_path), "train")
    assert [train[i]["target"] for i in range(len(train))] == [0, 6, 4]  # surprise, neutral, sadness
    assert [read_rafdb(str(base), "test")[0]["target"]] == [3]  # happiness; root may be basic/ itself
    (base / "EmoLabel" / "list_patition_label.txt").write_text("train_00001.jpg 8\n")
    with pytest.raises(DatasetFormatError, match=r"list_patition_label\.txt:1: .*not in 1\.\.7"):
        read_rafdb(str(tmp_path), "train")


def test_rafdb_prepared_layout(tmp_path: Path) -> None:
    (tmp_path / "label.txt").write_text("train_1.jpg 2\ntest_1.jpg 3\n")
    write_image(tmp_path / "data" / "train_1.jpg")
    write_image(tmp_path / "data" / "test_1.jpg")
    assert read_rafdb(str(tmp_path), "train")[0]["target"] == 1


def test_affectnet_csv_maps_and_excludes(tmp_path: Path) -> None:
    d = tmp_path / "Manually_Annotated_file_lists"
    d.mkdir()
    header = "subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal"
    rows = [f"1/a{k}.jpg,2,3,10,12,1.0;2.0;3.0,{k},0.1,0.2" for k in range(11)]
    (d / "training.csv").write_text("\n".join([header, *rows]) + "\n")
    for k in range(11):
        write_image(tmp_path / "Manually_Annotated_Images" / "1" / f"a{k}.jpg", (30, 30))
    ds = read_affectnet(str(tmp_path), "train")
    # 0 neutral, 1 happy, 2 sad, 3 surprise, 4 fear, 5 disgust, 6 anger -> shared order
    assert [ds[i]["target"] for i in range(len(ds))] == [6, 3, 4, 0, 1, 2, 5]
    np.testing.assert_allclose(ds[0]["box"], [2, 3, 12, 15])
    assert ds.excluded == {"contempt": 1, "none": 1, "uncertain": 1, "no face": 1}
    out = next(s for s in builtin_tasks() if s.name == "expression_affectnet").transforms("test", 16)(ds.raw(0))
    assert out["image"].shape == (3, 16, 16) and out["target"].dtype == torch.int64 and int(out["target"]) == 6


def test_affectnet_prepared_layout(tmp_path: Path) -> None:
    (tmp_path / "label").mkdir()
    (tmp_path / "label" / "test.txt").write_text("x.jpg 1\ny.jpg 7\n")
    write_image(tmp_path / "data" / "x.jpg")
    write_image(tmp_path / "data" / "y.jpg")
    ds = read_affectnet(str(tmp_path), "test")
    assert len(ds) == 1 and ds[0]["target"] == 3 and ds.excluded["contempt"] == 1


def test_ferplus_majority_vote() -> None:
    votes = np.zeros(10, int)
    votes[[1, 0]] = 6, 4  # happiness wins 6 of 10
    assert ferplus_majority(votes) == EXPRESSIONS.index("happiness")
    votes[:] = 0
    votes[[6, 2]] = 5, 5
    assert ferplus_majority(votes) == "no majority"
    votes[:] = 0
    votes[7] = 9
    assert ferplus_majority(votes) == "contempt"
    for col, name in enumerate(("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear")):
        v = np.zeros(10, int)
        v[col] = 10
        assert EXPRESSIONS[ferplus_majority(v)] == name


def test_ferplus_original_csv(tmp_path: Path) -> None:
    header = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"
    rows = [
        "Training,fer0000000.png,4,0,0,1,3,2,0,0,0,0",  # no majority
        "Training,fer0000001.png,0,10,0,0,0,0,0,0,0,0",  # happiness
        "Training,,0,0,0,0,0,0,0,0,0,10",  # removed image
        "PrivateTest,fer0000003.png,0,0,0,0,0,0,9,0,1,0",  # fear
        "Training,fer0000004.png,0,0,8,0,0,0,0,0,2,0",
    ]  # surprise
    (tmp_path / "fer2013new.csv").write_text("\n".join([header, *rows]) + "\n")
    for name, folder in (("fer0000001", "FER2013Train"), ("fer0000003", "FER2013Test"), ("fer0000004", "FER2013Train")):
        write_image(tmp_path / folder / f"{name}.png", (48, 48))
    train = read_ferplus(str(tmp_path), "train")
    assert [train[i]["target"] for i in range(len(train))] == [3, 0]
    assert train.excluded == {"no majority": 1, "no image (removed by FER+)": 1}
    assert read_ferplus(str(tmp_path), "test")[0]["target"] == 1
    (tmp_path / "fer2013new.csv").write_text(header + "\nTraining,fer0000001.png,0,10\n")
    with pytest.raises(DatasetFormatError, match=r"fer2013new\.csv:2: .*12 columns"):
        read_ferplus(str(tmp_path), "train")


def test_loss_and_transform_collate(tmp_path: Path) -> None:
    (tmp_path / "label.txt").write_text("".join(f"train_{i}.jpg {i + 1}\n" for i in range(4)))
    for i in range(4):
        write_image(tmp_path / "data" / f"train_{i}.jpg", (40, 36))
    spec = next(s for s in builtin_tasks() if s.name == "expression_rafdb")
    ds = spec.dataset(str(tmp_path), "train", transform=spec.transforms("train", 32))
    batch = default_collate([ds[i] for i in range(4)])
    assert batch["image"].shape == (4, 3, 32, 32) and batch["target"].tolist() == [0, 1, 2, 3]
    logits = torch.zeros(4, 7, requires_grad=True)
    loss = spec.loss(spec)(logits, batch["target"])
    assert loss.item() == pytest.approx(np.log(7), rel=1e-6)
    loss.backward()
    assert isinstance(spec.loss(spec), ClassificationLoss)


def test_accuracy_hand_computed() -> None:
    m = AccuracyMetric(3)
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.5, 0.4, 0.1], [0.2, 0.2, 0.6]])
    m.update(probs, torch.tensor([0, 1, 1, 2]))
    out = m.compute()
    assert out["accuracy"] == 0.75 and out["mean_class_accuracy"] == pytest.approx((1 + 0.5 + 1) / 3)


@given(st.integers(1, 30), st.integers(1, 7), st.integers(0, 2**31))
@settings(max_examples=40, deadline=None)
def test_accuracy_accumulation_is_batch_independent(n: int, step: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    probs, gt = torch.rand(n, 7, generator=g), torch.randint(0, 7, (n,), generator=g)
    one, many = AccuracyMetric(7), AccuracyMetric(7)
    one.update(probs, gt)
    for i in range(0, n, step):
        many.update(probs[i : i + step], gt[i : i + step])
    assert one.compute() == many.compute()
    assert 0 <= one.compute()["accuracy"] <= 1


def test_top1_is_topk_on_the_logits_as_the_reference() -> None:
    """The reference takes ``topk`` of the logits (timm's ``accuracy``). Softmax can tie classes whose logits
    differ (0 and 1e-9 give equal float32 probabilities), and among exactly tied logits ``topk`` need not
    return the first index (argmax does): the metric follows ``topk`` on the logits in both cases."""
    logits = torch.tensor([[0.0, 1e-9, -5.0, -5.0, -5.0, -5.0, -5.0], [1.0, 3.0, 3.0, 0.0, 3.0, 0.0, 0.0]])
    probs = logits.softmax(dim=-1)
    assert probs[0, 0] == probs[0, 1] and int(probs[0].argmax()) == 0  # the probabilities tie
    target = logits.topk(1, dim=-1).indices[:, 0]
    assert int(target[0]) == 1
    m = AccuracyMetric(7)
    m.update(logits, target)
    assert m.compute()["accuracy"] == 1.0
    assert AccuracyMetric.takes_raw_output  # evaluation hands it the logits, not softmax probabilities


def test_evaluation_feeds_the_logits(monkeypatch) -> None:
    from faceptor_core import get_task
    from faceptor_core.evaluate import evaluate_task
    from tests.conftest import tiny_build

    spec = get_task("synth_expression")
    model = tiny_build([spec.name])
    ds = spec.dataset(None, "test")
    labels = torch.tensor([int(ds[i]["target"]) for i in range(4)])
    tied = torch.full((4, 7), -5.0)
    tied[torch.arange(4), 0] = 0.0
    tied[torch.arange(4), labels] = 1e-9  # softmax ties the label with class 0 (or the label is class 0)
    monkeypatch.setattr(model, "forward", lambda images, tasks=None: {spec.name: tied[: len(images[32])]})
    assert evaluate_task(model, spec, None, "test", batch_size=4, limit=4)["accuracy"] == 1.0
