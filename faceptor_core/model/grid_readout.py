"""Grid readout: an attribute-type task's linear reading of the last encoder layer pooled to a coarse grid.

``DecoderConfig.grid_readout: k`` gives each attribute-type task a LayerNorm over the channels of the last encoder
layer's tokens average-pooled to ``k x k`` cells and a Linear from the cells side by side to the task's outputs,
added to what its queries give. The Linear starts at zero, so a model that gains one (stage 2, ``train.add_grid_
readout``) starts exactly where it was. A small from-scratch model's attribute queries read a beard or a fringe from
the tokens slowly; a linear reading of where things are learns it from fewer images. The demo's stage 2 adds one and
raises the attributes' weight: they read 0.004 better on 6 paired seeds, level with the like-for-like anchor
(docs/results.md, "A grid readout for the attributes" and "The grid readout and a larger share together"). The
paper's model has none.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GridReadout(nn.Module):
    """``B x C x H x W`` last encoder layer -> ``B x outputs``: LayerNorm over channels of each of ``cells x cells``
    pooled cells, then a Linear (started at zero) over all cells. ONNX export swaps in a constant pooling
    (``interop.onnx_export``)."""

    def __init__(self, dim: int, outputs: int, cells: int):
        super().__init__()
        self.cells = cells
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(cells * cells * dim, outputs)
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        pooled = F.adaptive_avg_pool2d(feature, self.cells).flatten(2).transpose(1, 2)  # B x cells^2 x C
        return self.fc(self.norm(pooled).flatten(1))
