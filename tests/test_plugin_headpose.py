"""The head-pose plugin of docs/plugins.md runs as written and passes the contract kit; the kit catches flips that
leave labels unflipped, a missing flip rule and targets of the wrong width, each as a ContractError naming the task
and the check."""

from __future__ import annotations

import re
import sys
import types
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from faceptor_core import FlipRule, TaskRegistry
from faceptor_core.flip import resolve_flip
from faceptor_core.testing import ContractError, run_contract
from faceptor_tasks.kit import RegressionTransform, SynthFacesDataset

DOCS = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def example_code() -> str:
    text = DOCS.read_text(encoding="utf-8")
    block = re.search(
        r"<!-- headpose-example:start -->\n```python\n(.*?)```\n<!-- headpose-example:end -->", text, re.S
    )
    assert block, "docs/plugins.md lost its head-pose example block"
    return block.group(1)


@pytest.fixture(scope="module")
def plugin() -> types.ModuleType:
    mod = types.ModuleType("faceptor_task_headpose")
    sys.modules[mod.__name__] = mod
    exec(compile(example_code(), str(DOCS), "exec"), mod.__dict__)
    yield mod
    sys.modules.pop(mod.__name__, None)


@pytest.fixture(scope="module")
def registry(plugin) -> TaskRegistry:
    reg = TaskRegistry(load_entry_points=False)
    reg.register_plugin(plugin, name="headpose")
    return reg


def test_the_example_is_short():
    lines = [ln for ln in example_code().splitlines() if ln.strip()]
    assert len(lines) < 30


def test_the_example_passes_the_contract_kit(registry, tmp_path):
    assert registry.task_names() == ["headpose_synth"]
    run_contract("headpose_synth", registry=registry, tmp=tmp_path)


def test_the_family_flips_yaw_and_roll(plugin):
    spec = plugin.HEADPOSE
    raw = spec.dataset(None, "train")[0]
    yaw, roll = raw["target"]
    assert yaw != 0.0 and roll != 0.0
    transform = spec.transforms("train", 48)
    seen = set()
    for seed in range(12):
        torch.manual_seed(seed)
        out = transform(dict(raw))
        flipped = bool(np.linalg.det(out["meta"]["affine"][:, :2]) < 0)
        seen.add(flipped)
        sign = -1.0 if flipped else 1.0
        np.testing.assert_allclose(out["target"].numpy(), [sign * yaw, sign * roll], rtol=1e-6)
    assert seen == {True, False}


def _unflipping(spec):
    """The plugin's mistake from the issue: the image is mirrored, the angles are not."""
    labels_kept = resolve_flip(FlipRule(), "regression", spec.label_names, spec.num_queries)
    return spec.model_copy(update={"transforms": partial(RegressionTransform, crop=spec.crop, flip=labels_kept)})


def test_mirrored_images_with_unflipped_angles_are_caught(plugin, tmp_path):
    with pytest.raises(
        ContractError,
        match=r"task 'headpose_synth', flip: a mirrored training item does not carry "
        r"the flip rule's labels \(negates yaw, roll\)",
    ):
        run_contract(_unflipping(plugin.HEADPOSE), tmp=tmp_path, checks=["flip"])


def test_a_rule_that_disagrees_with_the_transform_is_caught(plugin, tmp_path):
    """The transform negates yaw and roll, the declared rule only yaw: the two must agree."""
    spec = plugin.HEADPOSE.model_copy(update={"flip": FlipRule(negate=("yaw",))})
    with pytest.raises(ContractError, match=r"task 'headpose_synth', flip: .*negates yaw\)"):
        run_contract(spec, tmp=tmp_path, checks=["flip"])


def test_mirroring_without_a_rule_is_caught(plugin, tmp_path):
    spec = _unflipping(plugin.HEADPOSE).model_copy(update={"flip": None})
    with pytest.raises(
        ContractError,
        match=r"task 'headpose_synth', flip: the training transform mirrors images "
        r".* declares no flip rule",
    ):
        run_contract(spec, tmp=tmp_path, checks=["flip"])


class OneAngle(SynthFacesDataset):
    """Yaw only: a target one value short of the task's two outputs."""

    def __getitem__(self, index):
        s = self.sample(index)
        item = {"image": s.image, "target": np.float32([s.pose.angles()[0]])}
        return self.transform(item) if self.transform is not None else item


def test_targets_of_the_wrong_width_are_a_contract_error(plugin, tmp_path):
    spec = plugin.HEADPOSE.model_copy(
        update={"dataset": lambda root, split, transform=None: OneAngle(split, transform=transform)}
    )
    # the shape check names the batch; a training flip on the way may name the item first
    with pytest.raises(
        ContractError,
        match=r"task 'headpose_synth', dataset: (a batch of regression targets has "
        r"shape \(4, 1\), expected \(4, 2\)|.*targets of shape \(1,\))",
    ):
        run_contract(spec, tmp=tmp_path, checks=["dataset"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        batch = [spec.transforms("test", 32)(spec.dataset(None, "train")[i]) for i in range(4)]
    from faceptor_core.testing import _check_targets

    with pytest.raises(
        ContractError,
        match=r"task 'headpose_synth', dataset: a batch of regression targets has "
        r"shape \(4, 1\), expected \(4, 2\) \(2 queries\)",
    ):
        _check_targets(spec, torch.stack([b["target"] for b in batch]), 32)
    with pytest.raises(ContractError, match=r"task 'headpose_synth', flip: .*shape \(1,\)"):
        run_contract(spec, tmp=tmp_path, checks=["flip"])
    with pytest.raises(ContractError, match=r"task 'headpose_synth', loss: ValueError: .*shape"):
        run_contract(spec, tmp=tmp_path, checks=["loss"])


def test_an_exception_inside_any_check_is_a_contract_error(plugin, tmp_path):
    def broken_loss(spec):
        return lambda raw, target: raw @ torch.ones(7)  # a bare shape error

    spec = plugin.HEADPOSE.model_copy(update={"loss": broken_loss})
    with pytest.raises(ContractError, match=r"task 'headpose_synth', loss: RuntimeError: ") as info:
        run_contract(spec, tmp=tmp_path, checks=["loss"])
    assert isinstance(info.value.__cause__, RuntimeError)
