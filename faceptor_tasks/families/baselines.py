"""Trivial baselines of the task families (the core's :class:`~faceptor_core.spec.Baseline` protocol).

Each answers every evaluated image the same way, from statistics of the training split as the evaluation
transform presents it (so the answer lives in the evaluated items' crop geometry), and hands the family's metric
exactly what a model's prediction would be: scoring it is scoring a model that always gives that answer.

| family | trivial answer |
| --- | --- |
| landmarks | the mean training shape, in the normalised crop frame |
| parsing | the per-pixel majority class map of the training crops |
| age, regression | the mean training value (per output; `regression_task` declares it) |
| expression (classification) | the majority training class |
| attributes | each attribute's majority training value |
| recognition (verification) | one constant embedding (chance: see :class:`ConstantEmbeddingBaseline`) |

A plugin family opts in with ``TaskSpec(baseline=...)``, e.g. ``baseline=mean_value_baseline``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from faceptor_core.spec import TaskSpec

from .common import as_tensor


def batch_length(batch: Mapping[str, Any]) -> int:
    """Number of items in a collated batch (images, or verification pairs)."""
    for key in ("image", "image_a", "target", "issame"):
        if key in batch:
            return len(batch[key])
    raise ValueError(f"cannot tell the batch size of a batch with keys {sorted(batch)}")


class _Fitted:
    """Shared bookkeeping: how many training items were seen; ``predict`` before ``fit`` is an error."""

    needs_training = True

    def __init__(self) -> None:
        self.seen = 0

    def _check(self) -> None:
        if self.seen == 0:
            raise RuntimeError(f"{type(self).__name__}: fit() on training items first")


class MeanShapeBaseline(_Fitted):
    """Landmarks: the mean training shape in the normalised crop frame (``(x + 0.5) / S``), placed in every
    evaluated crop. Points missing (NaN) in an item are left out of that point's mean."""

    def __init__(self) -> None:
        super().__init__()
        self.total: torch.Tensor | None = None
        self.squares: torch.Tensor | None = None
        self.count: torch.Tensor | None = None

    def fit(self, batches: Iterable[Mapping[str, Any]]) -> None:
        for batch in batches:
            pts = as_tensor(batch["target"], torch.float64)
            size = batch["image"].shape[-1]
            norm = (pts + 0.5) / size
            known = torch.isfinite(norm)
            total = torch.where(known, norm, 0.0).sum(0)
            squares = torch.where(known, norm * norm, 0.0).sum(0)
            count = known.sum(0)
            self.total = total if self.total is None else self.total + total
            self.squares = squares if self.squares is None else self.squares + squares
            self.count = count if self.count is None else self.count + count
            self.seen += len(pts)

    @property
    def mean_shape(self) -> torch.Tensor:
        """``N x 2`` mean shape in normalised crop coordinates."""
        self._check()
        assert self.total is not None and self.count is not None
        return self.total / self.count.clamp_min(1)

    def predict(self, batch: Mapping[str, Any]) -> torch.Tensor:
        size = batch["image"].shape[-1]
        return (self.mean_shape * size - 0.5).expand(batch_length(batch), -1, -1).clone()

    @property
    def spread(self) -> torch.Tensor:
        """``N x 2`` standard deviation of each point over the training items (normalised crop coordinates)."""
        mean = self.mean_shape
        assert self.squares is not None and self.count is not None
        return (self.squares / self.count.clamp_min(1) - mean * mean).clamp_min(0).sqrt()

    def raw_output(self, shape: tuple[int, ...]) -> torch.Tensor:
        """``N x h x w`` heatmap logits whose sigmoid is a Gaussian at each mean point, as wide as the point's
        training spread (at least one cell): the soft-argmax of it is the mean shape."""
        n, h, w = shape
        mean, spread = self.mean_shape, self.spread
        if mean.shape[0] != n:
            raise ValueError(f"the mean shape has {mean.shape[0]} points, the head {n}")
        scale = torch.tensor([w, h], dtype=torch.float64)
        centre, sigma = mean * scale - 0.5, (spread * scale).clamp_min(1.0)  # in cells (cell i at i)
        xs = torch.arange(w, dtype=torch.float64).view(1, 1, w)
        ys = torch.arange(h, dtype=torch.float64).view(1, h, 1)
        dx = (xs - centre[:, 0, None, None]) / sigma[:, 0, None, None]
        dy = (ys - centre[:, 1, None, None]) / sigma[:, 1, None, None]
        heat = torch.exp(-0.5 * (dx * dx + dy * dy)).clamp(1e-6, 1 - 1e-6)
        return torch.logit(heat).float()

    def describe(self) -> str:
        return f"mean training shape in the crop frame ({self.seen:,} training items)"


