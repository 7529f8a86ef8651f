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


def _training_items(spec, raw: dict, size: int, seeds: int = 12) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``raw``'s evaluation image under ``spec``'s transforms, and its training image for each of ``seeds`` seeds."""
    expected = spec.transforms("test", size)(raw)["image"]
    train = spec.transforms("train", size)
    outs = []
    for seed in range(seeds):
        torch.manual_seed(seed)
        outs.append(train(raw)["image"])
    return expected, outs


@pytest.mark.parametrize("task", ["synth_age", "synth_expression", "synth_attributes"])
def test_synth_image_tasks_train_on_the_crop_and_flip_alone(task: str) -> None:
    """SynthFaces' image-level tasks train without RandAugment and erasing (``SYNTH_FACE_AUGMENT``): every training
    item is the evaluation image or its mirror, pixel for pixel, and both occur."""
    spec = default_registry().get_task(task)
    expected, outs = _training_items(spec, spec.dataset(None, "train")[3], spec.input_size)
    seen = set()
    for seed, out in enumerate(outs):
        mirrored = bool(torch.equal(out, expected.flip(-1)))
        assert mirrored or torch.equal(out, expected), f"seed {seed}: training changed pixels beyond crop and flip"
        seen.add(mirrored)
    assert seen == {True, False}


def test_real_image_tasks_keep_the_references_augmentation() -> None:
    """The real datasets' tasks keep RandAugment and erasing: some training items differ from both the evaluation
    image and its mirror."""
    real = default_registry().get_task("expression_rafdb")
    synth = default_registry().get_task("synth_expression")
    expected, outs = _training_items(real, synth.dataset(None, "train")[3], 112)
    changed = 0
    for out in outs:
        changed += not (torch.allclose(out, expected, atol=0.02) or torch.allclose(out, expected.flip(-1), atol=0.02))
    assert changed >= 3
