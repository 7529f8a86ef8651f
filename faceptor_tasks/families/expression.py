"""Expression family: softmax classification with cross-entropy, top-1 accuracy (and mean class accuracy)."""

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

from .baselines import majority_class_baseline
from .checks import ClassSample
from .common import Metric, MetricMeta, as_tensor, build_dataset, higher
from .crop import FaceCropTransform, long_target
from .readers.expression import EXPRESSIONS


class ClassificationLoss(nn.Module):
    """Cross-entropy on ``B x K`` logits."""

    def __init__(self, label_smoothing: float = 0.0):
        super().__init__()
        self.label_smoothing = label_smoothing

    def forward(self, raw_output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(raw_output.float(), target.long().reshape(-1), label_smoothing=self.label_smoothing)


def classification_loss(spec: TaskSpec, label_smoothing: float = 0.0) -> ClassificationLoss:
    """``TaskSpec.loss`` for classification tasks."""
    return ClassificationLoss(label_smoothing)


class AccuracyMetric(Metric):
    """Top-1 ``accuracy`` and ``mean_class_accuracy`` from a confusion matrix (rows: ground truth).

    Evaluation feeds it the raw logits (``takes_raw_output``): the predicted class is ``torch.topk(logits, 1)``
    as in the reference (timm's ``accuracy``), not the argmax of softmax probabilities, which can tie where the
    logits do not. Among exactly tied logits ``topk`` does not promise the first index (on CPU it often returns
    another one); this metric returns what ``topk`` returns. ``update`` also takes ``B x K`` probabilities
    (same rule) or ``B`` class indices.
    """

    takes_raw_output = True

    def __init__(self, num_classes: int):
        self.k = num_classes
        super().__init__()

    def reset(self) -> None:
        self.confusion = torch.zeros(self.k, self.k, dtype=torch.int64)

    def update(self, prediction: Any, target: Any, meta: dict[str, Any] | None = None) -> None:
        scores = as_tensor(prediction)
        pred = scores.topk(1, dim=-1).indices[:, 0] if scores.dim() == 2 else scores.long()
        gt = as_tensor(target, torch.int64).reshape(-1)
        if len(gt) and (gt.min() < 0 or gt.max() >= self.k):
            raise ValueError(f"targets outside 0..{self.k - 1}")
        self.confusion += torch.bincount(gt * self.k + pred.reshape(-1), minlength=self.k * self.k).view(self.k, self.k)

    def compute(self) -> dict[str, float]:
        c = self.confusion.double()
        total = c.sum()
        per_class = c.diagonal() / c.sum(1)
        seen = c.sum(1) > 0
        return {
            "accuracy": float(c.diagonal().sum() / total) if total > 0 else float("nan"),
            "mean_class_accuracy": float(per_class[seen].mean()) if seen.any() else float("nan"),
        }

    @property
    def meta(self) -> dict[str, MetricMeta]:
        return {
            "accuracy": higher("fraction", "top-1 accuracy"),
            "mean_class_accuracy": higher("fraction", "mean of the per-class accuracies (classes in the set)"),
        }


def accuracy_metrics(spec: TaskSpec) -> AccuracyMetric:
    """``TaskSpec.metrics`` for classification tasks."""
    return AccuracyMetric(spec.num_queries)


def expression_task(
    name: str,
    *,
    reader: Callable[..., Any],
    label_names: Sequence[str] = EXPRESSIONS,
    input_size: int = 112,
    loss_weight: float = 1.0,
    crop: CropSpec | None = None,
    flip: FlipRule | None = UNCHANGED,
    **spec_fields: Any,
) -> TaskSpec:
    """An expression (or any single-label classification) task.

    Args:
        reader: ``reader(root, split, skip_invalid=False) -> FaceDataset`` with class indices in
            ``label_names`` order as targets.
        flip: the flip rule (default: training flips, classes unchanged; e.g. ``FlipRule(swap=(("looking_left",
            "looking_right"),))`` for classes that mirror; None: no flips).
    """
    crop = crop or CropSpec()
    return TaskSpec(
        name=name,
        family=spec_fields.pop("family", "expression"),
        head_type="attribute",
        output="classification",
        num_queries=len(label_names),
        input_size=input_size,
        label_names=tuple(label_names),
        loss_weight=loss_weight,
        primary_metric=spec_fields.pop("primary_metric", "accuracy"),
        dataset=partial(build_dataset, reader, check_sample=ClassSample(len(label_names))),
        transforms=partial(
            FaceCropTransform,
            target=long_target,
            crop=crop,
            flip=resolve_flip(flip, "classification", tuple(label_names), len(label_names)),
        ),
        crop=crop,
        flip=flip,
        loss=classification_loss,
        metrics=accuracy_metrics,
        baseline=spec_fields.pop("baseline", majority_class_baseline),
        **spec_fields,
    )
