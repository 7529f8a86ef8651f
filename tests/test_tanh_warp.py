"""The reference's tanh face warp: closed form, inverse, image/point agreement, the affine special case."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faceptor_core.warp import (
    tanh_compress,
    tanh_expand,
    unwarp_points,
    warp_points,
    warp_to_crop,
    warp_to_original,
)
from faceptor_tasks.families.geometry import about_centre, compose

IDENTITY = np.eye(2, 3)


def test_closed_form_on_each_axis() -> None:
    size, f = 100, 0.8
    # u = x / 50 - 1: 45 and 55 lie in the linear band |u| <= 0.2, the others are squeezed by tanh
    for x in (10.0, 45.0, 55.0, 75.0, 99.0, 180.0, -60.0):
        u = x / size * 2 - 1
        expected = u if abs(u) <= 1 - f else math.copysign((1 - f) + f * math.tanh((abs(u) - (1 - f)) / f), u)
        got = warp_points(np.array([[x, 50.0]]), IDENTITY, f, size)[0]
        assert got[0] == pytest.approx((expected + 1) / 2 * size, abs=2e-4)
        assert got[1] == pytest.approx(50.0, abs=1e-5)  # u = 0 on y: inside the linear band
    # everything, however far, lands inside the crop
    far = warp_points(np.array([[1e4, -1e4]]), IDENTITY, f, size)[0]
    assert 0 <= far[1] < far[0] <= size


def test_inverse_clips_the_arctanh_argument_as_the_reference() -> None:
    f = 0.8
    edge = tanh_expand(np.array([1.0, -1.0], np.float32), f)
    limit = np.arctanh(np.float32(0.999)) * f + (1 - f)
    np.testing.assert_allclose(edge, [limit, -limit], rtol=1e-6)
    assert tanh_compress(np.array([0.1], np.float32), f)[0] == np.float32(0.1)


@st.composite
def similarity(draw):
    angle = draw(st.floats(-0.6, 0.6))
    scale = draw(st.floats(0.5, 2.0))
    shift = (draw(st.floats(-30, 30)), draw(st.floats(-30, 30)))
    return compose(about_centre(64, angle, scale, shift))


UNIT = st.floats(-1.8, 1.8)


@given(
    similarity(),
    st.one_of(st.just(0.0), st.floats(0.05, 0.9)),
    st.lists(st.tuples(UNIT, UNIT), min_size=1, max_size=20),
)
@settings(max_examples=60, deadline=None)
def test_warp_then_unwarp_is_the_identity(affine, factor: float, aligned_unit) -> None:
    size = 64
    # points chosen in the aligned frame (normalised within +-1.8, where the clipped arctanh is exact)
    aligned = (np.asarray(aligned_unit, np.float64) + 1) / 2 * size
    original = unwarp_points(aligned if factor == 0 else _compress_pixels(aligned, factor, size), affine, factor, size)
    warped = warp_points(original, affine, factor, size)
    np.testing.assert_allclose(unwarp_points(warped, affine, factor, size), original, atol=2e-2, rtol=1e-4)
    assert np.all(np.abs(warped / size * 2 - 1) <= max(1.0, np.abs(aligned / size * 2 - 1).max()) + 1e-4)


def _compress_pixels(aligned: np.ndarray, factor: float, size: int) -> np.ndarray:
    return (tanh_compress((aligned / size * 2 - 1).astype(np.float32), factor) + 1) / 2 * size


def test_image_and_points_agree() -> None:
    """A bright dot at an original point shows up in the warped crop where warp_points sends the point."""
    h, w, size = 90, 120, 64
    affine = compose(about_centre(size, 0.3, 0.7, (4.0, -3.0)), np.array([[0.6, 0.0, -5.0], [0.0, 0.6, 2.0]]))
    for p in ((60.0, 45.0), (20.0, 70.0), (110.0, 10.0)):
        image = np.zeros((h, w), np.float32)
        cv2.circle(image, (int(p[0]), int(p[1])), 3, 1.0, -1)
        crop = warp_to_crop(image, affine, 0.8, size)
        q = warp_points(np.array([p], np.float64), affine, 0.8, size)[0]
        ys, xs = np.nonzero(crop > 0.5 * crop.max())
        assert abs(xs.mean() - q[0]) < 1.0 and abs(ys.mean() - q[1]) < 1.0


def test_labels_survive_the_round_trip_in_the_face() -> None:
    h, w, size = 80, 100, 128
    label = np.zeros((h, w), np.uint8)
    cv2.ellipse(label, (50, 40), (20, 26), 0, 0, 360, 1, -1)
    cv2.circle(label, (42, 35), 4, 2, -1)
    affine = np.array([[1.6, 0.0, -16.0], [0.0, 1.6, 0.0]])  # the face fills the crop's centre
    crop = warp_to_crop(label, affine, 0.8, size, cv2.INTER_NEAREST)
    back = warp_to_original(crop, affine, 0.8, size, h, w, cv2.INTER_NEAREST)
    face = np.zeros_like(label, bool)
    face[20:60, 30:70] = True
    assert (back[face] == label[face]).mean() > 0.97
    assert set(np.unique(crop)) == {0, 1, 2}


def test_zero_factor_is_the_affine_crop() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((50, 70, 3)).astype(np.float32)
    affine = np.array([[1.2, 0.2, -3.0], [-0.2, 1.2, 4.0]])
    ours = warp_to_crop(image, affine, 0.0, 48)
    ref = cv2.warpAffine(image, affine, (48, 48), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    np.testing.assert_allclose(ours, ref, atol=2e-2)
    pts = rng.uniform(0, 50, (10, 2))
    np.testing.assert_allclose(warp_points(pts, affine, 0.0, 48), pts @ affine[:, :2].T + affine[:, 2], atol=1e-4)
