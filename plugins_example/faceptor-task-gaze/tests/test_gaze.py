"""Gaze angles, the metric, the MPIIFaceGaze reader, and the plugin's life in the registry."""

from __future__ import annotations

import math
import sys
from importlib import metadata

import numpy as np
import pytest
import torch
from faceptor_task_gaze.angles import angles_to_vector, angular_error_degrees, vector_to_angles
from faceptor_task_gaze.loss_metric import AngularError
from faceptor_task_gaze.mpiifacegaze import read_mpiifacegaze
from faceptor_task_gaze.transforms import GazeTransform
from hypothesis import given, settings
from hypothesis import strategies as st

import faceptor_core
from faceptor_core import TaskRegistry
from faceptor_tasks.families.common import DatasetFormatError

angle = st.tuples(st.floats(-1.4, 1.4), st.floats(-3.0, 3.0))


@settings(max_examples=60, deadline=None)
@given(angle)
def test_angles_vector_round_trip(a):
    v = angles_to_vector(torch.tensor([a], dtype=torch.float64)).numpy()
    assert np.isclose(np.linalg.norm(v), 1.0)
    np.testing.assert_allclose(vector_to_angles(v)[0], a, atol=1e-5)


@settings(max_examples=60, deadline=None)
@given(angle, angle)
def test_angular_error_is_a_symmetric_angle_in_range(a, b):
    ta, tb = torch.tensor([a]), torch.tensor([b])
    e = float(angular_error_degrees(ta, tb))
    assert 0.0 <= e <= 180.0
    assert e == pytest.approx(float(angular_error_degrees(tb, ta)), abs=1e-4)
    assert float(angular_error_degrees(ta, ta)) < 0.05


def test_angular_error_known_cases():
    straight = torch.tensor([[0.0, 0.0]])
    assert float(angular_error_degrees(straight, torch.tensor([[0.0, math.pi / 2]]))) == pytest.approx(90, abs=1e-3)
    down = torch.tensor([[math.radians(10), 0.0]])
    assert float(angular_error_degrees(straight, down)) == pytest.approx(10, abs=1e-3)


def test_metric_accumulates_exactly_over_batches():
    g = torch.Generator().manual_seed(0)
    pred, target = torch.rand(10, 2, generator=g) - 0.5, torch.rand(10, 2, generator=g) - 0.5
    one, split = AngularError(), AngularError()
    one.update(pred, target)
    split.update(pred[:3], target[:3])
    split.update(pred[3:], target[3:])
    assert one.compute() == pytest.approx(split.compute())


def test_reader_parses_the_release_layout(mpii_root):
    ds = read_mpiifacegaze(mpii_root, "train")
    assert len(ds) == 8  # p00 + p01; p14 is held out
    assert len(read_mpiifacegaze(mpii_root, "test")) == 4
    assert len(read_mpiifacegaze(mpii_root, "test:p01")) == 4
    item = ds[0]
    assert item["image"].shape == (120, 160, 3) and item["image"].dtype == np.uint8
    line = (mpii_root / "p00" / "p00.txt").read_text().splitlines()[0].split()
    fc, gt = np.array(line[21:24], float), np.array(line[24:27], float)
    direction = (gt - fc) / np.linalg.norm(gt - fc)
    v = angles_to_vector(torch.tensor(item["target"], dtype=torch.float64)).numpy()
    np.testing.assert_allclose(v, direction, atol=1e-5)
    x1, y1, x2, y2 = item["box"]
    assert x1 < 50 and x2 > 105 and y1 < 50 and y2 > 85


def test_malformed_line_names_file_and_line(mpii_root):
    ann = mpii_root / "p01" / "p01.txt"
    lines = ann.read_text().splitlines()
    lines[2] = " ".join(lines[2].split()[:10])
    ann.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetFormatError, match=r"p01\.txt:3: .*expected 28 fields"):
        read_mpiifacegaze(mpii_root, "train")
    ds = read_mpiifacegaze(mpii_root, "train", skip_invalid=True)
    assert len(ds) == 7 and ds.skipped[0][1] == 3


def test_missing_image_and_corrupt_image(mpii_root):
    (mpii_root / "p00" / "day01" / "0001.jpg").unlink()
    with pytest.raises(DatasetFormatError, match=r"p00\.txt:2: image file not found"):
        read_mpiifacegaze(mpii_root, "train")
    assert len(read_mpiifacegaze(mpii_root, "train", skip_invalid=True)) == 7
    (mpii_root / "p01" / "day01" / "0000.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetFormatError, match=r"p01\.txt:1: .*0000\.jpg"):
        read_mpiifacegaze(mpii_root, "p01")[0]
    lenient = read_mpiifacegaze(mpii_root, "p01", skip_invalid=True)
    assert lenient[0]["image"].shape == (120, 160, 3)  # the next decodable item
    assert lenient.skipped and lenient.skipped[0][1] == 1


def test_flip_negates_yaw_and_keeps_pitch():
    img = np.zeros((64, 64, 3), np.uint8)
    item = {"image": img, "target": np.array([0.2, 0.5], np.float32), "box": np.array([8, 8, 56, 56], np.float32)}
    flips = []
    for seed in range(12):
        torch.manual_seed(seed)
        out = GazeTransform("train", 32)(item)
        flipped = bool(out["meta"]["affine"][0, 0] < 0)
        flips.append(flipped)
        assert float(out["target"][0]) == pytest.approx(0.2)
        assert float(out["target"][1]) == pytest.approx(-0.5 if flipped else 0.5)
    assert any(flips) and not all(flips)


def test_plugin_is_registered_through_its_entry_point():
    reg = faceptor_core.default_registry()
    assert reg.owner("gaze_synth") == "gaze"
    spec = faceptor_core.get_task("gaze_mpiifacegaze")
    assert spec.head_type == "attribute" and spec.num_queries == 2
    model = faceptor_core.build(
        ["synth_landmarks", "gaze_synth"],
        encoder="vit_t16",
        input_sizes=32,
        decoder={"hidden_dim": 32, "num_heads": 4, "ffn_dim": 64, "num_layers": 1},
    )
    out = model.predict(torch.rand(2, 3, 32, 32))
    assert out["gaze_synth"].values.shape == (2, 2) and out["gaze_synth"].names == ("pitch", "yaw")


def test_broken_plugin_is_reported_and_others_work(monkeypatch):
    monkeypatch.setitem(sys.modules, "faceptor_task_gaze.plugin", None)  # importing it now raises
    reg = TaskRegistry()
    plugins = {p.name: p for p in reg.list_plugins()}
    assert plugins["gaze"].error and "faceptor_task_gaze.plugin" in plugins["gaze"].error
    names = reg.task_names()
    assert "gaze_synth" not in names and "landmarks_300w" in names and "synth_age" in names


def test_uninstalled_plugin_leaves_nothing(monkeypatch):
    real = metadata.entry_points

    def without_gaze(group=None):
        return [ep for ep in real(group=group) if ep.name != "gaze"]

    monkeypatch.setattr(metadata, "entry_points", without_gaze)
    reg = TaskRegistry()
    assert not [n for n in reg.task_names() if n.startswith("gaze")]
    assert "gaze" not in {p.name for p in reg.list_plugins()}
