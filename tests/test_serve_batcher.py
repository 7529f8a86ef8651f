"""The batcher on its own: batches never pass ``max_batch``, every request gets its own photos' results in order,
one failing photo fails only its own request, task lists are kept apart, and stopping finishes the queue."""

from __future__ import annotations

import asyncio
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faceptor_core.photo.results import PhotoResult
from faceptor_core.serve.batcher import Batcher, Job, ServiceStopping, run_batch


def fake_analyze(calls: list):
    def analyze(images, tasks, faces):
        calls.append((len(images), tasks))
        if any(im.shape[0] == 1 for im in images):
            raise ValueError("a 1-pixel photo")
        return [PhotoResult("", im.shape[0], im.shape[1], [], tasks=tasks or ()) for im in images]

    return analyze


def job(height: int, tasks=None) -> Job:
    return Job(np.zeros((height, 4, 3), np.uint8), f"h{height}", tasks=tasks)


def test_one_bad_photo_fails_only_itself_and_task_lists_are_analysed_apart():
    calls = []
    jobs = [job(5), job(1), job(7, ("age",)), job(9, ("age",)), job(11)]
    out = run_batch(fake_analyze(calls), jobs)
    assert isinstance(out[1], ValueError)
    assert [r.height for i, r in enumerate(out) if i != 1] == [5, 7, 9, 11]
    assert [r.name for i, r in enumerate(out) if i != 1] == ["h5", "h7", "h9", "h11"]
    assert out[2].tasks == ("age",) and out[0].tasks == ()
    # one call per task list; the failing list retried photo by photo
    assert calls == [(3, None), (1, None), (1, None), (1, None), (2, ("age",))]


@settings(max_examples=15, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 5), min_size=1, max_size=12), max_batch=st.integers(1, 6), seed=st.integers(0, 1000)
)
def test_concurrent_requests_get_their_own_results(sizes, max_batch, seed):
    """Requests of ``sizes[i]`` photos each, sent at once with random delays: each gets exactly its photos'
    results, in order, and no batch holds more than ``max_batch`` photos."""
    batches = []
    rng = random.Random(seed)

    def run(jobs):
        batches.append(len(jobs))
        return run_batch(fake_analyze([]), jobs)

    async def scenario():
        b = Batcher(run, max_batch, 0.005)
        b.start()

        async def request(r: int, n: int):
            await asyncio.sleep(rng.random() * 0.01)
            jobs = [job(100 * r + k + 2) for k in range(n)]
            return r, await b.submit(jobs)

        out = await asyncio.gather(*(request(r, n) for r, n in enumerate(sizes)))
        await b.stop()
        return out

    for r, results in asyncio.run(scenario()):
        assert [x.height for x in results] == [100 * r + k + 2 for k in range(sizes[r])]
    assert max(batches) <= max_batch and sum(batches) == sum(sizes)


def test_stop_finishes_the_queue_then_refuses():
    async def scenario():
        b = Batcher(lambda jobs: run_batch(fake_analyze([]), jobs), 2, 0.05)
        b.start()
        pending = asyncio.ensure_future(b.submit([job(3), job(4), job(5)]))
        await asyncio.sleep(0)
        await b.stop()
        assert [r.height for r in await pending] == [3, 4, 5]
        with pytest.raises(ServiceStopping):
            await b.submit([job(6)])
        assert b.metrics.batch_size.count == 2

    asyncio.run(scenario())


def test_a_failing_photo_raises_in_its_own_request_only():
    async def scenario():
        b = Batcher(lambda jobs: run_batch(fake_analyze([]), jobs), 8, 0.05)
        b.start()
        bad, good = await asyncio.gather(b.submit([job(1)]), b.submit([job(2)]), return_exceptions=True)
        await b.stop()
        return bad, good

    bad, good = asyncio.run(scenario())
    assert isinstance(bad, ValueError) and good[0].height == 2
