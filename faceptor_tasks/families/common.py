"""Shared pieces of the task families: errors, image decoding, the dataset base and the metric base."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import Dataset

from faceptor_core.errors import FaceptorError
from faceptor_core.spec import MetricMeta

#: ``(file, line, reason)`` of an entry left out by ``skip_invalid=True``; line 0 when not line-based.
Skip = tuple[str, int, str]


class DatasetFormatError(FaceptorError, ValueError):
    """A malformed annotation, a missing file or an undecodable image, with the file (and line) named."""

    def __init__(self, file: str | os.PathLike, line: int, reason: str):
        self.file, self.line, self.reason = str(file), int(line), reason
        where = f"{self.file}:{self.line}" if self.line else self.file
        super().__init__(f"{where}: {reason}")


def decode_image(data: bytes, name: str = "<bytes>", backend: str = "auto") -> np.ndarray:
    """Encoded image bytes -> ``H x W x 3`` uint8 RGB (16-bit images scaled, decompression bombs refused).

    ``backend`` is ``"auto"`` (the core's decoder: Pillow, OpenCV only for formats Pillow does not know; a
    corrupt file that Pillow rejects is an error, not a partial decode), ``"pil"`` or ``"cv2"``.
    """
    from faceptor_core.images import ImageDecodeError, decode_with_opencv
    from faceptor_core.images import decode_image as core_decode

    if backend not in ("auto", "pil", "cv2"):
        raise ValueError(f"unknown image backend {backend!r}; choose auto, pil or cv2")
    try:
        return decode_with_opencv(data, name) if backend == "cv2" else core_decode(data, name)
    except ImageDecodeError as exc:
        raise DatasetFormatError(name, 0, exc.reason) from None


def load_image(path: str | os.PathLike, backend: str = "auto") -> np.ndarray:
    """Read an image file as ``H x W x 3`` uint8 RGB (see :func:`decode_image`); errors name the file."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DatasetFormatError(path, 0, f"cannot read image: {exc.strerror or exc}") from None
    return decode_image(data, str(path), backend)


def load_label_map(path: str | os.PathLike, num_classes: int | None = None) -> np.ndarray:
    """Read a label image (PNG) as ``H x W`` uint8 without any colour conversion.

    Values are class indices: a label image whose values do not fit in 8 bits, a colour label image whose
    channels differ, or (with ``num_classes``) a value outside ``0 .. num_classes - 1`` is an error naming
    the file."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            arr = np.asarray(im)
    except FileNotFoundError:
        raise DatasetFormatError(path, 0, "label map not found") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DatasetFormatError(path, 0, f"label map refused ({exc})") from None
    except Exception as exc:
        raise DatasetFormatError(path, 0, f"cannot decode label map ({exc})") from None
    if arr.ndim == 3:
        if arr.shape[2] >= 3 and not (
            np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2])
        ):
            raise DatasetFormatError(
                path, 0, "colour label map: expected one class index per pixel (a grey or palette PNG)"
            )
        arr = arr[..., 0]
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    if arr.dtype != np.uint8:
        if arr.dtype.kind not in "ui" or (arr.size and (arr.min() < 0 or arr.max() > 255)):
            top = arr.max() if arr.size else 0
            raise DatasetFormatError(path, 0, f"label values ({arr.dtype}, up to {top}) are not 8-bit class indices")
        arr = arr.astype(np.uint8)
    if num_classes is not None and arr.size and int(arr.max()) >= num_classes:
        bad = np.unique(arr[arr >= num_classes])
        raise DatasetFormatError(
            path,
            0,
            f"label value(s) {', '.join(map(str, bad[:5].tolist()))} outside the "
            f"{num_classes} classes (0..{num_classes - 1})",
        )
    return arr


def as_rgb(image: np.ndarray) -> np.ndarray:
    """Grey ``H x W`` (or ``H x W x 1``) or RGB arrays -> contiguous ``H x W x 3`` uint8."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected an H x W (x 1|3|4) image, got shape {image.shape}")
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3].astype(np.uint8, copy=False))


