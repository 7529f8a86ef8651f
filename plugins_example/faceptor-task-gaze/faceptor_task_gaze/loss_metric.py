"""Loss on angles (L1 on pitch and yaw) and the mean angular error metric."""

from __future__ import annotations

import torch
from torch import nn

from faceptor_core import TaskSpec
from faceptor_core.spec import MetricMeta

from .angles import angular_error_degrees


class GazeL1Loss(nn.Module):
    """Mean absolute error of (pitch, yaw) in radians: the raw outputs of the two queries."""

    def forward(self, raw: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (raw.float() - target.float()).abs().mean()


def gaze_loss(spec: TaskSpec) -> GazeL1Loss:
    return GazeL1Loss()


class AngularError:
    """Mean (and median) angular error in degrees between predicted and true 3-D gaze vectors."""

    takes_raw_output = False
    pairs = False
    meta = {
        "angular_error": MetricMeta(better="lower", unit="degrees", description="mean angle between the predicted "
                                    "and the true 3-D gaze vectors"),
        "angular_error_median": MetricMeta(better="lower", unit="degrees", description="median of that angle"),
    }

    def __init__(self, spec: TaskSpec | None = None):
        self.reset()

    def reset(self) -> None:
        self._errors: list[torch.Tensor] = []

    def update(self, prediction: torch.Tensor, target: torch.Tensor, meta: dict | None = None) -> None:
        self._errors.append(angular_error_degrees(prediction.float(), torch.as_tensor(target).float()))

    def compute(self) -> dict[str, float]:
        if not self._errors:
            return {"angular_error": float("nan"), "angular_error_median": float("nan")}
        e = torch.cat(self._errors)
        return {"angular_error": float(e.mean()), "angular_error_median": float(e.median())}


def gaze_metrics(spec: TaskSpec) -> AngularError:
    return AngularError(spec)
