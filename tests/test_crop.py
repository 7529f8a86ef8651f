"""CropSpec: one crop per task, exact alignments, declared geometry of the built-in datasets, carried by
checkpoints."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import faceptor_core
from faceptor_core import CropSpec, get_task
from faceptor_core.crop import farl_template
from faceptor_core.geometry import apply_affine, invert_affine, resize_matrix
from faceptor_core.photo.analyze import task_crop
from faceptor_tasks.families.templates import ARCFACE_CROP, CELEBA_ALIGN_CROP, CELEBA_HQ_CROP, celeba_hq_points
from faceptor_tasks.synth_tasks import SYNTH_CROP, SYNTH_POINTS_112, mean_five_points
from tests.conftest import tiny_build


def test_invalid_crops_name_the_problem():
    with pytest.raises(ValidationError, match="need a template of 3 points"):
        CropSpec(anchors="eyes_mouth")
    with pytest.raises(ValidationError, match="must not coincide"):
        CropSpec(template=((1.0, 1.0),) * 5)
    with pytest.raises(ValidationError, match="positive"):
        CropSpec(frame=(0.0, 112.0))
    with pytest.raises(ValidationError, match="box_scale"):
        CropSpec(method="box", box_scale=0.0)
    with pytest.raises(ValueError, match="five points, a box or the image size"):
        CropSpec().matrix(112)


@settings(max_examples=40, deadline=None)
@given(
    angle=st.floats(-math.pi, math.pi),
    scale=st.floats(0.2, 5.0),
    tx=st.floats(-300, 300),
    ty=st.floats(-300, 300),
    size=st.sampled_from([32, 112, 224]),
)
def test_template_alignment_is_exact_for_template_shaped_faces(angle, scale, tx, ty, size):
    """A face whose five points are the template under any similarity lands exactly on the template."""
    for crop in (ARCFACE_CROP, CELEBA_ALIGN_CROP, SYNTH_CROP, CropSpec()):
        c, s = math.cos(angle) * scale, math.sin(angle) * scale
        t = np.array([[c, -s, tx], [s, c, ty]])
        template = np.asarray(crop.template)
        if crop.anchors == "eyes_mouth":  # mouth corners about the mouth centre
            five = np.stack(
                [
                    template[0],
                    template[1],
                    (template[0] + template[1] + template[2]) / 3,
                    template[2] - [8, 0],
                    template[2] + [8, 0],
                ]
            )
        else:
            five = template
        points = apply_affine(five, invert_affine(t))
        m = crop.matrix(size, points=points, box=[0, 0, 10, 10])
        fw, fh = crop.frame
        want = apply_affine(template, resize_matrix(int(fh), int(fw), size))
        got = apply_affine(five if crop.anchors == "five" else five[[0, 1, 3]], compose_inv(m, t))
        if crop.anchors == "eyes_mouth":
            got[2] = (apply_affine(five[3], compose_inv(m, t)) + apply_affine(five[4], compose_inv(m, t))) / 2
        np.testing.assert_allclose(got, want, atol=1e-6 * max(1.0, scale, 1 / scale) * size)


def compose_inv(m: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``m`` after ``t^-1`` (crop of the points given in the template's own coordinates)."""
    from faceptor_core.geometry import compose

    return compose(m, invert_affine(t))


def test_box_rule_fills_the_declared_fraction_and_shifts():
    crop = CropSpec(method="box", box_scale=0.8, box_offset=(0.0, 0.1))
    m = crop.matrix(100, box=[10, 20, 60, 60], points=np.zeros((5, 2)) + [[0, 0], [1, 0], [0, 1], [1, 1], [2, 2]])
    # squared: 50 px about (35, 40); moved down 0.1 x 50 px; then centred and filling 80 of the 100 px
    shifted = np.array([[10.0, 20.0], [60.0, 70.0]])  # pixel edges
    np.testing.assert_allclose(apply_affine(shifted, m), [[9.5, 9.5], [89.5, 89.5]], atol=1e-9)
    # the method decides when both are known; a lone box or lone points are used whatever the method
    assert not np.allclose(CropSpec().matrix(100, box=[10, 20, 60, 60], points=np.asarray(farl_template())), m)
    np.testing.assert_allclose(
        CropSpec().matrix(100, box=[10, 20, 60, 60]), CropSpec(method="box").matrix(100, box=[10, 20, 60, 60])
    )


def test_celeba_hq_template_follows_its_crop_rule():
    pts = celeba_hq_points()
    # the rule's scale is 2 x the eye distance here (CelebA's mean face: 2 |e2e| > 1.8 |e2m|): eyes 1/4 apart
    assert abs(np.linalg.norm(pts[1] - pts[0]) - 256.0) < 0.5
    # centred: the eyes' midpoint sits on the vertical centre line, a tenth of the eye-mouth distance above it
    mid = (pts[0] + pts[1]) / 2
    assert abs(mid[0] - 511.5) < 1.0
    np.testing.assert_allclose(np.asarray(CELEBA_HQ_CROP.template), pts, atol=1e-3)


def test_synthfaces_template_is_the_mean_of_its_training_faces():
    """Declared once from 4,000 images; 300 fresh ones agree to within their standard error."""
    np.testing.assert_allclose(mean_five_points(300), np.asarray(SYNTH_POINTS_112), atol=1.2)


def test_every_registered_task_declares_its_crop():
    for spec in faceptor_core.list_tasks():
        assert isinstance(spec.crop, CropSpec)
        assert spec.crop.source, f"{spec.name}: crop without a stated source"
    assert get_task("recognition_ms1mv3").crop == ARCFACE_CROP
    assert get_task("attributes_celeba").crop == CELEBA_ALIGN_CROP
    assert get_task("landmarks_300w").crop.method == "box" and get_task("landmarks_300w").crop.box_scale == 0.8
    assert get_task("landmarks_aflw19").crop.box_scale == 1.0


def test_checkpoints_carry_the_crop_and_old_manifests_fall_back_to_the_registry(tmp_path):
    model = tiny_build(["recognition_ms1mv3", "landmarks_300w"])
    model.save_pretrained(tmp_path / "m")
    again = faceptor_core.load(tmp_path / "m")
    assert again.tasks["recognition_ms1mv3"].crop == ARCFACE_CROP
    manifest = json.loads((tmp_path / "m" / "faceptor.json").read_text())
    for t in manifest["config"]["tasks"]:
        del t["crop"]  # a checkpoint written before crops were declared
    (tmp_path / "m" / "faceptor.json").write_text(json.dumps(manifest))
    old = faceptor_core.load(tmp_path / "m")
    assert old.tasks["recognition_ms1mv3"].crop is None
    assert task_crop(old.tasks["recognition_ms1mv3"]) == ARCFACE_CROP
    unknown = old.tasks["landmarks_300w"].model_copy(update={"name": "not_registered"})
    assert task_crop(unknown) == CropSpec()
