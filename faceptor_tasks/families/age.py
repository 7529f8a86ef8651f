"""Age family: 101-bin age distribution, DLDL-v2 loss (KL to a Gaussian label distribution + L1 on the
expected age), mean absolute error."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch import nn

from faceptor_core.crop import CropSpec
from faceptor_core.flip import UNCHANGED, FlipRule, resolve_flip
from faceptor_core.outputs import age_distribution
from faceptor_core.spec import TaskSpec

from .baselines import age_baseline
from .checks import AgeSample
from .common import Metric, MetricMeta, as_tensor, build_dataset, lower
from .crop import FaceCropTransform, float_target

#: Ages beyond this are annotation errors (the readers' bound; UTKFace reaches 116).
MAX_AGE = 150.0


def gaussian_label_distribution(ages: torch.Tensor, num_bins: int = 101, sigma: float = 2.0) -> torch.Tensor:
    """``B`` ages -> ``B x num_bins`` L1-normalised Gaussian over ages ``0..num_bins-1``."""
    bins = torch.arange(num_bins, device=ages.device, dtype=torch.float32)
    logits = -((bins[None, :] - ages.float()[:, None]) ** 2) / (2.0 * sigma**2)
    dist = torch.exp(logits - logits.max(dim=1, keepdim=True).values)  # stable for ages beyond the bins
    return dist / dist.sum(dim=1, keepdim=True)


class DLDLv2Loss(nn.Module):
    """DLDL-v2: ``KL(target || p)`` summed over bins and averaged over the batch, plus ``L1(E[age], age)``.

    ``p`` is the L1-normalised sigmoid of the ``B x K`` logits (the decoding of
    :func:`faceptor_core.outputs.age_distribution`); the target is a Gaussian (``sigma``) at the age.
    """

    def __init__(self, num_bins: int = 101, sigma: float = 2.0):
        super().__init__()
        self.num_bins, self.sigma = num_bins, sigma

    def forward(self, raw_output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        p = age_distribution(raw_output.float())
        age = target.float().reshape(-1)
        dist = gaussian_label_distribution(age, p.shape[-1], self.sigma)
        kl = torch.where(dist > 0, dist * (dist.clamp_min(1e-30).log() - p.clamp_min(1e-30).log()), 0.0)
        expected = (p * torch.arange(p.shape[-1], device=p.device, dtype=p.dtype)).sum(dim=-1)
        return kl.sum() / p.shape[0] + (expected - age).abs().mean()


def age_loss(spec: TaskSpec, sigma: float = 2.0) -> DLDLv2Loss:
    """``TaskSpec.loss`` for age tasks."""
    return DLDLv2Loss(spec.num_queries, sigma)


class AgeMAE(Metric):
    """Mean absolute error in years over the whole set (``mae``)."""

    def reset(self) -> None:
        self.abs_sum = torch.zeros((), dtype=torch.float64)
        self.count = 0

    def update(self, prediction: Any, target: Any, meta: dict[str, Any] | None = None) -> None:
        pred = as_tensor(prediction, torch.float64).reshape(-1)
        gt = as_tensor(target, torch.float64).reshape(-1)
        self.abs_sum += (pred - gt).abs().sum()
        self.count += len(gt)

    def compute(self) -> dict[str, float]:
        return {"mae": float(self.abs_sum / self.count) if self.count else float("nan")}

    @property
    def meta(self) -> dict[str, MetricMeta]:
        return {"mae": lower("years", "mean absolute error of the expected age")}


def age_metrics(spec: TaskSpec) -> AgeMAE:
    """``TaskSpec.metrics`` for age tasks."""
    return AgeMAE()


def age_task(
    name: str,
    *,
    reader: Callable[..., Any],
    num_bins: int = 101,
    input_size: int = 112,
    loss_weight: float = 1.0,
    sigma: float = 2.0,
    crop: CropSpec | None = None,
    flip: FlipRule | None = UNCHANGED,
    **spec_fields: Any,
) -> TaskSpec:
    """An age-estimation task: ``num_bins`` queries for ages ``0..num_bins-1``.

    Args:
        reader: ``reader(root, split, skip_invalid=False) -> FaceDataset`` with float ages as targets.
        sigma: standard deviation (years) of the label distribution.
        flip: the flip rule (default: training flips, the age unchanged; None: no flips).
    """
    crop = crop or CropSpec()
    return TaskSpec(
        name=name,
        family="age",
        head_type="attribute",
        output="age_distribution",
        num_queries=num_bins,
        input_size=input_size,
        loss_weight=loss_weight,
        primary_metric=spec_fields.pop("primary_metric", "mae"),
        higher_is_better=spec_fields.pop("higher_is_better", False),
        dataset=partial(build_dataset, reader, check_sample=AgeSample(MAX_AGE)),
        transforms=partial(
            FaceCropTransform, target=float_target, crop=crop, flip=resolve_flip(flip, "age_distribution", (), num_bins)
        ),
        crop=crop,
        flip=flip,
        loss=partial(age_loss, sigma=sigma),
        metrics=age_metrics,
        baseline=spec_fields.pop("baseline", age_baseline),
        **spec_fields,
    )