# -- annotation parsing ------------------------------------------------------------------------------
class Collector:
    """Collects parsed samples; a bad entry raises :class:`DatasetFormatError` or, when skipping, is recorded."""

    def __init__(self, skip_invalid: bool = False):
        self.skip_invalid = skip_invalid
        self.samples: list[Sample] = []
        self.skipped: list[Skip] = []
        self.excluded: Counter[str] = Counter()

    def reject(self, file: str | os.PathLike, line: int, reason: str) -> None:
        if not self.skip_invalid:
            raise DatasetFormatError(file, line, reason)
        self.skipped.append((str(file), int(line), reason))

    @contextmanager
    def entry(self, file: str | os.PathLike, line: int = 0) -> Iterator[None]:
        """Parse one entry: ``ValueError``/``IndexError``/``KeyError`` inside become a rejection of it."""
        try:
            yield
        except DatasetFormatError as exc:
            self.reject(exc.file, exc.line or line, exc.reason)
        except (ValueError, IndexError, KeyError, TypeError) as exc:
            self.reject(file, line, f"malformed entry ({type(exc).__name__}: {exc})")

    def add(self, sample: Sample) -> None:
        """Keep a sample whose image file exists; else raise, naming the image and its annotation line (inside
        :meth:`entry` that rejects the entry)."""
        if isinstance(sample.image, str) and not os.path.isfile(sample.image):
            file, line = sample.source
            raise DatasetFormatError(file, line, f"image file not found: {sample.image}")
        self.samples.append(sample)

    def exclude(self, reason: str) -> None:
        """Count a well-formed entry that lies outside the task's label space (documented per reader)."""
        self.excluded[reason] += 1


def read_lines(path: str | os.PathLike) -> list[str]:
    """The lines of an annotation file (error naming it when missing)."""
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        raise DatasetFormatError(path, 0, "annotation file not found") from None


def first_existing(*paths: str | os.PathLike) -> Path | None:
    """The first of ``paths`` that exists, else None."""
    for p in paths:
        if p and os.path.exists(p):
            return Path(p)
    return None


def require(path: Path | None, root: str | os.PathLike, what: str) -> Path:
    """``path`` or a :class:`DatasetFormatError` naming what was looked for under ``root``."""
    if path is None:
        raise DatasetFormatError(root, 0, f"no {what} found under this root")
    return path


def check_split(split: str, known: Sequence[str], root: str | os.PathLike) -> str:
    if split not in known:
        raise DatasetFormatError(root, 0, f"unknown split {split!r}; expected one of {', '.join(known)}")
    return split


# -- the dataset base --------------------------------------------------------------------------------
class LazyTarget(ABC):
    """A target read from its own file(s) when the item is loaded (e.g. a label map)."""

    @abstractmethod
    def load(self) -> Any:
        """The target; raises :class:`DatasetFormatError` naming the file on failure."""

    def key(self) -> str:
        """What identifies the target (its files), to recognise duplicate records."""
        return repr(sorted(vars(self).items()))


