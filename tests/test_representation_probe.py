"""benchmarks/representation_probe.py: the shape frame, the trivial answers and the linear probe it reports."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
probe = pytest.importorskip("representation_probe")

from faceptor_tasks.synthfaces.dataset import split_generator  # noqa: E402


def _shape(index: int = 3) -> np.ndarray:
    gen, offset = split_generator("train", 112, 0)
    return gen.landmarks(offset + index).astype(np.float64)


@settings(max_examples=40, deadline=None)
@given(
    angle=st.floats(-np.pi, np.pi),
    scale=st.floats(0.2, 5.0),
    shift=st.tuples(st.floats(-200, 200), st.floats(-200, 200)),
)
def test_the_shape_frame_ignores_where_and_how_big_the_face_is(angle, scale, shift):
    lm = _shape()
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = scale * lm @ rot.T + np.asarray(shift)
    np.testing.assert_allclose(probe.normalised_shape(moved[None]), probe.normalised_shape(lm[None]), atol=1e-9, rtol=0)


def test_the_shape_frame_puts_the_eyes_level_one_unit_apart():
    p = probe.normalised_shape(_shape()[None]).reshape(68, 2)
    left, right = p[36:42].mean(0), p[42:48].mean(0)
    np.testing.assert_allclose(left, [-0.5, 0.0], atol=1e-12)
    np.testing.assert_allclose(right, [0.5, 0.0], atol=1e-12)


def test_trivial_answers_are_the_training_majorities():
    y_train, y_test = np.array([2, 2, 1, 0, 2]), np.array([2, 1, 1, 2])
    assert probe.trivial(y_train, y_test, multilabel=False) == 0.5
    a_train = np.array([[1, 0], [1, 0], [0, 1]])
    a_test = np.array([[1, 1], [0, 0]])  # majorities (1, 0): label 0 right once, label 1 right once
    assert probe.trivial(a_train, a_test, multilabel=True) == 0.5


def test_the_probe_reads_a_linear_signal_and_not_noise():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 20))
    y = (x[:, 3] - x[:, 7] > 0).astype(np.int64)
    assert probe.linear_probe(x[:300], y[:300], x[300:], y[300:], multilabel=False) > 0.9
    noise = rng.integers(0, 2, size=400)
    assert probe.linear_probe(x[:300], noise[:300], x[300:], noise[300:], multilabel=False) < 0.7
    labels = np.stack([y, 1 - y], 1)
    assert probe.linear_probe(x[:300], labels[:300], x[300:], labels[300:], multilabel=True) > 0.9


def test_the_noisy_copy_has_the_predicted_shapes_mean_error():
    rng = np.random.default_rng(1)
    true = (rng.normal(size=(50, 136)), rng.normal(size=(4000, 136)))
    predicted = true[1] + np.array([0.03, -0.04] * 68)  # every point off by 0.05
    noisy_train, noisy_test = probe.noisy_copy(true, predicted)
    error = np.linalg.norm((noisy_test - true[1]).reshape(-1, 68, 2), axis=-1).mean()
    assert error == pytest.approx(0.05, rel=0.02)
    assert noisy_train.shape == true[0].shape
