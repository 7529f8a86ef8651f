"""The plugin authors' contract kit passes good tasks and names the check a bad task fails."""

from __future__ import annotations

import pytest
import torch

from faceptor_core.testing import ContractError, run_contract
from tests.toytasks import toy_specs


@pytest.mark.parametrize("task", ["toy_channel", "toy_brightness"])
def test_good_tasks_pass(task, registry, tmp_path):
    run_contract(task, registry=registry, tmp=tmp_path)


def test_nan_loss_is_caught(registry, tmp_path):
    spec = toy_specs()[0].model_copy(
        update={"loss": lambda s: lambda raw, target: raw.sum() * torch.tensor(float("nan"))}
    )
    with pytest.raises(ContractError, match=r"toy_channel.*loss"):
        run_contract(spec, registry=registry, tmp=tmp_path, checks=["loss"])


def test_out_of_range_images_are_caught(registry, tmp_path):
    base = toy_specs()[0]
    bad = base.model_copy(
        update={
            "transforms": lambda split, size: (
                lambda item: {**base.transforms(split, size)(item), "image": torch.full((3, size, size), 255.0)}
            )
        }
    )
    with pytest.raises(ContractError, match=r"dataset: transformed images must lie in \[0, 1\]"):
        run_contract(bad, registry=registry, tmp=tmp_path, checks=["dataset"])


def test_a_transform_that_ignores_the_declared_crop_is_caught(registry, tmp_path):
    """Photo inference cuts faces with spec.crop; a transform that crops otherwise would train on other crops."""
    from faceptor_core import CropSpec

    spec = toy_specs()[0].model_copy(update={"crop": CropSpec(method="box", box_scale=0.8)})
    with pytest.raises(ContractError, match=r"'toy_channel', crop: the evaluation crop is not the spec's crop"):
        run_contract(spec, registry=registry, tmp=tmp_path, checks=["crop"])
