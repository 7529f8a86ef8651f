"""SynthFaces' pose labels: the values are the renderer's, the signs are the documented ones (checked on the
rendered geometry), and a horizontally flipped image is the render of the mirrored pose."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from faceptor_tasks.builtin import FLIP_68
from faceptor_tasks.synthfaces import EXPRESSIONS, SynthFaces
from faceptor_tasks.synthfaces.dataset import TEST_INDEX_OFFSET, SynthFacesDataset
from faceptor_tasks.synthfaces.pose import POSE_ANGLES, HeadPose

SIZE = 96
#: Parsing classes swapped by a horizontal flip (left/right brow and eye).
CLASS_FLIP = np.array([0, 1, 3, 2, 5, 4, 6, 7, 8, 9, 10], np.uint8)


@pytest.fixture(scope="module")
def clean() -> SynthFaces:
    """Full pose ranges, no effects or occluders."""
    return SynthFaces(seed=0, size=SIZE, effects=False)


def _render(gen: SynthFaces, index: int, **changes):
    var = replace(gen.describe(index), **changes)
    return gen.render(gen.identity(gen.identity_of(index)), var), var


def test_pose_targets_are_the_generator_parameters() -> None:
    ds = SynthFacesDataset("test", size=SIZE, length=6, target="all")
    single = SynthFacesDataset("test", size=SIZE, length=6, target="head_pose")
    assert POSE_ANGLES == ("yaw", "roll")
    for i in range(6):
        var = ds.generator.describe(TEST_INDEX_OFFSET + i)
        t = ds[i]["target"]
        assert t["head_pose"].dtype == np.float32
        np.testing.assert_allclose(t["head_pose"], [math.degrees(var.yaw), math.degrees(var.roll)], atol=1e-4)
        np.testing.assert_array_equal(single[i]["target"], t["head_pose"])
        assert t["pose"] == {
            "roll": var.roll,
            "scale": var.scale,
            "yaw_squash": var.yaw,
            "shift": (var.shift[0] * SIZE, var.shift[1] * SIZE),
        }
    angles = np.stack(
        [SynthFacesDataset("train", size=32, length=40, target="head_pose")[i]["target"] for i in range(40)]
    )
    assert (np.abs(angles[:, 0]) <= math.degrees(0.45) + 1e-4).all() and np.ptp(angles[:, 0]) > 20
    assert (np.abs(angles[:, 1]) <= math.degrees(0.4) + 1e-4).all() and np.ptp(angles[:, 1]) > 10


def test_positive_yaw_turns_the_nose_towards_the_image_right(clean: SynthFaces) -> None:
    for i in range(4):
        offsets = {}
        for yaw in (-0.4, 0.0, 0.4):
            s, _ = _render(clean, i, yaw=yaw, roll=0.0)
            lm = s.landmarks
            face_mid = (lm[0, 0] + lm[16, 0]) / 2
            nose_px = np.nonzero(s.parsing == 6)[1].mean()  # rendered nose pixels, not only the label
            offsets[yaw] = (lm[30, 0] - face_mid, nose_px - face_mid)
        assert offsets[0.4][0] > offsets[0.0][0] + 2 > offsets[-0.4][0] + 4
        assert offsets[0.4][1] > offsets[0.0][1] + 2 > offsets[-0.4][1] + 4
        assert abs(offsets[0.0][0]) < 0.5


def test_roll_is_the_clockwise_angle_of_the_eye_line(clean: SynthFaces) -> None:
    for i in range(8):
        s, var = _render(clean, i)
        lm = s.landmarks.astype(np.float64)
        angle = math.atan2(lm[45, 1] - lm[36, 1], lm[45, 0] - lm[36, 0])  # y down: clockwise positive
        assert angle == pytest.approx(var.roll, abs=1e-4)
        assert math.degrees(angle) == pytest.approx(float(s.pose.angles()[1]), abs=1e-2)
    tilted, _ = _render(clean, 0, roll=0.3, yaw=0.0)
    assert tilted.landmarks[45, 1] > tilted.landmarks[36, 1] + 5  # the image-right eye drops


def test_a_flipped_image_is_the_render_of_the_mirrored_pose(clean: SynthFaces) -> None:
    """Flip rule: yaw and roll (and the gaze yaw) change sign; the image, landmarks (300-W flip permutation)
    and parsing map (left/right classes swapped) of the mirrored render match the flipped sample."""
    perm = list(FLIP_68)
    for i in range(6):
        ident = clean.identity(clean.identity_of(i))
        var = replace(clean.describe(i), expression=EXPRESSIONS.index("surprise"), intensity=1.0)
        a, b = clean.render(ident, var), clean.render(ident, var.mirrored())
        np.testing.assert_array_equal(b.pose.angles(), -a.pose.angles())
        assert b.gaze[1] == -a.gaze[1] and b.gaze[0] == a.gaze[0]
        flipped = a.landmarks[perm] * [-1, 1] + [SIZE - 1, 0]
        np.testing.assert_allclose(b.landmarks, flipped, atol=1e-3)
        face = (a.parsing[:, ::-1] > 0) | (b.parsing > 0)
        agree = (CLASS_FLIP[a.parsing[:, ::-1]] == b.parsing)[face].mean()
        assert agree > 0.99, (i, agree)
        person = (a.parsing[:, ::-1] > 0) & (b.parsing > 0)
        assert np.abs(a.image[:, ::-1].astype(int) - b.image)[person].mean() < 4


@given(
    yaw=st.floats(-1, 1), roll=st.floats(-1, 1), scale=st.floats(0.5, 2), sx=st.floats(-20, 20), sy=st.floats(-20, 20)
)
def test_mirroring_a_pose_negates_yaw_and_roll_and_twice_is_identity(yaw, roll, scale, sx, sy) -> None:
    p = HeadPose(yaw, roll, scale, (sx, sy))
    m = p.mirrored()
    assert m.mirrored() == p
    np.testing.assert_array_equal(m.angles(), -p.angles())
    assert (m.scale, m.shift[1]) == (p.scale, p.shift[1]) and m.shift[0] == -p.shift[0]