@dataclass(frozen=True)
class Sample:
    """One annotated image: an image path (or an in-memory array), its target and where it was declared."""

    image: str | np.ndarray
    target: Any
    source: tuple[str, int]
    box: tuple[float, float, float, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


class FaceDataset(Dataset):
    """A list of :class:`Sample` read into raw items, optionally transformed.

    A raw item is ``{"image": uint8 H x W x 3, "target": ..., "box"?: float32 (x1, y1, x2, y2),
    "meta": dict}`` plus any reader-specific keys. The data report (:meth:`report`):

    - ``skipped``: entries left out by ``skip_invalid`` (file, line, reason); without ``skip_invalid`` the
      first such entry is an error naming its file and line;
    - ``excluded``: well-formed entries outside the label space, counted by reason;
    - ``dropped``: exact duplicates of an earlier record (same image, box and target), left out and named.

    An image that cannot be decoded, or an item that ``check_item`` rejects when it is loaded, raises (naming
    the annotation line) or, when skipping, is recorded in ``skipped`` and replaced by the next good item.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        transform: Callable[[dict[str, Any]], Any] | None = None,
        skip_invalid: bool = False,
        skipped: Sequence[Skip] = (),
        excluded: Counter[str] | None = None,
        image_loader: Callable[[str], np.ndarray] = load_image,
        name: str = "",
        check_item: Callable[[dict[str, Any]], str | None] | None = None,
    ):
        self.samples = list(samples)
        self.transform = transform
        self.skip_invalid = skip_invalid
        self.skipped: list[Skip] = list(skipped)
        self.excluded: Counter[str] = Counter(excluded or {})
        self.dropped: list[Skip] = []
        self.image_loader = image_loader
        self.name = name
        self.check_item = check_item

    @classmethod
    def from_collector(cls, col: Collector, transform: Callable | None = None, **kw: Any) -> FaceDataset:
        return cls(col.samples, transform, col.skip_invalid, col.skipped, col.excluded, **kw)

    def __len__(self) -> int:
        return len(self.samples)

    # -- validation ------------------------------------------------------------------------------------
    def reject(self, sample: Sample, reason: str) -> None:
        """Leave ``sample`` out for ``reason``: an error naming its line, or a ``skipped`` record."""
        file, line = sample.source
        if not self.skip_invalid:
            raise DatasetFormatError(file, line, reason)
        self.skipped.append((file, line, reason))

    def validate(self, check: Callable[[Sample], str | None]) -> FaceDataset:
        """Reject every sample for which ``check(sample)`` gives a reason."""
        kept = []
        for s in self.samples:
            reason = check(s)
            if reason is None:
                kept.append(s)
            else:
                self.reject(s, reason)
        self.samples = kept
        return self

    def drop_duplicates(self) -> FaceDataset:
        """Leave out exact repeats of a record (same image, box and target), each named in ``dropped``."""
        first: dict[tuple, tuple[str, int]] = {}
        kept = []
        for s in self.samples:
            key = _record_key(s)
            if key is not None and key in first:
                file, line = first[key]
                self.dropped.append((*s.source, f"duplicate of {file}:{line}" if line else f"duplicate of {file}"))
                continue
            if key is not None:
                first[key] = s.source
            kept.append(s)
        self.samples = kept
        return self

    def image_keys(self) -> dict[str, tuple[str, int]]:
        """``{image path: (file, line)}`` of the samples read from files (to find images shared by splits)."""
        return {s.image: s.source for s in self.samples if isinstance(s.image, str)}

    def report(self) -> DataReport:
        """What was kept, skipped, excluded and dropped (see the class docstring)."""
        return DataReport(self.name, len(self), list(self.skipped), Counter(self.excluded), list(self.dropped))

    # -- items -----------------------------------------------------------------------------------------
    def _image(self, s: Sample) -> np.ndarray:
        if isinstance(s.image, np.ndarray):
            return as_rgb(s.image)
        try:
            return self.image_loader(s.image)
        except DatasetFormatError as exc:
            file, line = s.source
            raise DatasetFormatError(file, line, f"{exc.file}: {exc.reason}") from None

    def raw(self, index: int) -> dict[str, Any]:
        """The untransformed item ``index`` (no skipping)."""
        s = self.samples[index]
        target = s.target.load() if isinstance(s.target, LazyTarget) else _copy(s.target)
        item: dict[str, Any] = {"image": self._image(s), "target": target, "meta": dict(s.meta)}
        if s.box is not None:
            item["box"] = np.asarray(s.box, dtype=np.float32)
        item.update({k: _copy(v) for k, v in s.extra.items()})
        if self.check_item is not None:
            reason = self.check_item(item)
            if reason is not None:
                raise DatasetFormatError(*s.source, reason)
        return item

    def finish(self, item: dict[str, Any]) -> Any:
        """The returned item: the raw item through ``transform`` when there is one."""
        return self.transform(item) if self.transform is not None else item

    def __getitem__(self, index: int) -> Any:
        if index < 0:
            index += len(self)
        for step in range(len(self)):
            i = (index + step) % len(self)
            try:
                item = self.raw(i)
            except DatasetFormatError as exc:
                if not self.skip_invalid:
                    raise
                self.skipped.append((exc.file, exc.line, exc.reason))
                continue
            return self.finish(item)
        raise DatasetFormatError(self.name or "dataset", 0, "no decodable item left")


def _record_key(s: Sample) -> tuple | None:
    if not isinstance(s.image, str):
        return None
    t = s.target
    if isinstance(t, LazyTarget):
        target: Any = t.key()
    elif isinstance(t, np.ndarray):
        target = (t.dtype.str, t.shape, t.tobytes())
    else:
        target = repr(t)
    return (s.image, s.box, target)


@dataclass
class DataReport:
    """A dataset's data report: samples kept, and every left-out or excluded record with its reason."""

    name: str
    kept: int
    skipped: list[Skip] = field(default_factory=list)
    excluded: Counter[str] = field(default_factory=Counter)
    dropped: list[Skip] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.skipped or self.excluded or self.dropped)

    def summary(self, examples: int = 3) -> str:
        """One line: ``name: N samples; skipped K (file:line: reason; ...); excluded ...; dropped ...``."""
        parts = [f"{self.name or 'dataset'}: {self.kept} samples"]
        for what, records in (("skipped", self.skipped), ("dropped", self.dropped)):
            if records:
                shown = "; ".join(f"{f}:{ln}: {r}" if ln else f"{f}: {r}" for f, ln, r in records[:examples])
                more = f"; ... {len(records) - examples} more" if len(records) > examples else ""
                parts.append(f"{what} {len(records)} ({shown}{more})")
        if self.excluded:
            parts.append("excluded " + ", ".join(f"{n} {r}" for r, n in sorted(self.excluded.items())))
        return "; ".join(parts)


