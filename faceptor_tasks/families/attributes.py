"""Attribute family: independent binary labels, masked BCE (label -1 = unknown), mean accuracy (mAcc)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from faceptor_core.crop import CropSpec
from faceptor_core.flip import UNCHANGED, FlipRule, resolve_flip
from faceptor_core.spec import TaskSpec

from .baselines import attribute_baseline
from .checks import AttributeSample
from .common import Metric, MetricMeta, as_tensor, build_dataset, higher
from .crop import FaceCropTransform, float_target


class MaskedBCELoss(nn.Module):
    """BCE-with-logits summed over labels and averaged over the batch; targets < 0 are masked out."""

    def forward(self, raw_output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits, t = raw_output.float(), target.to(raw_output.device).float()
        mask = (t >= 0).float()
        loss = F.binary_cross_entropy_with_logits(logits, t.clamp_min(0), reduction="none")
        return (loss * mask).sum() / logits.shape[0]


def attribute_loss(spec: TaskSpec) -> MaskedBCELoss:
    """``TaskSpec.loss`` for multi-label tasks."""
    return MaskedBCELoss()


class AttributeAccuracy(Metric):
    """Per-attribute accuracy over known labels; ``macc`` is their mean (CelebA mAcc).

    An attribute is predicted positive when its probability is strictly above ``threshold`` (0.5): a probability
    of exactly 0.5 is negative, as the reference's ``round(sigmoid(logit))`` (round half to even). The decoded
    probabilities are the float32 sigmoid, as the reference's, so logits that round to 0.5 are negative too.
    """

    def __init__(self, label_names: Sequence[str], threshold: float = 0.5):
        self.label_names, self.threshold = tuple(label_names), threshold
        super().__init__()

    def reset(self) -> None:
        k = len(self.label_names)
        self.correct = torch.zeros(k, dtype=torch.int64)
        self.count = torch.zeros(k, dtype=torch.int64)

    def update(self, prediction: Any, target: Any, meta: dict[str, Any] | None = None) -> None:
        prob, gt = as_tensor(prediction, torch.float64), as_tensor(target, torch.float64)
        known = gt >= 0
        hit = ((prob > self.threshold) == (gt > 0.5)) & known
        self.correct += hit.sum(0).long()
        self.count += known.sum(0).long()

    def compute(self) -> dict[str, float]:
        seen = self.count > 0
        acc = self.correct.double() / self.count.clamp_min(1)
        out = {"macc": float(acc[seen].mean()) if seen.any() else float("nan")}
        out.update({f"acc_{n}": float(acc[i]) for i, n in enumerate(self.label_names) if seen[i]})
        return out

    @property
    def meta(self) -> dict[str, MetricMeta]:
        out = {"macc": higher("fraction", "mean of the per-attribute accuracies (mAcc)")}
        out.update({f"acc_{n}": higher("fraction", f"accuracy of attribute {n!r}") for n in self.label_names})
        return out


def attribute_metrics(spec: TaskSpec) -> AttributeAccuracy:
    """``TaskSpec.metrics`` for multi-label tasks."""
    return AttributeAccuracy(spec.label_names or tuple(str(i) for i in range(spec.num_queries)))


def attribute_task(
    name: str,
    label_names: Sequence[str],
    *,
    reader: Callable[..., Any],
    input_size: int = 112,
    loss_weight: float = 1.0,
    crop: CropSpec | None = None,
    flip: FlipRule | None = UNCHANGED,
    **spec_fields: Any,
) -> TaskSpec:
    """A binary-attribute task (one query per attribute).

    Args:
        reader: ``reader(root, split, skip_invalid=False) -> FaceDataset`` with 0/1 (or -1 unknown) vectors.
        flip: the flip rule (default: training flips, labels unchanged; ``FlipRule(swap=...)`` for attributes
            that mirror, such as a left and a right eye closed; None: no flips).
    """
    crop = crop or CropSpec()
    return TaskSpec(
        name=name,
        family="attributes",
        head_type="attribute",
        output="multilabel",
        num_queries=len(label_names),
        input_size=input_size,
        label_names=tuple(label_names),
        loss_weight=loss_weight,
        primary_metric=spec_fields.pop("primary_metric", "macc"),
        dataset=partial(build_dataset, reader, check_sample=AttributeSample(len(label_names))),
        transforms=partial(
            FaceCropTransform,
            target=float_target,
            crop=crop,
            flip=resolve_flip(flip, "multilabel", tuple(label_names), len(label_names)),
        ),
        crop=crop,
        flip=flip,
        loss=attribute_loss,
        metrics=attribute_metrics,
        baseline=spec_fields.pop("baseline", attribute_baseline),
        **spec_fields,
    )
