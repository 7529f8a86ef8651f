"""Photo inference crops a face exactly as the task's training transform does, and maps landmarks and parsing
back onto the photo where the ground truth is: SynthFaces faces pasted into a canvas under known similarities,
given their true five points (and, for box tasks, their box)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from faceptor_core import get_task
from faceptor_core import predictions as P
from faceptor_core.crop import cut
from faceptor_core.geometry import apply_affine, compose
from faceptor_core.photo.analyze import CropGroup, analyze, crop_faces
from faceptor_core.photo.faces import Face
from faceptor_tasks.families.readers.landmarks import points_box
from faceptor_tasks.synthfaces.generator import SynthFaces
from faceptor_tasks.synthfaces.labels import five_points
from tests.conftest import tiny_build

TEMPLATE_TASKS = ["synth_age", "synth_expression", "synth_attributes", "synth_identity", "synth_parsing"]
#: Crops with other geometry on the same faces: LaPa's tanh-warped template (FaRL's), AFLW-19's stretched box.
OTHER_TASKS = ["parsing_lapa", "landmarks_aflw19"]
H, W = 360, 480


def similarity(angle: float, scale: float, tx: float, ty: float) -> np.ndarray:
    c, s = math.cos(angle) * scale, math.sin(angle) * scale
    return np.array([[c, -s, tx], [s, c, ty]])


@pytest.fixture(scope="module")
def faces():
    gen = SynthFaces(0, 112)
    return [gen.sample(i) for i in (3, 11)]


def paste(samples, transforms, labels: bool = False):
    """Canvas (noise background) with each sample pasted under its transform; and the pasted label map."""
    rng = np.random.default_rng(0)
    canvas = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    label_map = np.zeros((H, W), np.uint8)
    for s, t in zip(samples, transforms, strict=True):
        cv2.warpAffine(s.image, t, (W, H), dst=canvas, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT)
        if labels:
            cv2.warpAffine(
                s.parsing, t, (W, H), dst=label_map, flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_TRANSPARENT
            )
    return canvas, label_map


def raw_item(sample, task: str) -> dict:
    family = get_task(task).family
    target = {"landmarks": sample.landmarks, "parsing": sample.parsing, "attributes": sample.attributes}.get(family, 0)
    if task == "landmarks_aflw19":  # 19 of the points: AFLW's layout does not matter to the crop
        target = sample.landmarks[:19]
    return {"image": sample.image, "target": target, "align_points": five_points(sample.landmarks), "meta": {}}


def given(sample, t: np.ndarray) -> dict:
    box = np.asarray(points_box(sample.landmarks), np.float64)
    corners = apply_affine(box.reshape(2, 2), t)  # exact for the shift-and-scale pastes of box tasks
    return {"points": apply_affine(five_points(sample.landmarks), t).tolist(), "box": corners.reshape(4).tolist()}


@pytest.mark.parametrize("task", [*TEMPLATE_TASKS, "synth_landmarks", *OTHER_TASKS])
def test_photo_crop_is_the_training_crop(faces, task):
    spec = get_task(task)
    rotate = spec.crop.method == "points"
    ts = [similarity(0.35 if rotate else 0.0, 1.6, 60, 20), similarity(-0.5 if rotate else 0.0, 0.8, 300, 170)]
    canvas, _ = paste(faces, ts)
    size = min(spec.input_size, 224)
    group = CropGroup(size, spec.crop, (spec.head_config(),))
    face_list = [Face(np.asarray(g["box"]), np.asarray(g["points"])) for g in map(given, faces, ts)]
    crops, mats = crop_faces(canvas, face_list, group)
    train = spec.transforms("test", size)
    for sample, t, m, crop in zip(faces, ts, mats, crops, strict=True):
        item = train(raw_item(sample, task))
        # the same crop: photo crop after the paste == training crop of the original, exactly
        np.testing.assert_allclose(compose(m, t), item["meta"]["affine"], atol=1e-6)
        assert float(item["meta"].get("warp_factor", 0.0)) == spec.crop.warp_factor
        # and the same pixels, to interpolation tolerance, where the crop sees the pasted image
        reference = item["image"].permute(1, 2, 0).numpy().astype(np.float32) * 255
        inside = cut(np.full((112, 112), 255, np.uint8), item["meta"]["affine"], spec.crop, size, cv2.INTER_NEAREST) > 0
        inside = cv2.erode(inside.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        diff = np.abs(crop.astype(np.float32) - reference)[inside]
        assert inside.mean() > 0.05 and diff.mean() < 6.0, (task, inside.mean(), diff.mean())


def test_landmarks_and_parsing_land_on_the_pasted_ground_truth(faces):
    """Perfect crop-space predictions (the training targets) come back onto the photo's ground truth."""
    ts = [similarity(0.0, 1.5, 40, 30), similarity(0.0, 1.1, 290, 150)]
    canvas, pasted_labels = paste(faces, ts, labels=True)
    model = tiny_build(["synth_landmarks", "synth_parsing"], size={"synth_landmarks": 64, "synth_parsing": 112})
    lm_spec, ps_spec = get_task("synth_landmarks"), get_task("synth_parsing")
    lm_items = [lm_spec.transforms("test", 64)(raw_item(s, "synth_landmarks")) for s in faces]
    ps_items = [ps_spec.transforms("test", 112)(raw_item(s, "synth_parsing")) for s in faces]
    crop_points = torch.stack([it["target"] for it in lm_items]).float()
    model.output_decoders["synth_landmarks"] = lambda raw, hw: P.LandmarkPrediction("synth_landmarks", crop_points)
    onehot = torch.stack(
        [torch.nn.functional.one_hot(it["target"], 11).permute(2, 0, 1).float() * 20 for it in ps_items]
    )
    real = model.forward_multitask

    def oracle(batches, rows):
        out = real(batches, rows)
        out["synth_parsing"] = onehot  # full-resolution logits of the true labels, one row per face
        return out

    model.forward_multitask = oracle
    [photo] = analyze(model, canvas, faces=[given(s, t) for s, t in zip(faces, ts, strict=True)])
    assert photo.faces_from == "given" and len(photo.faces) == 2
    for f, s, t in zip(photo.faces, faces, ts, strict=True):
        np.testing.assert_allclose(f.tasks["synth_landmarks"].points, apply_affine(s.landmarks, t), atol=1e-3)
    labels = photo.parsing["synth_parsing"].labels
    fg = (labels > 0) | (pasted_labels > 0)
    agree = (labels == pasted_labels)[fg].mean()
    assert agree > 0.95, agree  # the rest is the crop's resolution (112 px) at the face's boundaries
    for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):  # no offset: any one-pixel shift agrees less
        assert (np.roll(labels, (dy, dx), (0, 1)) == pasted_labels)[fg].mean() < agree - 0.01
    owner = photo.parsing["synth_parsing"].faces
    for f in photo.faces:  # each face's own map agrees with the photo map where it owns the pixels
        mask = f.tasks["synth_parsing"].mask(H, W)
        np.testing.assert_array_equal(mask[owner == f.index], labels[owner == f.index])