def build_dataset(
    reader: Callable[..., FaceDataset],
    root: str | os.PathLike,
    split: str,
    transform: Callable[[dict[str, Any]], Any] | None = None,
    skip_invalid: bool = False,
    *,
    check_sample: Callable[[Sample], str | None] | None = None,
    check_item: Callable[[dict[str, Any]], str | None] | None = None,
    **reader_kw: Any,
) -> FaceDataset:
    """``TaskSpec.dataset``: read ``split`` under ``root`` with ``reader`` and attach ``transform``.

    The family's ``check_sample`` rejects records when the split is read and ``check_item`` rejects items
    when they are loaded (both: an error naming the line, or a ``skipped`` record with ``skip_invalid``);
    exact duplicate records are dropped and reported. A split with nothing usable is an error."""
    if root is None:
        raise DatasetFormatError("<no root>", 0, f"split {split!r} needs a dataset root (the task entry's 'root')")
    ds = reader(os.fspath(root), split, skip_invalid=skip_invalid, **reader_kw)
    if not isinstance(ds, FaceDataset):
        from faceptor_core.errors import describe_callable

        raise TypeError(f"reader {describe_callable(reader)} returned {type(ds).__name__}; expected a FaceDataset")
    if check_sample is not None:
        ds.validate(check_sample)
    ds.drop_duplicates()
    ds.check_item = check_item
    if len(ds) == 0:
        report = ds.report()
        detail = f" ({report.summary()})" if not report.clean else ""
        raise DatasetFormatError(root, 0, f"split {split!r} has no usable samples{detail}")
    ds.transform = transform
    return ds


def _copy(v: Any) -> Any:
    return v.copy() if isinstance(v, np.ndarray) else v


# -- the metric base ---------------------------------------------------------------------------------
class NonFinitePredictionError(FaceptorError, ValueError):
    """A metric was given NaN or infinite predictions (a diverged model); the message names the task."""


def _finite_or_raise(metric: Metric, prediction: Any, method: str) -> None:
    if isinstance(prediction, torch.Tensor):
        ok = not prediction.is_floating_point() or bool(torch.isfinite(prediction).all())
    elif isinstance(prediction, np.ndarray):
        ok = prediction.dtype.kind not in "fc" or bool(np.isfinite(prediction).all())
    else:
        return
    if not ok:
        who = f"task {metric.task!r}: " if metric.task else ""
        raise NonFinitePredictionError(
            f"{who}{type(metric).__name__}.{method} was given NaN or infinite "
            "predictions (has the model diverged?); refusing to score them"
        )


def _refusing_non_finite(fn: Callable, method: str, args: int) -> Callable:
    import functools

    @functools.wraps(fn)
    def wrapper(self: Metric, *a: Any, **kw: Any) -> Any:
        for x in a[:args]:
            _finite_or_raise(self, x, method)
        return fn(self, *a, **kw)

    wrapper._checks_finite = True  # type: ignore[attr-defined]
    return wrapper


class Metric(ABC):
    """The families' base of :class:`faceptor_core.spec.Metric`: accumulates over batches; :meth:`compute` is exact
    for the whole set, whatever the batching. A subclass declares :attr:`meta` for every value it computes.

    Every metric refuses NaN or infinite predictions (:class:`NonFinitePredictionError`): a subclass's
    ``update`` (and ``update_pairs``) is wrapped with the check. ``task`` names the task in that error."""

    task: str = ""
    takes_raw_output: ClassVar[bool] = False
    pairs: ClassVar[bool] = False

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        for method, args in (("update", 1), ("update_pairs", 2)):
            fn = cls.__dict__.get(method)
            if fn is not None and not getattr(fn, "_checks_finite", False):
                setattr(cls, method, _refusing_non_finite(fn, method, args))

    def __init__(self) -> None:
        self.reset()

    @abstractmethod
    def reset(self) -> None: ...

    @abstractmethod
    def update(self, prediction: Any, target: Any, meta: dict[str, Any] | None = None) -> None: ...

    @abstractmethod
    def compute(self) -> dict[str, float]: ...

    @property
    @abstractmethod
    def meta(self) -> dict[str, MetricMeta]:
        """Direction, unit and description of every value :meth:`compute` returns."""


def higher(unit: str, description: str) -> MetricMeta:
    """A score where higher is better."""
    return MetricMeta(better="higher", unit=unit, description=description)


def lower(unit: str, description: str) -> MetricMeta:
    """A score where lower is better."""
    return MetricMeta(better="lower", unit=unit, description=description)


def as_tensor(x: Any, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Tensor view of an array-like (kept on CPU), detached."""
    t = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    t = t.cpu()
    return t.to(dtype) if dtype is not None else t
