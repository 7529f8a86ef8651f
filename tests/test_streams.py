"""Seeded items: an item's augmentation is fixed by (run seed, task, epoch, index), whatever the caller's RNG state."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from faceptor_core.data.streams import SeededItems, TaskStream, seed_for


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


def test_closing_a_stream_stops_its_workers_and_its_batches() -> None:
    """``TaskStream.close`` ends the worker processes at once (the demo closes its streams before it deletes the
    render cache they write into), and a closed stream says so instead of waiting on dead workers."""
    stream = TaskStream([torch.full((2,), float(i)) for i in range(12)], None, 4, 0, "toy", num_workers=1)
    first = next(stream)
    assert first.shape == (4, 2)
    workers = list(stream._it._workers)
    assert workers and all(w.is_alive() for w in workers)
    stream.close()
    assert not any(w.is_alive() for w in workers)
    with pytest.raises(RuntimeError, match="'toy': the data stream was closed"):
        next(stream)
