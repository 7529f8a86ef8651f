"""The built-in declarations: task list, structure, weighting, and the core's plugin contract run on small
fixtures of every dataset format."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from faceptor_core import get_task
from faceptor_core.spec import TaskSpec
from faceptor_core.testing import run_contract
from faceptor_tasks.builtin import EXPRESSIONS, FLIP_68, PAPER_TASKS, builtin_tasks
from faceptor_tasks.families import (
    REFERENCE_TYPE_WEIGHTS,
    inter_points,
    landmark_task,
    task_weights,
    weighted_loss,
)
from faceptor_tasks.families.readers.landmarks import read_300w, read_aflw19
from tests.test_families_age import write_image as write_small_image
from tests.test_families_attributes import write_celeba
from tests.test_families_landmarks import random_points, write_300w_csv, write_aflw
from tests.test_families_parsing import write_celebamask, write_lapa
from tests.test_families_recognition import write_bin, write_recordio

TASKS = {
    "landmarks_300w": 68,
    "landmarks_wflw": 98,
    "landmarks_cofw": 29,
    "landmarks_aflw19": 19,
    "parsing_celebamask_hq": 19,
    "parsing_lapa": 11,
    "age_morph2": 101,
    "age_utkface": 101,
    "expression_rafdb": 7,
    "expression_affectnet": 7,
    "expression_ferplus": 7,
    "attributes_celeba": 40,
    "recognition_ms1mv3": 0,
}


def test_task_list_and_structure() -> None:
    specs = {s.name: s for s in builtin_tasks()}
    assert {n: s.num_queries for n, s in specs.items()} == TASKS
    for s in specs.values():
        assert all(getattr(s, f) is not None for f in ("dataset", "transforms", "loss", "metrics"))
        assert s.primary_metric
        assert get_task(s.name).name == s.name  # registered through the faceptor entry point
    # the six paper tasks keep their structural declarations
    assert specs["landmarks_300w"].flip_permutation == FLIP_68 and specs["landmarks_300w"].input_size == 512
    assert specs["expression_rafdb"].label_names == EXPRESSIONS
    assert specs["recognition_ms1mv3"].num_identities == 93431
    assert [specs[n].loss_weight for n in PAPER_TASKS] == [1000.0, 100.0, 6.0, 1.0, 2.0, 5.0]
    assert {s.input_size for s in specs.values() if s.head_type == "dense"} == {512}
    assert {s.input_size for s in specs.values() if s.head_type != "dense"} == {112}


def test_task_weights_formula() -> None:
    specs = {s.name: s for s in builtin_tasks()}
    seven = [
        specs[n]
        for n in (
            "landmarks_300w",
            "parsing_celebamask_hq",
            "age_morph2",
            "expression_affectnet",
            "expression_rafdb",
            "attributes_celeba",
            "recognition_ms1mv3",
        )
    ]
    w = task_weights(seven, REFERENCE_TYPE_WEIGHTS)
    assert w == pytest.approx(
        {
            "landmarks_300w": 1000,
            "parsing_celebamask_hq": 100,
            "age_morph2": 6,
            "expression_affectnet": 4,
            "expression_rafdb": 1,
            "attributes_celeba": 2,
            "recognition_ms1mv3": 5,
        }
    )
    plain = task_weights(seven)  # type weights default to 1: shares within each family
    assert plain["expression_affectnet"] == pytest.approx(0.8) and plain["landmarks_300w"] == 1.0
    losses = {"expression_affectnet": torch.tensor(2.0), "expression_rafdb": torch.tensor(7.0)}
    assert weighted_loss(losses, w).item() == pytest.approx((4 * 2 + 1 * 7) / 5)


def test_third_party_declaration_in_a_few_lines(tmp_path: Path) -> None:
    write_300w_csv(tmp_path, "train")
    spec = landmark_task(
        "landmarks_mine", 68, FLIP_68, reader=read_300w, input_size=64, norms={"inter_ocular": inter_points(36, 45)}
    )
    assert isinstance(spec, TaskSpec) and spec.family == "landmarks" and spec.head_type == "dense"
    ds = spec.dataset(tmp_path, "train", transform=spec.transforms("train", 64))
    assert ds[0]["target"].shape == (68, 2)


# -- the core's contract on fixtures -------------------------------------------------------------------------
def _fixture_300w(root: Path) -> None:
    write_300w_csv(root, "train")
    write_300w_csv(root, "test")


def _fixture_wflw(root: Path) -> None:
    for split in ("train", "test"):
        rows = []
        for i in range(4):
            write_small_image(root / "data" / f"{split}{i}.jpg")
            pts = random_points(98, 30, 26)
            rows.append(f"{split}{i}.jpg,0.12,13,15," + ",".join(f"{v:.2f}" for v in pts.reshape(-1)))
        (root / f"face_landmarks_wflw_{split}.csv").write_text("name,scale,cx,cy\n" + "\n".join(rows) + "\n")


def _fixture_cofw(root: Path) -> None:
    for name, ki, kp in (("COFW_train_color.mat", "IsTr", "phisTr"), ("COFW_test_color.mat", "IsT", "phisT")):
        images = np.empty((4, 1), dtype=object)
        phis = np.zeros((4, 87))
        for i in range(4):
            images[i, 0] = np.random.default_rng(i).integers(0, 256, (40, 48, 3), dtype=np.uint8)
            pts = random_points(29)
            phis[i, :29], phis[i, 29:58] = pts[:, 0], pts[:, 1]
        scipy.io.savemat(root / name, {ki: images, kp: phis})


def _fixture_morph(root: Path) -> None:
    (root / "label" / "RANDOM_80_20").mkdir(parents=True)
    for split in ("train", "test"):
        for i in range(4):
            write_small_image(root / "data" / f"{split}{i}.jpg")
        (root / "label" / "RANDOM_80_20" / f"{split}.txt").write_text(
            "".join(f"{split}{i}.jpg {20 + 7 * i}\n" for i in range(4))
        )


def _fixture_utk(root: Path) -> None:
    for i in range(40):
        write_small_image(root / "UTKFace" / f"{10 + i}_0_1_2017{i:04d}.jpg.chip.jpg")


def _fixture_rafdb(root: Path) -> None:
    (root / "EmoLabel").mkdir(parents=True)
    names = [f"train_{i:05d}" for i in range(4)] + [f"test_{i:04d}" for i in range(4)]
    labels = "".join(f"{n}.jpg {i % 7 + 1}\n" for i, n in enumerate(names))
    (root / "EmoLabel" / "list_patition_label.txt").write_text(labels)
    for n in names:
        write_small_image(root / "Image" / "aligned" / f"{n}_aligned.jpg")


def _fixture_prepared_labels(root: Path, splits: tuple[str, ...] = ("train", "test")) -> None:
    (root / "label").mkdir(parents=True)
    for split in splits:
        for i in range(4):
            write_small_image(root / "data" / f"{split}{i}.jpg")
        (root / "label" / f"{split}.txt").write_text("".join(f"{split}{i}.jpg {i}\n" for i in range(4)))


def _fixture_recognition(root: Path) -> None:
    write_recordio(root, [0, 1, 2, 3, 4])
    write_bin(root / "lfw.bin", 10)


FIXTURES = {
    "landmarks_300w": _fixture_300w,
    "landmarks_wflw": _fixture_wflw,
    "landmarks_cofw": _fixture_cofw,
    "parsing_celebamask_hq": lambda r: write_celebamask(r, (0, 0, 0, 0, 2), every_part=True),
    "parsing_lapa": lambda r: (write_lapa(r, "train", 4), write_lapa(r, "test", 4)),
    "age_morph2": _fixture_morph,
    "age_utkface": _fixture_utk,
    "expression_rafdb": _fixture_rafdb,
    "expression_affectnet": _fixture_prepared_labels,
    "expression_ferplus": _fixture_prepared_labels,
    "attributes_celeba": lambda r: (write_celeba(r, 5), _more_celeba(r)),
    "recognition_ms1mv3": _fixture_recognition,
}


def _more_celeba(root: Path) -> None:
    part = root / "Eval" / "list_eval_partition.txt"
    part.write_text(part.read_text().replace("000003.jpg 1", "000003.jpg 0"))


@pytest.mark.parametrize("task", sorted(FIXTURES))
def test_core_contract_on_fixtures(task: str, tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    FIXTURES[task](root)
    run_contract(task, str(root), tmp_path / "ckpt", checks=["spec", "dataset", "crop", "flip", "loss", "metrics"])


def test_core_contract_aflw19(tmp_path: Path) -> None:
    write_aflw(tmp_path, n=10, train=6)
    base = get_task("landmarks_aflw19")
    spec = base.model_copy(update={"dataset": partial(base.dataset.func, partial(read_aflw19, train_size=6))})
    run_contract(spec, str(tmp_path), tmp_path / "ckpt", checks=["spec", "dataset", "crop", "flip", "loss", "metrics"])
