"""The reference's task weighting: weights are normalised within a task family, then across families.

``alpha_t = loss_weight_t / sum(loss_weight of tasks of t's family) * type_weight[family]`` and the total
loss is ``sum(alpha_t L_t) / sum(alpha_t)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from ..spec import TaskSpec


def task_weights(specs: Sequence[TaskSpec], type_weights: Mapping[str, float] | None = None) -> dict[str, float]:
    """``{task: alpha_t}`` for the tasks trained together."""
    type_weights = type_weights or {}
    family_sum: dict[str, float] = {}
    for s in specs:
        family_sum[s.family] = family_sum.get(s.family, 0.0) + s.loss_weight
    return {s.name: s.loss_weight / family_sum[s.family] * float(type_weights.get(s.family, 1.0)) for s in specs}


def combine_losses(losses: Mapping[str, torch.Tensor], weights: Mapping[str, float]) -> torch.Tensor:
    """``sum(alpha_t L_t) / sum(alpha_t)`` over the tasks present in ``losses``."""
    total = sum(weights[t] for t in losses)
    return sum(weights[t] * loss for t, loss in losses.items()) / total