def test_tanh_warped_parsing_maps_back_onto_the_pasted_ground_truth(faces):
    """LaPa's crop (FaRL's template, then the tanh warp): perfect crop-space logits come back where the pasted
    labels are, through the inverse warp."""
    ts = [similarity(0.3, 1.5, 40, 30), similarity(-0.2, 1.1, 290, 150)]
    canvas, pasted_labels = paste(faces, ts, labels=True)
    model = tiny_build(["parsing_lapa"], size={"parsing_lapa": 224})
    spec = get_task("parsing_lapa")
    items = [spec.transforms("test", 224)(raw_item(s, "parsing_lapa")) for s in faces]
    onehot = torch.stack([torch.nn.functional.one_hot(it["target"], 11).permute(2, 0, 1).float() * 20 for it in items])
    real = model.forward_multitask
    model.forward_multitask = lambda batches, rows: {**real(batches, rows), "parsing_lapa": onehot}
    [photo] = analyze(model, canvas, faces=[given(s, t) for s, t in zip(faces, ts, strict=True)])
    labels = photo.parsing["parsing_lapa"].labels
    fg = (labels > 0) | (pasted_labels > 0)
    agree = (labels == pasted_labels)[fg].mean()
    assert agree > 0.93, agree
    for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        assert (np.roll(labels, (dy, dx), (0, 1)) == pasted_labels)[fg].mean() < agree - 0.01
