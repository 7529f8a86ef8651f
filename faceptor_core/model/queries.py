"""Task queries: per task, a content embedding (N(0,1) init) and a positional one (U(0,1) init)."""

from __future__ import annotations

import torch
from torch import nn


class TaskQueries(nn.Module):
    def __init__(self, num_queries: int, dim: int):
        super().__init__()
        self.feat = nn.Parameter(torch.randn(num_queries, dim))
        self.pos = nn.Parameter(torch.rand(num_queries, dim))

    @property
    def num_queries(self) -> int:
        return self.feat.shape[0]
