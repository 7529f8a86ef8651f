"""Task weighting of the multi-task loss (the reference's formula; the training engine's own copy lives in
:mod:`faceptor_core.train.weighting`, re-exported here).

``alpha_t = loss_weight_t / sum(loss_weight of the tasks of t's family) * type_weight[family]`` (type weight
1.0 by default) and the total loss is ``sum_t(alpha_t * L_t) / sum_t(alpha_t)`` over the tasks of the step.
"""

from __future__ import annotations

from faceptor_core.train.weighting import combine_losses, task_weights

#: The reference's per-family type weights (its base configuration). With them and the built-in loss
#: weights, the paper's seven-task run gets alphas 300W 1000, CelebAMask-HQ 100, MORPH II 6,
#: AffectNet 4, RAF-DB 1, CelebA 2, MS1MV3 5.
REFERENCE_TYPE_WEIGHTS: dict[str, float] = {
    "recognition": 5.0,
    "age": 6.0,
    "attributes": 2.0,
    "expression": 5.0,
    "parsing": 100.0,
    "landmarks": 1000.0,
}

weighted_loss = combine_losses

__all__ = ["REFERENCE_TYPE_WEIGHTS", "combine_losses", "task_weights", "weighted_loss"]
