"""Regression family: any number of named real-valued outputs (one attribute query each), an L1 or smooth-L1 loss,
the mean absolute error of each output in its unit, the mean training value as the trivial answer, and the task's
flip rule applied by the transform.

Declare a task with :func:`regression_task`::

    spec = regression_task("headpose_mine", ("yaw", "pitch", "roll"), units="rad", reader=read_mine,
                           flip=FlipRule(negate=("yaw", "roll")))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from faceptor_core.crop import CropSpec
from faceptor_core.flip import FlipRule, LabelFlip, resolve_flip
from faceptor_core.spec import MetricMeta, TaskSpec

from .augment import EVAL_RNG, is_train_split, to_tensor_image, torch_rng
from .baselines import RegressionMeanBaseline
from .common import Metric, Sample, as_tensor, build_dataset
from .crop import base_meta, item_crop_matrix
from .geometry import compose, random_affine, random_hflip, warp_image

LossKind = Literal["l1", "smooth_l1"]


# -- transform -------------------------------------------------------------------------------------------
class RegressionTransform:
    """Raw item (``target``: ``K`` values) -> model-ready item with a float32 ``K`` target.

    The crop is the task's :class:`~faceptor_core.crop.CropSpec` (:func:`item_crop_matrix`). Training adds a small
    random shift (``shift``, fraction of the crop) and scale (``scale``, relative) -- no rotation, which would move
    angle-like values -- a horizontal flip (probability 0.5) whose label change is the task's flip rule ``flip``
    (None: no flips), and a brightness / contrast jitter (gain ``1 +- color``, bias ``+- 100 color`` grey levels).
    Augmentation draws from torch's RNG. ``meta["affine"]`` records crop, jitter and flip.
    """

    def __init__(
        self,
        split: str,
        input_size: int,
        crop: CropSpec | None = None,
        flip: LabelFlip | None = None,
        shift: float = 0.03,
        scale: float = 0.05,
        color: float = 0.3,
    ):
        self.train = is_train_split(split)
        self.size, self.crop, self.flip = input_size, crop or CropSpec(), flip
        self.shift, self.scale, self.color = shift, scale, color

    def __call__(self, item: dict[str, Any]) -> dict[str, Any]:
        image = item["image"]
        h, w = image.shape[:2]
        s = self.size
        m = item_crop_matrix(self.crop, item, s)
        target = np.array(item["target"], np.float32, copy=True).reshape(-1)
        rng = torch_rng() if self.train else EVAL_RNG
        if self.train:
            m = compose(random_affine(s, rng, self.shift, 0.0, self.scale), m)
            m, flipped = random_hflip(m, s, rng, self.flip is not None)
            if flipped and self.flip is not None:
                target = self.flip.relabel(target)
        crop = warp_image(image, m, s)
        if self.train and self.color > 0:
            gain, bias = rng.uniform(1 - self.color, 1 + self.color), rng.uniform(-100 * self.color, 100 * self.color)
            crop = np.clip(crop.astype(np.float32) * gain + bias, 0, 255).astype(np.uint8)
        return {"image": to_tensor_image(crop), "target": torch.from_numpy(target), "meta": base_meta(m, h, w, item)}


# -- loss ------------------------------------------------------------------------------------------------
class RegressionLoss(nn.Module):
    """L1 (``"l1"``) or smooth-L1 (``"smooth_l1"``, Huber with ``beta``) between the ``B x K`` raw outputs and the
    ``B x K`` targets, averaged over outputs and items; ``weights`` (``K``) weigh the outputs."""

    def __init__(self, kind: LossKind = "l1", beta: float = 1.0, weights: Sequence[float] | None = None):
        super().__init__()
        if kind not in ("l1", "smooth_l1"):
            raise ValueError(f"unknown regression loss {kind!r}; expected 'l1' or 'smooth_l1'")
        self.kind, self.beta = kind, beta
        self.register_buffer("weights", None if weights is None else torch.as_tensor(weights, dtype=torch.float32))

    def forward(self, raw_output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pred, t = raw_output.float(), target.to(raw_output.device).float()
        if t.shape != pred.shape:
            raise ValueError(
                f"regression targets of shape {tuple(t.shape)} do not match the outputs "
                f"{tuple(pred.shape)} (B x number of values)"
            )
        err = (
            F.l1_loss(pred, t, reduction="none")
            if self.kind == "l1"
            else F.smooth_l1_loss(pred, t, reduction="none", beta=self.beta)
        )
        if self.weights is not None:
            err = err * self.weights
        return err.mean()


def regression_loss(
    spec: TaskSpec, kind: LossKind = "l1", beta: float = 1.0, weights: Sequence[float] | None = None
) -> RegressionLoss:
    """``TaskSpec.loss`` for regression tasks."""
    return RegressionLoss(kind, beta, weights)


# -- metric ----------------------------------------------------------------------------------------------
class RegressionMAE(Metric):
    """Mean absolute error of each output (``mae_<name>``) and their mean (``mae``), over the whole set.

    ``meta`` describes each value (:class:`~faceptor_core.spec.MetricMeta`: lower is better, in the targets' units).
    """

    def __init__(self, names: Sequence[str], unit: str | Sequence[str] = ""):
        self.names = tuple(names)
        units = (unit,) * len(self.names) if isinstance(unit, str) else tuple(unit)
        if len(units) != len(self.names):
            raise ValueError(f"{len(units)} units for {len(self.names)} outputs")
        self.units = units
        self.common_unit = units[0] if len(set(units)) == 1 else "mixed"
        super().__init__()

    @property
    def meta(self) -> dict[str, MetricMeta]:
        out = {
            "mae": MetricMeta(
                better="lower", unit=self.common_unit, description="mean absolute error over every output"
            )
        }
        out.update(
            {
                f"mae_{n}": MetricMeta(better="lower", unit=u, description=f"mean absolute error of {n}")
                for n, u in zip(self.names, self.units, strict=True)
            }
        )
        return out

    def reset(self) -> None:
        self.abs_sum = torch.zeros(len(self.names), dtype=torch.float64)
        self.count = 0

    def update(self, prediction: Any, target: Any, meta: dict[str, Any] | None = None) -> None:
        pred = as_tensor(prediction, torch.float64)
        gt = as_tensor(target, torch.float64)
        k = len(self.names)
        pred, gt = pred.reshape(len(pred), -1), gt.reshape(len(gt), -1)
        if pred.shape != gt.shape or gt.shape[-1] != k:
            raise ValueError(
                f"regression metric: predictions {tuple(pred.shape)} and targets {tuple(gt.shape)} must both be B x {k}"
            )
        self.abs_sum += (pred - gt).abs().sum(0)
        self.count += len(gt)

    def compute(self) -> dict[str, float]:
        if not self.count:
            return {name: float("nan") for name in self.meta}
        per = self.abs_sum / self.count
        out = {"mae": float(per.mean())}
        out.update({f"mae_{n}": float(v) for n, v in zip(self.names, per.tolist(), strict=True)})
        return out


def regression_metrics(spec: TaskSpec, unit: str | Sequence[str] = "") -> RegressionMAE:
    """``TaskSpec.metrics`` for regression tasks (output names from the spec)."""
    return RegressionMAE(spec.label_names or tuple(str(i) for i in range(spec.num_queries)), unit)


def regression_baseline(spec: TaskSpec, unit: str = "") -> RegressionMeanBaseline:
    """``TaskSpec.baseline``: the mean training value of each output (also the raw output an output prior starts
    at: regression's raw outputs are its values)."""
    return RegressionMeanBaseline(unit)


# -- record check ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RegressionSample:
    """``num_values`` finite values."""

    num_values: int

    def __call__(self, s: Sample) -> str | None:
        try:
            v = np.asarray(s.target, np.float64).reshape(-1)
        except (TypeError, ValueError):
            return f"target {s.target!r} is not {self.num_values} numbers"
        if v.shape != (self.num_values,):
            return f"expected {self.num_values} values, got {v.size}"
        if not np.isfinite(v).all():
            return f"non-finite value(s) {v.tolist()}"
        return None


# -- factory ---------------------------------------------------------------------------------------------
def regression_task(
    name: str,
    names: Sequence[str],
    *,
    flip: FlipRule | None,
    reader: Callable[..., Any] | None = None,
    dataset: Callable[..., Any] | None = None,
    units: str | Sequence[str] = "",
    loss: LossKind = "l1",
    beta: float = 1.0,
    input_size: int = 112,
    crop: CropSpec | None = None,
    augment: Mapping[str, float] | None = None,
    family: str = "regression",
    **spec_fields: Any,
) -> TaskSpec:
    """A task predicting ``len(names)`` real values per face (one attribute query each, raw regression outputs).

    Args:
        names: the outputs, in target order (``label_names`` of the spec).
        flip: how the values change under a horizontal flip, e.g. ``FlipRule(negate=("yaw", "roll"))``;
            ``FlipRule()`` when nothing changes; None: no flip augmentation. Required: a mirrored face with
            unmirrored labels is a silent training error.
        reader: ``reader(root, split, skip_invalid=False) -> FaceDataset`` with ``K`` values as targets (records
            with the wrong number of values or non-finite ones are rejected); or
        dataset: a ready ``TaskSpec.dataset`` (``dataset(root, split, transform=None)``).
        units: the unit of every output (or one per output), shown with the metric (``meta``) and the baseline.
        loss: ``"l1"`` or ``"smooth_l1"`` (with ``beta``).
        augment: :class:`RegressionTransform` options (``shift``, ``scale``, ``color``).
        spec_fields: other :class:`TaskSpec` fields (description, license, citation, primary_metric, a task's own
            ``metrics`` or ``baseline``, ...).
    """
    names = tuple(names)
    if (reader is None) == (dataset is None):
        raise ValueError(f"regression task {name!r}: give exactly one of reader= and dataset=")
    if dataset is None:
        dataset = partial(build_dataset, reader, check_sample=RegressionSample(len(names)))
    crop = crop or CropSpec()
    unit_line = units if isinstance(units, str) else ", ".join(f"{n} {u}" for n, u in zip(names, units, strict=True))
    return TaskSpec(
        name=name,
        family=family,
        head_type="attribute",
        output="regression",
        num_queries=len(names),
        input_size=input_size,
        label_names=names,
        crop=crop,
        flip=flip,
        primary_metric=spec_fields.pop("primary_metric", "mae"),
        higher_is_better=spec_fields.pop("higher_is_better", False),
        dataset=dataset,
        transforms=partial(
            RegressionTransform,
            crop=crop,
            flip=resolve_flip(flip, "regression", names, len(names)),
            **dict(augment or {}),
        ),
        loss=partial(regression_loss, kind=loss, beta=beta),
        metrics=spec_fields.pop("metrics", partial(regression_metrics, unit=units)),
        baseline=spec_fields.pop("baseline", partial(regression_baseline, unit=unit_line)),
        **spec_fields,
    )
