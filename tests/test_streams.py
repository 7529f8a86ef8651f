"""Seeded items: an item's augmentation is fixed by (run seed, task, epoch, index), whatever the caller's RNG state."""

from __future__ import annotations

import random

import numpy as np
import torch

from faceptor_core.data.streams import SeededItems, seed_for


def draws(item):
    """A transform that draws from every RNG a transform may use."""
    return {"item": item, "torch": torch.rand(3), "numpy": np.random.rand(3), "python": random.random()}


def test_an_items_draws_are_those_of_its_seed_and_the_callers_rng_is_untouched():
    items = SeededItems(list(range(10)), draws, seed=7, name="toy")
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = items[(2, 5)]
    assert torch.equal(torch.get_rng_state(), before), "the caller's torch RNG is as it was"
    s = seed_for(7, "toy", 2, 5)
    torch.manual_seed(s)
    assert torch.equal(first["torch"], torch.rand(3))  # the item's torch draws come from its own seed
    np.random.seed(s)
    assert np.array_equal(first["numpy"], np.random.rand(3))
    torch.manual_seed(999)  # another caller state: the same item again
    again = items[(2, 5)]
    assert torch.equal(first["torch"], again["torch"]) and first["python"] == again["python"]
    other = items[(3, 5)]  # the next epoch draws afresh
    assert not torch.equal(first["torch"], other["torch"])