class PixelMajorityBaseline(_Fitted):
    """Parsing: the per-pixel majority class of the training crops (ties to the lower class index), as a
    label map for every evaluated crop; ``ignore_index`` pixels are not counted."""

    def __init__(self, label_names: Sequence[str], ignore_index: int = 255):
        super().__init__()
        self.label_names, self.ignore_index = tuple(label_names), ignore_index
        self.counts: torch.Tensor | None = None  # K x H x W

    def fit(self, batches: Iterable[Mapping[str, Any]]) -> None:
        k = len(self.label_names)
        for batch in batches:
            labels = as_tensor(batch["target"], torch.int64)
            b, h, w = labels.shape
            if self.counts is None:
                self.counts = torch.zeros(k, h, w, dtype=torch.int64)
            elif self.counts.shape[1:] != (h, w):
                raise ValueError(f"training crops are {h}x{w}, earlier ones {tuple(self.counts.shape[1:])}")
            keep = labels != self.ignore_index
            if keep.any() and (labels[keep].min() < 0 or labels[keep].max() >= k):
                raise ValueError(f"training labels outside 0..{k - 1}")
            pixel = torch.arange(h * w).expand(b, -1).reshape(b, h, w)
            index = (labels * (h * w) + pixel)[keep]
            self.counts += torch.bincount(index, minlength=k * h * w).view(k, h, w)
            self.seen += b

    @property
    def majority_map(self) -> torch.Tensor:
        """``H x W`` int64 majority class per pixel."""
        self._check()
        assert self.counts is not None
        return self.counts.argmax(dim=0)

    def predict(self, batch: Mapping[str, Any]) -> torch.Tensor:
        return self.majority_map.expand(batch_length(batch), -1, -1).clone()

    def raw_output(self, shape: tuple[int, ...]) -> torch.Tensor:
        """``K x h x w`` logits: the log class frequencies of each output cell (add-one smoothed)."""
        self._check()
        assert self.counts is not None
        k, h, w = shape
        if k != self.counts.shape[0]:
            raise ValueError(f"the baseline counts {self.counts.shape[0]} classes, the head {k}")
        counts = F.adaptive_avg_pool2d(self.counts[None].double(), (h, w))[0] + 1.0
        return (counts / counts.sum(0, keepdim=True)).log().float()

    def describe(self) -> str:
        assert self.counts is not None
        share = self.counts.sum(dim=(1, 2)).double()
        top = int(share.argmax())
        return (
            f"per-pixel majority class map of {self.seen:,} training crops (overall most frequent: "
            f"{self.label_names[top]!r}, {float(share[top] / share.sum()):.1%} of pixels)"
        )


class MeanValueBaseline(_Fitted):
    """Age and regression: the mean training target (per output for vector targets)."""

    def __init__(self, unit: str = "") -> None:
        super().__init__()
        self.unit = unit
        self.total: torch.Tensor | None = None

    def fit(self, batches: Iterable[Mapping[str, Any]]) -> None:
        for batch in batches:
            self._add(as_tensor(batch["target"], torch.float64))

    def _add(self, values: torch.Tensor) -> None:
        total = values.sum(0)
        self.total = total if self.total is None else self.total + total
        self.seen += len(values)

    @property
    def mean(self) -> torch.Tensor:
        self._check()
        assert self.total is not None
        return self.total / self.seen

    def predict(self, batch: Mapping[str, Any]) -> torch.Tensor:
        mean = self.mean
        return mean.expand(batch_length(batch), *mean.shape).clone()

    def describe(self) -> str:
        values = ", ".join(f"{v:.4g}" for v in self.mean.reshape(-1).tolist())
        unit = f" {self.unit}" if self.unit else ""
        return f"mean training value {values}{unit} ({self.seen:,} training items)"


