"""Seeded items: an item's augmentation is fixed by (run seed, task, epoch, index), whatever the caller's RNG state."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from faceptor_core.data.streams import EpochBatchSampler, SeededItems, TaskStream, seed_for


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


def _batches(sampler: EpochBatchSampler, n: int) -> list[list[tuple[int, int]]]:
    it = iter(sampler)
    return [next(it) for _ in range(n)]


@settings(max_examples=40, deadline=None)
@given(
    length=st.integers(4, 40),
    batch=st.sampled_from([2, 4]),
    start=st.integers(0, 25),
    world=st.sampled_from([1, 2]),
    shuffle=st.booleans(),
)
def test_the_batch_sampler_resumes_exactly_and_each_epoch_is_one_permutation(length, batch, start, world, shuffle):
    make = lambda s, rank=0: EpochBatchSampler(length, batch, 3, "toy", s, rank, world, shuffle)  # noqa: E731
    per_epoch = length // batch
    n = start + 2 * per_epoch + 1
    ranks = [_batches(make(0, rank), n) for rank in range(world)]
    merged = [sorted(i for r in ranks for i in r[k]) for k in range(n)]
    # a resumed sampler (start=k) yields what the first one yields from its k-th batch on, on every rank
    for rank in range(world):
        assert _batches(make(start, rank), n - start) == ranks[rank][start:]
    for k, b in enumerate(merged):
        epoch = k // per_epoch
        assert len(b) == batch and {e for e, _ in b} == {epoch}
        if shuffle:
            g = torch.Generator().manual_seed(seed_for(3, "toy", "perm", epoch))
            order = torch.randperm(length, generator=g).tolist()
        else:
            order = list(range(length))
        pos = k % per_epoch
        assert [i for _, i in b] == sorted(order[pos * batch : (pos + 1) * batch])
