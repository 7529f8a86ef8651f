"""The mean angular error metric (the loss is the regression family's L1 on pitch and yaw)."""

from __future__ import annotations

from typing import Any

import torch

from faceptor_tasks.kit import Metric, MetricMeta, TaskSpec, as_tensor

from .angles import angular_error_degrees


class AngularError(Metric):
    """Mean (and median) angular error in degrees between predicted and true 3-D gaze vectors."""

    takes_raw_output = False
    pairs = False
    meta = {
        "angular_error": MetricMeta(
            better="lower", unit="degrees", description="mean angle between the predicted and the true 3-D gaze vectors"
        ),
        "angular_error_median": MetricMeta(better="lower", unit="degrees", description="median of that angle"),
    }

    def __init__(self, spec: TaskSpec | None = None):
        super().__init__()

    def reset(self) -> None:
        self._errors: list[torch.Tensor] = []

    def update(self, prediction: Any, target: Any, meta: dict | None = None) -> None:
        self._errors.append(angular_error_degrees(as_tensor(prediction).float(), as_tensor(target).float()))

    def compute(self) -> dict[str, float]:
        if not self._errors:
            return {"angular_error": float("nan"), "angular_error_median": float("nan")}
        e = torch.cat(self._errors)
        return {"angular_error": float(e.mean()), "angular_error_median": float(e.median())}


def gaze_metrics(spec: TaskSpec) -> AngularError:
    return AngularError(spec)
