"""Flip rules: resolved against the task, involutions on every target layout, older manifests still load; the
regression family's loss, metric and baseline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from faceptor_core import FlipRule, TaskHead, TaskSpec
from faceptor_core.flip import resolve_flip
from faceptor_tasks.families.regression import RegressionLoss, RegressionMAE, regression_baseline

NAMES = ("yaw", "pitch", "roll", "x", "y", "z")


@st.composite
def rules(draw):
    k = draw(st.integers(2, 6))
    order = draw(st.permutations(list(range(k))))
    pairs = [(order[i], order[i + 1]) for i in range(0, draw(st.integers(0, k // 2)) * 2, 2)]
    perm = list(range(k))
    for a, b in pairs:
        perm[a], perm[b] = b, a
    negated = set(draw(st.lists(st.integers(0, k - 1), max_size=k)))
    negated |= {perm[i] for i in negated}  # a negated value swaps with a negated value
    return k, FlipRule(permutation=tuple(perm), negate=tuple(sorted(negated)))


@settings(max_examples=60, deadline=None)
@given(rules(), st.integers(1, 3))
def test_flipping_twice_is_the_identity_for_every_layout(kr, batch):
    k, rule = kr
    g = np.random.default_rng(k)
    reg = resolve_flip(rule, "regression", NAMES[:k], k)
    values = g.normal(size=(batch, k)).astype(np.float32)
    np.testing.assert_array_equal(reg.mirror(reg.mirror(values)), values)
    torch.testing.assert_close(reg.mirror(reg.mirror(torch.from_numpy(values))), torch.from_numpy(values))
    plain = FlipRule(permutation=rule.permutation)
    pts = g.uniform(0, 63, (batch, k, 2))
    lm = resolve_flip(plain, "landmarks", (), k)
    np.testing.assert_allclose(lm.mirror(lm.mirror(pts, 64), 64), pts, atol=1e-12)
    labels = g.integers(0, k, (batch, 8, 8)).astype(np.uint8)
    labels[:, 0, 0] = 255  # an ignore index passes through
    seg = resolve_flip(plain, "segmentation", (), k)
    np.testing.assert_array_equal(seg.mirror(seg.mirror(labels)), labels)
    assert (seg.relabel(labels)[:, 0, 0] == 255).all()


def test_names_swaps_and_negations_resolve():
    f = resolve_flip(FlipRule(swap=(("l", "r"),)), "classification", ("bg", "l", "r"), 3)
    assert f.permutation == (0, 2, 1)
    assert f.relabel(torch.tensor([0, 1, 2])).tolist() == [0, 2, 1]
    pose = resolve_flip(FlipRule(negate=("yaw", "roll")), "regression", ("yaw", "pitch", "roll"), 3)
    assert pose.relabel(np.float32([0.1, 0.2, 0.3])).tolist() == pytest.approx([-0.1, 0.2, -0.3])
    assert not resolve_flip(FlipRule(), "age_distribution", (), 101).changes_labels


@pytest.mark.parametrize(
    "rule, output, match",
    [
        (FlipRule(swap=(("l", "rr"),)), "classification", "unknown label 'rr'"),
        (FlipRule(permutation=(1, 2, 0)), "classification", "involution"),
        (FlipRule(negate=("l",)), "classification", "negate applies to regression"),
        (FlipRule(swap=(("bg", "l"), ("l", "r"))), "classification", "swapped once"),
        (FlipRule(permutation=(0, 2, 1), negate=("l",)), "regression", "negated value must be swapped"),
    ],
)
def test_a_rule_that_does_not_fit_the_task_is_refused(rule, output, match):
    with pytest.raises(ValidationError, match=match):
        TaskSpec(
            name="t",
            family="f",
            head_type="attribute",
            output=output,
            num_queries=3,
            input_size=32,
            label_names=("bg", "l", "r"),
            flip=rule,
        )


def test_flip_permutation_and_rule_feed_each_other_and_old_manifests_load():
    old = {
        "name": "lm",
        "family": "landmarks",
        "head": "dense",
        "output": "landmarks",
        "num_queries": 3,
        "input_size": 64,
        "flip_permutation": [1, 0, 2],
    }  # a manifest written before flip rules
    head = TaskHead.model_validate(old)
    assert head.flip == FlipRule(permutation=(1, 0, 2))
    assert TaskHead.model_validate(head.model_dump(mode="json")) == head
    spec = TaskSpec(
        name="p",
        family="parsing",
        head_type="dense",
        output="segmentation",
        num_queries=3,
        input_size=32,
        label_names=("bg", "l", "r"),
        flip=FlipRule(swap=(("l", "r"),)),
    )
    assert spec.flip_permutation == (0, 2, 1) and spec.head_config().flip == spec.flip
    with pytest.raises(ValidationError, match="contradicts"):
        TaskSpec(
            name="p",
            family="parsing",
            head_type="dense",
            output="segmentation",
            num_queries=3,
            input_size=32,
            flip_permutation=(0, 2, 1),
            flip=FlipRule(),
        )


def test_regression_loss_metric_and_baseline():
    raw, target = torch.tensor([[1.0, 2.0], [3.0, 5.0]]), torch.tensor([[0.0, 2.0], [3.0, 1.0]])
    assert float(RegressionLoss()(raw, target)) == pytest.approx((1 + 0 + 0 + 4) / 4)
    assert float(RegressionLoss("smooth_l1", beta=1.0)(raw, target)) == pytest.approx((0.5 + 0 + 0 + 3.5) / 4)
    with pytest.raises(ValueError, match=r"targets of shape \(2, 1\) do not match the outputs \(2, 2\)"):
        RegressionLoss()(raw, target[:, :1])
    one, split = RegressionMAE(("yaw", "roll"), "rad"), RegressionMAE(("yaw", "roll"), "rad")
    one.update(raw, target)
    split.update(raw[:1], target[:1])
    split.update(raw[1:], target[1:])
    assert one.compute() == split.compute() == pytest.approx({"mae": 1.25, "mae_yaw": 0.5, "mae_roll": 2.0})
    assert (one.meta["mae_roll"].better, one.meta["mae_roll"].unit) == ("lower", "rad")
    spec = TaskSpec(
        name="r", family="regression", head_type="attribute", output="regression", num_queries=2, input_size=32
    )
    base = regression_baseline(spec, "rad")
    base.fit([{"image": torch.zeros(2, 3, 4, 4), "target": target}])
    assert base.predict({"image": torch.zeros(3, 3, 4, 4)}).tolist() == [[1.5, 1.5]] * 3
