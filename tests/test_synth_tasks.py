"""The SynthFaces tasks pass the same plugin contract a third-party task must pass."""

import pytest
import torch

from faceptor_core.registry import default_registry
from faceptor_core.testing import task_contract_tests

SYNTH_TASKS = [
    "synth_landmarks",
    "synth_parsing",
    "synth_age",
    "synth_expression",
    "synth_attributes",
    "synth_identity",
]

test_synth_contract = task_contract_tests(SYNTH_TASKS)


@pytest.mark.parametrize("task", ["synth_age", "synth_expression", "synth_attributes"])
def test_synth_image_tasks_train_on_the_crop_and_flip_alone(task: str) -> None:
    """SynthFaces' image-level tasks train without RandAugment and erasing (``SYNTH_FACE_AUGMENT``): every training
    item is the evaluation image or its mirror, pixel for pixel, and both occur."""
    spec = default_registry().get_task(task)
    raw = spec.dataset(None, "train")[3]
    seen = set()
    expected = spec.transforms("test", spec.input_size)(raw)["image"]
    train = spec.transforms("train", spec.input_size)
    for seed in range(12):
        torch.manual_seed(seed)
        out = train(raw)["image"]
        mirrored = bool(torch.equal(out, expected.flip(-1)))
        assert mirrored or torch.equal(out, expected), f"seed {seed}: training changed pixels beyond crop and flip"
        seen.add(mirrored)
    assert seen == {True, False}


def test_real_image_tasks_keep_the_references_augmentation() -> None:
    """The real datasets' tasks keep RandAugment and erasing: some training items differ from both the evaluation
    image and its mirror."""
    real = default_registry().get_task("expression_rafdb")
    synth = default_registry().get_task("synth_expression")
    raw = synth.dataset(None, "train")[3]
    expected = real.transforms("test", 112)(raw)["image"]
    train = real.transforms("train", 112)
    changed = 0
    for seed in range(12):
        torch.manual_seed(seed)
        out = train(raw)["image"]
        changed += not (torch.allclose(out, expected, atol=0.02) or torch.allclose(out, expected.flip(-1), atol=0.02))
    assert changed >= 3