class AgeMeanBaseline(MeanValueBaseline):
    """Age: the mean training age, also as a raw output over the ``bins`` ages ``0..bins-1`` (a
    :class:`~faceptor_core.spec.PriorBaseline`): the training ages' histogram, each age split between its two
    neighbouring bins, whose expected age is the mean training age."""

    def __init__(self, unit: str = "years", bins: int = 101) -> None:
        super().__init__(unit)
        self.histogram = torch.zeros(bins, dtype=torch.float64)

    def _add(self, values: torch.Tensor) -> None:
        super()._add(values)
        top = len(self.histogram) - 1
        ages = values.reshape(-1).clamp(0, top)  # the head's range
        low = ages.floor()
        upper = (low + 1).clamp_max(top)
        self.histogram.index_add_(0, low.long(), 1 - (ages - low))
        self.histogram.index_add_(0, upper.long(), ages - low)

    def raw_output(self, shape: tuple[int, ...]) -> torch.Tensor:
        """``bins`` logits whose sigmoid, normalised as the age head decodes it, is the training histogram."""
        self._check()
        _check_shape(shape, tuple(self.histogram.shape))
        share = (self.histogram / self.histogram.sum()).clamp(1e-7, 1 - 1e-7)  # shifts the mean by < 0.002
        return torch.logit(share).float()


class RegressionMeanBaseline(MeanValueBaseline):
    """Regression, whose raw outputs are the values themselves: the mean training target, also as a raw output
    (a :class:`~faceptor_core.spec.PriorBaseline`, so that an output prior starts there)."""

    def raw_output(self, shape: tuple[int, ...]) -> torch.Tensor:
        """``K`` raw outputs: the mean training value of each."""
        mean = self.mean.reshape(-1)
        _check_shape(shape, tuple(mean.shape))
        return mean.float()


class MajorityClassBaseline(_Fitted):
    """Single-label classification: the majority training class (ties to the lower index), given as one-hot
    scores so that any top-1 rule picks it."""

    def __init__(self, label_names: Sequence[str]):
        super().__init__()
        self.label_names = tuple(label_names)
        self.counts = torch.zeros(len(self.label_names), dtype=torch.int64)

    def fit(self, batches: Iterable[Mapping[str, Any]]) -> None:
        k = len(self.label_names)
        for batch in batches:
            labels = as_tensor(batch["target"], torch.int64).reshape(-1)
            if len(labels) and (labels.min() < 0 or labels.max() >= k):
                raise ValueError(f"training classes outside 0..{k - 1}")
            self.counts += torch.bincount(labels, minlength=k)
            self.seen += len(labels)

    @property
    def majority(self) -> int:
        self._check()
        return int(self.counts.argmax())

    def predict(self, batch: Mapping[str, Any]) -> torch.Tensor:
        onehot = F.one_hot(torch.tensor(self.majority), len(self.label_names)).float()
        return onehot.expand(batch_length(batch), -1).clone()

    def raw_output(self, shape: tuple[int, ...]) -> torch.Tensor:
        """``K`` logits: the log class frequencies (add-one smoothed; the majority class scores highest)."""
        self._check()
        _check_shape(shape, (len(self.label_names),))
        counts = self.counts.double() + 1.0
        return (counts / counts.sum()).log().float()

    def describe(self) -> str:
        k = self.majority
        return (
            f"majority training class {self.label_names[k]!r} ({float(self.counts[k]) / self.seen:.1%} of "
            f"{self.seen:,} training items)"
        )


