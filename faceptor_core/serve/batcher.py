"""Dynamic batching: ready photos from many requests, gathered for up to ``max_wait`` seconds (at most
``max_batch`` photos), go through one analysis together on a worker thread; each request gets its own results.

Only photos that are already decoded and checked reach the queue, so a slow or vanished client never holds a
batch. Photos whose requests chose different tasks are analysed in one call per distinct task list.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..photo.results import PhotoResult
from .metrics import Metrics


class ServiceStopping(RuntimeError):
    """The service is shutting down and takes no new photos."""


@dataclass
class Job:
    """One ready photo: pixels, name, faces to use (a list of face dicts, :class:`Detections` found before
    queueing, or None to let the analysis decide), the tasks asked for, and where its result goes."""

    image: np.ndarray
    name: str
    faces: Any = None
    detector: str | None = None  # the detector that found ``faces`` (their source is restored to it)
    tasks: tuple[str, ...] | None = None
    future: asyncio.Future | None = None
    enqueued: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def run_batch(analyze_fn: Callable[..., list[PhotoResult]], jobs: Sequence[Job]) -> list[PhotoResult | BaseException]:
    """Analyse ``jobs``: one ``analyze_fn(images, tasks, faces)`` call per distinct task list. If a call fails,
    its photos are retried one by one, so only a photo that fails on its own gets an error."""
    out: list[PhotoResult | BaseException | None] = [None] * len(jobs)
    groups: dict[tuple[str, ...] | None, list[int]] = {}
    for i, j in enumerate(jobs):
        groups.setdefault(j.tasks, []).append(i)
    for tasks, idx in groups.items():
        try:
            results = analyze_fn([jobs[i].image for i in idx], tasks, [jobs[i].faces for i in idx])
            for i, r in zip(idx, results, strict=True):
                out[i] = _restore_source(r, jobs[i])
        except Exception:
            for i in idx:
                try:
                    out[i] = _restore_source(analyze_fn([jobs[i].image], tasks, [jobs[i].faces])[0], jobs[i])
                except Exception as exc:  # reported to that photo's request only
                    out[i] = exc
    return out  # type: ignore[return-value]


def _restore_source(result: PhotoResult, job: Job) -> PhotoResult:
    result.name = job.name
    if job.detector is not None:  # faces were found before queueing: say so as `faceptor predict` does
        result.faces_from = job.detector
        for f in result.faces:
            f.face = dataclasses.replace(f.face, source="detector")
    return result


class Batcher:
    """Collects :class:`Job` s and runs them in batches through ``run`` (``list[Job] -> results``) on one
    worker thread."""

    def __init__(
        self,
        run: Callable[[list[Job]], list[PhotoResult | BaseException]],
        max_batch: int,
        max_wait_s: float,
        metrics: Metrics | None = None,
    ):
        self.run, self.max_batch, self.max_wait = run, max_batch, max_wait_s
        self.metrics = metrics or Metrics()
        self.pending: deque[Job] = deque()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="faceptor-model")
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self.stopping = False

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done() and not self.stopping

    def start(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="faceptor-batcher")

    async def submit(self, jobs: Sequence[Job]) -> list[PhotoResult]:
        """Queue ``jobs`` and wait for their results (in order); a photo's failure is raised."""
        if not self.running:
            raise ServiceStopping("the service is shutting down")
        loop = asyncio.get_running_loop()
        for j in jobs:
            j.future, j.enqueued = loop.create_future(), loop.time()
            self.pending.append(j)
        self.metrics.queued.set(len(self.pending))
        self._wake.set()
        return list(await asyncio.gather(*(j.future for j in jobs)))

    async def stop(self) -> None:
        """Finish what is queued, then stop."""
        self.stopping = True
        if self._wake is not None:
            self._wake.set()
        if self._task is not None:
            await self._task
        self.executor.shutdown(wait=True)

    async def _next_batch(self) -> list[Job]:
        loop = asyncio.get_running_loop()
        while not self.pending:
            if self.stopping:
                return []
            self._wake.clear()
            await self._wake.wait()
        deadline = self.pending[0].enqueued + self.max_wait
        while len(self.pending) < self.max_batch and not self.stopping:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), remaining)
            except asyncio.TimeoutError:
                break
        return [self.pending.popleft() for _ in range(min(self.max_batch, len(self.pending)))]

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            if not batch:
                return
            now = loop.time()
            self.metrics.queued.set(len(self.pending))
            self.metrics.batch_size.observe(len(batch))
            for j in batch:
                self.metrics.queue_wait.observe(now - j.enqueued)
            try:
                results = await loop.run_in_executor(self.executor, self.run, batch)
            except Exception as exc:  # the loop must outlive any batch
                results = [exc] * len(batch)
            self.metrics.batch_seconds.observe(loop.time() - now)
            for j, r in zip(batch, results, strict=True):
                if j.future.done():  # its request was cancelled (client gone)
                    continue
                if isinstance(r, BaseException):
                    j.future.set_exception(r)
                else:
                    j.future.set_result(r)
