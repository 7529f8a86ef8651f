"""Reproducible, resumable per-task data streams.

Every item's augmentation is seeded by ``(run seed, task, epoch, index)``, so a run gives the same batches
whatever the number of workers, and a resumed run continues exactly where the interrupted one stopped.
Under data parallelism each global batch is split across ranks, so N processes see the same global batch
as one process.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..errors import FaceptorError, contract_error


def check_dataset(spec, ds, split: str):
    """``ds`` (what ``spec.dataset`` returned for ``split``) is a dataset with at least one item."""
    if not (hasattr(ds, "__len__") and hasattr(ds, "__getitem__")):
        raise contract_error(
            spec,
            "dataset",
            f"returned {type(ds).__name__} for split {split!r}; expected a "
            "torch Dataset (with __len__ and __getitem__)",
        )
    if len(ds) == 0:
        raise FaceptorError(
            f"task {spec.name!r}: split {split!r} has no usable items"
            + (f" ({data_report_line(ds)})" if data_report_line(ds) else "")
        )
    return ds


def open_dataset(spec, root, split: str, transform=None, skip_invalid: bool = False):
    """``spec.dataset(root, split, transform=...)``, checked (:func:`check_dataset`). With ``skip_invalid``
    the dataset leaves unusable records out and lists them in its report instead of raising on the first."""
    kw = {"skip_invalid": True} if skip_invalid else {}
    try:
        ds = spec.dataset(root, split, transform=transform, **kw)
    except TypeError as exc:
        if skip_invalid and "skip_invalid" in str(exc):
            raise contract_error(
                spec, "dataset", "does not take skip_invalid=True (its records cannot be skipped and reported)"
            ) from None
        raise
    return check_dataset(spec, ds, split)


def data_report_line(ds) -> str | None:
    """The dataset's data report on one line when it left records out or excluded some (datasets that have
    a ``report()`` returning an object with ``clean`` and ``summary()``), else ``None``."""
    report = getattr(ds, "report", None)
    if not callable(report):
        return None
    r = report()
    if getattr(r, "clean", True):
        return None
    return str(r.summary())


class DataWorkerError(FaceptorError):
    """A user-facing error raised inside a data-loading worker, passed on as its own message."""


def unwrap_worker_error(exc: BaseException) -> BaseException:
    """A DataLoader worker re-raises errors with the worker's whole traceback in the message; for a
    :class:`FaceptorError` keep its own one-line message (the traceback's last line)."""
    text = str(exc)
    if "DataLoader worker" not in text.split("\n", 1)[0]:
        return exc
    name, sep, message = text.rstrip().splitlines()[-1].partition(": ")
    if sep and name.rsplit(".", 1)[-1] in {c.__name__ for c in _subclasses(FaceptorError)}:
        return DataWorkerError(message)
    return exc


def _subclasses(cls: type) -> list[type]:
    out = [cls]
    for sub in cls.__subclasses__():
        out += _subclasses(sub)
    return out


def seed_for(*parts: object) -> int:
    """A stable 32-bit seed from any parts (independent of Python's hash randomisation)."""
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little")


def _set_transform_seed(transform: Callable, seed: int) -> None:
    for obj in (transform, getattr(transform, "pipeline", None), getattr(transform, "compose", None)):
        if obj is not None and hasattr(obj, "set_random_seed"):
            obj.set_random_seed(seed)


class SeededItems(Dataset):
    """Dataset wrapper whose item ``(epoch, index)`` is transformed under a seed fixed by both."""

    def __init__(self, dataset: Dataset, transform: Callable | None, seed: int, name: str):
        self.dataset, self.transform, self.seed, self.name = dataset, transform, seed, name

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int] | int):
        epoch, index = key if isinstance(key, tuple) else (0, key)
        item = self.dataset[index]
        if self.transform is None:
            return item
        s = seed_for(self.seed, self.name, epoch, index)
        py_state, np_state = random.getstate(), np.random.get_state()
        try:  # the caller's random streams (dropout, stochastic depth) are left as they were
            with torch.random.fork_rng(devices=[]):
                random.seed(s)
                np.random.seed(s)
                # the CPU generator only: torch.manual_seed also queues a seed for CUDA, which costs 0.8 ms an item
                # (a stack trace per call) while CUDA is not initialised, a sixth of a SynthFaces item's loading
                torch.random.default_generator.manual_seed(s)
                _set_transform_seed(self.transform, s)
                return self.transform(item)
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


class EpochBatchSampler(Sampler):
    """Yields batches of ``(epoch, index)``: a fresh seeded permutation each epoch, this rank's share of
    each global batch, starting after ``start`` global batches. Incomplete last batches are dropped."""

    def __init__(
        self,
        length: int,
        batch_size: int,
        seed: int,
        name: str,
        start: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
    ):
        if batch_size % world_size:
            raise ValueError(f"task {name!r}: batch size {batch_size} is not divisible by {world_size} processes")
        if length < batch_size:
            raise ValueError(f"task {name!r}: {length} training items are fewer than one batch of {batch_size}")
        self.length, self.batch_size, self.seed, self.name = length, batch_size, seed, name
        self.start, self.rank, self.world_size, self.shuffle = start, rank, world_size, shuffle
        self.per_epoch = length // batch_size

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        consumed, order_epoch, order = self.start, -1, torch.arange(self.length)
        while True:
            epoch, pos = divmod(consumed, self.per_epoch)
            if self.shuffle and epoch != order_epoch:  # one permutation an epoch, drawn when the epoch starts
                g = torch.Generator().manual_seed(seed_for(self.seed, self.name, "perm", epoch))
                order, order_epoch = torch.randperm(self.length, generator=g), epoch
            batch = order[pos * self.batch_size : (pos + 1) * self.batch_size]
            yield [(epoch, int(i)) for i in batch[self.rank :: self.world_size]]
            consumed += 1

    def __len__(self) -> int:  # infinite stream; DataLoader only needs this for progress estimates
        return 2**31


class TaskStream:
    """An endless, resumable stream of collated batches for one task."""

    def __init__(
        self,
        dataset: Dataset,
        transform: Callable | None,
        batch_size: int,
        seed: int,
        name: str,
        num_workers: int = 0,
        start: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.name = name
        self.consumed = start
        items = SeededItems(dataset, transform, seed, name)
        sampler = EpochBatchSampler(len(items), batch_size, seed, name, start, rank, world_size)
        self.loader = DataLoader(
            items,
            batch_sampler=sampler,
            num_workers=num_workers,
            persistent_workers=num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )
        self._it = iter(self.loader)
        self.closed = False

    def __next__(self):
        if self.closed:
            raise RuntimeError(f"task {self.name!r}: the data stream was closed (TaskStream.close)")
        try:
            batch = next(self._it)
        except Exception as exc:  # an item failed in a worker: keep a user error's own message
            unwrapped = unwrap_worker_error(exc)
            if unwrapped is exc:
                raise
            raise unwrapped from None
        self.consumed += 1
        return batch

    def __iter__(self):
        return self

    def close(self) -> None:
        """Stop the data workers (they also stop when the stream is garbage collected); the stream gives no more
        batches."""
        self.closed = True
        shutdown = getattr(self._it, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