class AttributeMajorityBaseline(_Fitted):
    """Binary attributes: each attribute's majority training value over known labels (a tie, or no known
    label, gives negative), as probabilities 1.0 / 0.0."""

    def __init__(self, label_names: Sequence[str]):
        super().__init__()
        self.label_names = tuple(label_names)
        k = len(self.label_names)
        self.positive = torch.zeros(k, dtype=torch.int64)
        self.known = torch.zeros(k, dtype=torch.int64)

    def fit(self, batches: Iterable[Mapping[str, Any]]) -> None:
        for batch in batches:
            labels = as_tensor(batch["target"], torch.float64)
            known = labels >= 0
            self.positive += ((labels > 0.5) & known).sum(0)
            self.known += known.sum(0)
            self.seen += len(labels)

    @property
    def majority(self) -> torch.Tensor:
        """``K`` bool: the majority value of each attribute."""
        self._check()
        return 2 * self.positive > self.known

    def predict(self, batch: Mapping[str, Any]) -> torch.Tensor:
        return self.majority.double().expand(batch_length(batch), -1).clone()

    def raw_output(self, shape: tuple[int, ...]) -> torch.Tensor:
        """``K`` logits: the log-odds of each attribute's positive share (add-one smoothed). A tie gives 0, which
        decodes to positive at 0.5; the smoothing makes exact ties rare."""
        self._check()
        _check_shape(shape, (len(self.label_names),))
        p = (self.positive.double() + 1.0) / (self.known.double() + 2.0)
        return torch.logit(p).float()

    def describe(self) -> str:
        positive = [n for n, m in zip(self.label_names, self.majority.tolist(), strict=True) if m]
        return (
            f"each attribute's majority training value ({self.seen:,} training items; positive: "
            f"{', '.join(positive) if positive else 'none'})"
        )


def _check_shape(shape: tuple[int, ...], expected: tuple[int, ...]) -> None:
    if tuple(shape) != expected:
        raise ValueError(f"the baseline answers {expected}, the head's raw output is {tuple(shape)}")


class ConstantEmbeddingBaseline:
    """Verification: one constant embedding for every image. Every pair is at distance 0, so the 10-fold
    cross-validated threshold can only say "all same" or "all different": chance level (0.5 on the balanced
    verification sets)."""

    needs_training = False

    def __init__(self, dim: int):
        self.dim = dim

    def fit(self, batches: Iterable[Mapping[str, Any]]) -> None:
        """Nothing to learn."""

    def predict(self, batch: Mapping[str, Any]) -> torch.Tensor:
        return torch.full((batch_length(batch), self.dim), self.dim**-0.5, dtype=torch.float64)

    def describe(self) -> str:
        return "one constant embedding (every pair at distance 0: chance, the better of all-same/all-different)"


# -- TaskSpec.baseline factories ---------------------------------------------------------------------------
def landmark_baseline(spec: TaskSpec) -> MeanShapeBaseline:
    return MeanShapeBaseline()


def parsing_baseline(spec: TaskSpec) -> PixelMajorityBaseline:
    return PixelMajorityBaseline(spec.label_names or tuple(str(i) for i in range(spec.num_queries)))


def mean_value_baseline(spec: TaskSpec, unit: str = "") -> MeanValueBaseline:
    """``TaskSpec.baseline`` of value tasks: the mean training target (``unit`` names its unit)."""
    return MeanValueBaseline(unit)


def age_baseline(spec: TaskSpec) -> AgeMeanBaseline:
    return AgeMeanBaseline("years", spec.num_queries)


def majority_class_baseline(spec: TaskSpec) -> MajorityClassBaseline:
    return MajorityClassBaseline(spec.label_names or tuple(str(i) for i in range(spec.num_queries)))


def attribute_baseline(spec: TaskSpec) -> AttributeMajorityBaseline:
    return AttributeMajorityBaseline(spec.label_names or tuple(str(i) for i in range(spec.num_queries)))


def verification_baseline(spec: TaskSpec) -> ConstantEmbeddingBaseline:
    return ConstantEmbeddingBaseline(spec.embedding_dim)
