"""Pooled heads: training-only linear heads that supervise a from-scratch encoder directly (``train.pooled_heads``).

Each attribute-type task of a run gets a LayerNorm and a Linear on the mean of the last encoder layer's tokens,
trained on the task's own loss beside the decoder's output. They are not part of the model (its checkpoint, its
predictions): the trainer keeps them, in its checkpoints, to resume exactly. On 9,600 SynthFaces expression images the
demo's encoder learns expression under such a head as ResNet-18 does (0.40 / 0.39 against 0.40 / 0.46) and, read
through the decoder alone, to 0.25 / 0.18 (docs/results.md, "The decoder, not the encoder").
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn


class PooledHeads(nn.Module):
    """``{task: (encoder width, outputs, input size)}`` -> one LayerNorm + Linear per task on the mean encoder token
    of its input size; ``fractions[task]``: the share of the task's weight its pooled loss gets."""

    def __init__(self, shapes: Mapping[str, tuple[int, int, int]], fractions: Mapping[str, float]):
        super().__init__()
        self.heads = nn.ModuleDict(
            {task: nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, out)) for task, (dim, out, _) in shapes.items()}
        )
        self.sizes = {task: size for task, (_, _, size) in shapes.items()}
        self.fractions = {task: fractions[task] for task in shapes}

    def forward(self, last: Mapping[int, torch.Tensor], rows: Mapping[str, slice]) -> dict[str, torch.Tensor]:
        """Each task's raw output (``B_t x outputs``) from its rows of its input size's last encoder layer."""
        return {
            task: head(last[self.sizes[task]][rows[task]].flatten(2).mean(-1).float())
            for task, head in self.heads.items()
        }
