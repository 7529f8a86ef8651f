"""Damaged or suspicious records are never used silently: each is an error naming its file and line, or (with
``skip_invalid``) a record in the dataset's report; a split with nothing usable is an error; metrics refuse
NaN predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import faceptor_core
from faceptor_core import TaskRegistry
from faceptor_core.cli import main
from faceptor_core.evaluate import NonFinitePredictionError, evaluate_task
from faceptor_core.train import RunConfig, Trainer
from faceptor_tasks.families.age import AgeMAE
from faceptor_tasks.families.common import (
    DatasetFormatError,
    FaceDataset,
    Sample,
    build_dataset,
    load_label_map,
)
from faceptor_tasks.families.common import (
    NonFinitePredictionError as MetricNaNError,
)
from faceptor_tasks.families.expression import AccuracyMetric, expression_task
from faceptor_tasks.families.landmarks import NMEMetric, inter_points
from faceptor_tasks.families.parsing import ParsingF1
from faceptor_tasks.families.readers.attributes import CELEBA_ATTRIBUTES, read_celeba_attributes
from faceptor_tasks.families.readers.expression import read_rafdb
from faceptor_tasks.families.readers.parsing import read_lapa
from faceptor_tasks.families.recognition import VerificationMetric
from tests.conftest import TINY_DECODER, tiny_build
from tests.test_families_landmarks import write_300w_csv
from tests.test_families_parsing import write_lapa

RNG = np.random.default_rng(5)


def task(name):
    return faceptor_core.get_task(name)


def rewrite_csv_row(csv: Path, row: int, edit) -> None:
    lines = csv.read_text().splitlines()
    fields = lines[row].split(",")
    edit(fields)
    lines[row] = ",".join(fields)
    csv.write_text("\n".join(lines) + "\n")


# -- records that are unusable ------------------------------------------------------------------------
def test_rafdb_names_fitting_neither_split_are_errors_not_silent_drops(tmp_path):
    (tmp_path / "label.txt").write_text("train_1.jpg 2\nval_1.jpg 3\ntest_1.jpg 1\n")
    for name in ("train_1", "val_1", "test_1"):
        Image.fromarray(RNG.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(tmp_path / f"{name}.jpg")
        (tmp_path / "data").mkdir(exist_ok=True)
        (tmp_path / f"{name}.jpg").rename(tmp_path / "data" / f"{name}.jpg")
    with pytest.raises(DatasetFormatError, match=r"label\.txt:2: .*'val_1\.jpg' fits neither split"):
        read_rafdb(str(tmp_path), "train")
    ds = read_rafdb(str(tmp_path), "test", skip_invalid=True)
    assert len(ds) == 1 and [(Path(f).name, line) for f, line, _ in ds.skipped] == [("label.txt", 2)]
    assert "skipped 1 (" in ds.report().summary() and "val_1.jpg" in ds.report().summary()


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_non_finite_landmarks_are_rejected_for_every_reader_of_the_family(tmp_path, value):
    """The WFLW text layout parses 'nan' as a float: the family check catches it, naming the line."""
    lst = tmp_path / "list_98pt_rect_attr_train_test"
    lst.mkdir()
    lines = []
    for i in range(3):
        Image.fromarray(RNG.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(tmp_path / f"img{i}.png")
        pts = RNG.uniform(5, 35, (98, 2)).astype(str)
        if i == 1:
            pts[7] = [value, "3.0"]
        lines.append(" ".join([*pts.reshape(-1), "2", "2", "40", "38", "0", "0", "0", "0", "0", "0", f"img{i}.png"]))
    (lst / "list_98pt_rect_attr_train.txt").write_text("\n".join(lines) + "\n")
    spec = task("landmarks_wflw")
    with pytest.raises(DatasetFormatError, match=r"list_98pt_rect_attr_train\.txt:2: non-finite landmark\(s\) 7"):
        spec.dataset(str(tmp_path), "train")
    ds = spec.dataset(str(tmp_path), "train", skip_invalid=True)
    assert len(ds) == 2 and ds.skipped[0][1] == 2


def test_landmarks_far_outside_the_image_are_rejected_when_loaded(tmp_path):
    write_300w_csv(tmp_path, n=3)
    csv = tmp_path / "face_landmarks_300w_train.csv"
    rewrite_csv_row(csv, 2, lambda f: f.__setitem__(10, "4800.0"))  # point 3's x, in a 48-px-wide image
    spec = task("landmarks_300w")
    ds = spec.dataset(str(tmp_path), "train")
    assert ds[0]["target"].shape == (68, 2)
    with pytest.raises(DatasetFormatError, match=r"csv:3: 1 landmark\(s\) far outside the 48 x 40 image"):
        ds[1]
    lenient = spec.dataset(str(tmp_path), "train", skip_invalid=True)
    assert np.isfinite(lenient[1]["target"]).all()  # replaced by the next good item
    assert lenient.skipped[-1][1] == 3 and "far outside" in lenient.report().summary()


def test_duplicate_rows_are_dropped_and_named(tmp_path):
    write_300w_csv(tmp_path, n=3)
    csv = tmp_path / "face_landmarks_300w_train.csv"
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join([*lines, lines[1]]) + "\n")  # row 2 repeated as row 5
    ds = task("landmarks_300w").dataset(str(tmp_path), "train")
    assert len(ds) == 3
    assert [(Path(f).name, line, why) for f, line, why in ds.dropped] == [
        ("face_landmarks_300w_train.csv", 5, f"duplicate of {csv}:2")
    ]
    assert "dropped 1" in ds.report().summary()


def test_a_partition_listing_an_image_in_two_splits_is_an_error(tmp_path):
    (tmp_path / "img_align_celeba").mkdir()
    names = [f"{i:06d}.jpg" for i in range(1, 4)]
    for n in names:
        Image.fromarray(RNG.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(tmp_path / "img_align_celeba" / n)
    rows = [f"{n} " + " ".join(["-1"] * 40) for n in names]
    (tmp_path / "list_attr_celeba.txt").write_text("\n".join(["3", " ".join(CELEBA_ATTRIBUTES), *rows]) + "\n")
    (tmp_path / "list_eval_partition.txt").write_text("000001.jpg 0\n000002.jpg 0\n000003.jpg 2\n000001.jpg 2\n")
    with pytest.raises(DatasetFormatError, match=r"list_eval_partition\.txt:4: .*already in group 0 \(line 1\)"):
        read_celeba_attributes(str(tmp_path), "train")


def test_training_reports_skipped_records_and_images_shared_by_its_splits(tmp_path, capsys):
    write_300w_csv(tmp_path, "train", n=4)
    train_csv = tmp_path / "face_landmarks_300w_train.csv"
    lines = train_csv.read_text().splitlines()
    train_csv.write_text("\n".join([*lines, "broken,row"]) + "\n")
    (tmp_path / "face_landmarks_300w_test.csv").write_text(lines[0] + "\n" + lines[2] + "\n")
    cfg = RunConfig.model_validate(
        {
            "output_dir": str(tmp_path / "run"),
            "progress": False,
            "model": {"encoder": "vit_t16", "decoder": TINY_DECODER, "input_size": 32},
            "tasks": [{"name": "landmarks_300w", "root": str(tmp_path), "batch_size": 2, "skip_invalid": True}],
            "schedule": {"steps": 1, "warmup_steps": 0},
        }
    )
    Trainer(cfg)
    err = capsys.readouterr().err
    assert "1 image(s) are in both the 'train' and the 'test' split" in err and "image_0001.png" in err
    assert "warning: task 'landmarks_300w': train: 300w/train: 4 samples; skipped 1 (" in err
    assert "face_landmarks_300w_train.csv:6: malformed entry" in err
    log = (tmp_path / "run" / "log.jsonl").read_text()
    assert "image(s) are in both" in log and "skipped 1" in log
    with pytest.raises(DatasetFormatError, match=r"face_landmarks_300w_train\.csv:6: malformed"):
        Trainer(
            cfg.model_copy(update={"tasks": [cfg.tasks[0].model_copy(update={"skip_invalid": False})]}), overwrite=True
        )


def test_eval_skip_invalid_reports_what_it_left_out(tmp_path, capsys):
    write_300w_csv(tmp_path, "test", n=3)
    csv = tmp_path / "face_landmarks_300w_test.csv"
    rewrite_csv_row(csv, 2, lambda f: f.__setitem__(6, "nan"))
    ckpt = tmp_path / "ckpt"
    tiny_build(["landmarks_300w"]).save_pretrained(ckpt)
    args = ["eval", str(ckpt), "--root", f"landmarks_300w={tmp_path}"]
    assert main(args) == 2
    assert "face_landmarks_300w_test.csv:3: " in capsys.readouterr().err
    assert main([*args, "--skip-invalid"]) == 0
    captured = capsys.readouterr()
    assert "warning: task 'landmarks_300w': 300w/test: 2 samples; skipped 1 (" in captured.err
    assert "\n  nme " in captured.out


def test_an_empty_evaluation_split_is_an_error_not_nan(tmp_path, capsys):
    write_300w_csv(tmp_path, "train", n=2)
    header = (tmp_path / "face_landmarks_300w_train.csv").read_text().splitlines()[0]
    (tmp_path / "face_landmarks_300w_test.csv").write_text(header + "\n")
    ckpt = tmp_path / "ckpt"
    tiny_build(["landmarks_300w"]).save_pretrained(ckpt)
    assert main(["eval", str(ckpt), "--root", f"landmarks_300w={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "split 'test' has no usable samples" in err and err.count("\n") == 1


def test_an_empty_plugin_dataset_is_an_error(tmp_path):
    from tests.toytasks import ToyPlugin

    reg = TaskRegistry(load_entry_points=False)
    reg.register_plugin(ToyPlugin(), name="toy")
    spec = reg.get_task("toy_channel")
    spec = spec.model_copy(update={"dataset": lambda root, split, transform=None: []})
    with pytest.raises(faceptor_core.errors.FaceptorError, match="task 'toy_channel': split 'test' has no usable"):
        evaluate_task(tiny_build(["toy_channel"], registry=reg), spec, None, "test")


# -- label values -------------------------------------------------------------------------------------
def test_parsing_label_values_outside_the_classes_name_the_label_file(tmp_path):
    write_lapa(tmp_path)
    bad = np.full((50, 40), 3, np.uint8)
    bad[0, 0] = 17
    Image.fromarray(bad).save(tmp_path / "train" / "labels" / "f1.png")
    ds = read_lapa(str(tmp_path), "train")
    with pytest.raises(DatasetFormatError, match=r"f1\.png: label value\(s\) 17 outside the 11 classes"):
        ds[1]


def test_the_parsing_family_checks_label_values_of_any_reader(tmp_path):
    def reader(root, split, skip_invalid=False):
        image = RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        return FaceDataset([Sample(image, np.full((8, 8), 12, np.uint8), ("plugin.txt", 4))], skip_invalid=skip_invalid)

    spec = task("parsing_lapa").model_copy(
        update={
            "dataset": lambda root, split, transform=None, **kw: build_dataset(
                reader, root, split, transform, check_item=task("parsing_lapa").dataset.keywords["check_item"], **kw
            )
        }
    )
    with pytest.raises(DatasetFormatError, match=r"plugin\.txt:4: label value\(s\) 12 outside the 11 classes"):
        spec.dataset(str(tmp_path), "train")[0]


def test_label_maps_that_are_not_class_indices_are_refused(tmp_path):
    deep = tmp_path / "deep.png"
    Image.fromarray(np.full((4, 4), 300, np.uint16)).save(deep)
    with pytest.raises(DatasetFormatError, match=r"deep\.png: label values .* are not 8-bit class indices"):
        load_label_map(deep)
    colour = tmp_path / "colour.png"
    Image.fromarray(RNG.integers(0, 5, (4, 4, 3), dtype=np.uint8)).save(colour)
    with pytest.raises(DatasetFormatError, match=r"colour\.png: colour label map"):
        load_label_map(colour)


def test_a_class_family_checks_labels_of_any_reader(tmp_path):
    def reader(root, split, skip_invalid=False):
        image = RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        return FaceDataset([Sample(image, 9, ("mine.csv", 2))], skip_invalid=skip_invalid)

    spec = expression_task("expression_mine", reader=reader)
    with pytest.raises(DatasetFormatError, match=r"mine\.csv:2: class label 9 outside 0\.\.6"):
        spec.dataset(str(tmp_path), "train")


# -- metrics refuse non-finite predictions ------------------------------------------------------------
@pytest.mark.parametrize(
    "metric, prediction, target",
    [
        (
            NMEMetric({"io": inter_points(0, 1)}, auc=(("io", 0.1),)),
            torch.full((2, 3, 2), float("nan")),
            torch.rand(2, 3, 2),
        ),
        (AccuracyMetric(3), torch.tensor([[0.2, float("nan"), 0.3]]), torch.tensor([1])),
        (AgeMAE(), torch.tensor([float("inf")]), torch.tensor([30.0])),
    ],
)
def test_metrics_refuse_non_finite_predictions(metric, prediction, target):
    metric.task = "some_task"
    with pytest.raises(MetricNaNError, match="task 'some_task'.*NaN or infinite predictions"):
        metric.update(prediction, target)


def test_verification_refuses_non_finite_embeddings():
    metric = VerificationMetric()
    with pytest.raises(MetricNaNError, match="update_pairs"):
        metric.update_pairs(torch.full((2, 4), float("nan")), torch.rand(2, 4), torch.tensor([True, False]))


def test_parsing_metric_accepts_integer_labels():
    metric = ParsingF1(("bg", "skin"))
    metric.update(torch.zeros(1, 4, 4, dtype=torch.int64), torch.zeros(1, 4, 4, dtype=torch.int64))
    assert metric.compute()["pixel_accuracy"] == 1.0


def test_evaluating_a_diverged_model_names_the_task(tmp_path):
    write_300w_csv(tmp_path, "test", n=2)
    model = tiny_build(["landmarks_300w"])
    with torch.no_grad():
        model.queries["landmarks_300w"].feat.fill_(float("nan"))
    with pytest.raises(NonFinitePredictionError, match="task 'landmarks_300w': the model predicts NaN"):
        evaluate_task(model, task("landmarks_300w"), str(tmp_path), "test")


def test_an_error_in_a_data_worker_keeps_its_one_line_message(tmp_path, capsys):
    write_300w_csv(tmp_path, "test", n=2)
    (tmp_path / "data" / "lfpw" / "trainset" / "image_0001.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    model = tiny_build(["landmarks_300w"])
    with pytest.raises(faceptor_core.errors.FaceptorError) as info:
        evaluate_task(model, task("landmarks_300w"), str(tmp_path), "test", num_workers=1)
    msg = str(info.value)
    assert "\n" not in msg and "csv:3:" in msg and "image_0001.png: cannot decode" in msg
